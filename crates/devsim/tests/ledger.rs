//! `devsim load --retries N --ledger FILE` against a stand-in server: a failed request is sent
//! again with the same sync id, a 4xx is not, retries are bounded, a 429 is waited out and sent
//! again whatever `--retries` says, and the ledger has one line per attempt saying what the
//! client saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devsim::load::{run, LoadConfig, Rate};
use ingest_api::config::Secret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// Closes the connection instead of answering.
const NO_ANSWER: u16 = 0;

/// An HTTP/1.1 server that answers the n-th request with `answers[n]` and 202 after that;
/// returns its URL and the sync ids it saw, in order.
async fn stand_in(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, answers) = (log.clone(), answers.clone());
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(json["sync_id"].as_str().unwrap().to_owned());
                        log.len() - 1
                    };
                    let status = answers.get(n).copied().unwrap_or(202);
                    if status == NO_ANSWER {
                        return; // dropping the stream closes the connection unanswered
                    }
                    // A rate limit says when to come back.
                    let extra = if status == 429 { "Retry-After: 1\r\n" } else { "" };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\n{extra}\r\n{{}}"
                    );
                    stream.get_mut().write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (url, seen)
}

fn config(url: String, count: u64, retries: u32, ledger: &std::path::Path) -> LoadConfig {
    LoadConfig {
        url,
        secret: Secret::new("ledger-test-secret-0123456789"),
        rate: Rate::Max,
        // One worker: requests and their retries come in a known order.
        concurrency: 1,
        duration: None,
        count: Some(count),
        devices: 2,
        sleep_every: 8,
        gzip: false,
        timeout: Duration::from_secs(5),
        progress_every: None,
        seed: 1,
        retries,
        ledger: Some(ledger.to_owned()),
    }
}

fn read_ledger(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("devsim-{name}-{}-{}.jsonl", std::process::id(), uuid::Uuid::new_v4()))
}

#[tokio::test]
async fn failures_are_retried_with_the_same_sync_id_and_every_attempt_is_in_the_ledger() {
    let (url, seen) = stand_in(vec![503, NO_ANSWER, 202, 400]).await;
    let path = temp_path("retried");
    let report = run(config(url, 3, 5, &path), CancellationToken::new()).await.unwrap();
    let lines = read_ledger(&path);
    std::fs::remove_file(&path).ok();

    // Request 0: 503, no answer, 202. Request 1: 400, not retried. Request 2: 202.
    let statuses: Vec<_> = lines.iter().map(|l| (l["attempt"].as_u64().unwrap(), l["status"].as_u64())).collect();
    assert_eq!(statuses, vec![(0, Some(503)), (1, None), (2, Some(202)), (0, Some(400)), (0, Some(202))]);
    let ids: Vec<&str> = lines.iter().map(|l| l["sync_id"].as_str().unwrap()).collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2], "a retry carries the same sync id");
    assert_ne!(ids[2], ids[3]);
    assert_ne!(ids[3], ids[4]);
    assert_eq!(*seen.lock().unwrap(), ids, "the ledger lists what the server received, in order");
    assert_eq!(lines[0]["user"], "load-user-0");
    assert_eq!(lines[0]["device"], "load-band-0");
    assert_eq!(lines[3]["user"], "load-user-1");
    for l in &lines {
        let (sent, answered) = (l["sent"].as_f64().unwrap(), l["answered"].as_f64().unwrap());
        assert!(sent > 1.7e9 && answered >= sent, "{l}");
    }
    assert!(lines[1]["sent"].as_f64().unwrap() - lines[0]["answered"].as_f64().unwrap() >= 0.19, "backed off");

    assert_eq!((report.requests, report.completed, report.accepted, report.retries), (3, 3, 2, 2));
    assert_eq!(report.errors.get("400"), Some(&1));
    assert_eq!(report.errors.len(), 1, "only final answers are errors: {:?}", report.errors);
}

#[tokio::test]
async fn retries_are_bounded_and_none_is_the_default() {
    let (url, _) = stand_in(vec![503, 503, 503]).await;
    let path = temp_path("bounded");
    let report = run(config(url, 2, 1, &path), CancellationToken::new()).await.unwrap();
    let lines = read_ledger(&path);
    std::fs::remove_file(&path).ok();
    let statuses: Vec<_> = lines.iter().map(|l| (l["attempt"].as_u64().unwrap(), l["status"].as_u64())).collect();
    // Request 0 gives up after one retry; request 1 gets the third 503 and one retry's 202.
    assert_eq!(statuses, vec![(0, Some(503)), (1, Some(503)), (0, Some(503)), (1, Some(202))]);
    assert_eq!((report.accepted, report.retries), (1, 2));
    assert_eq!(report.errors.get("503"), Some(&1));

    let (url, _) = stand_in(vec![503]).await;
    let path = temp_path("none");
    let report = run(config(url, 2, 0, &path), CancellationToken::new()).await.unwrap();
    let lines = read_ledger(&path);
    std::fs::remove_file(&path).ok();
    assert_eq!(lines.len(), 2);
    assert_eq!((report.accepted, report.retries), (1, 0));
}

#[tokio::test]
async fn a_429_is_waited_out_and_sent_again_whatever_the_retries() {
    let (url, seen) = stand_in(vec![429, 429, 202]).await;
    let path = temp_path("rate-limited");
    let report = run(config(url, 2, 0, &path), CancellationToken::new()).await.unwrap();
    let lines = read_ledger(&path);
    std::fs::remove_file(&path).ok();
    let statuses: Vec<_> = lines.iter().map(|l| (l["attempt"].as_u64().unwrap(), l["status"].as_u64())).collect();
    assert_eq!(statuses, vec![(0, Some(429)), (1, Some(429)), (2, Some(202)), (0, Some(202))]);
    let ids = seen.lock().unwrap().clone();
    assert!(ids[0] == ids[1] && ids[1] == ids[2], "the same sync id each time: {ids:?}");
    for pair in lines.windows(2).take(2) {
        let gap = pair[1]["sent"].as_f64().unwrap() - pair[0]["answered"].as_f64().unwrap();
        assert!(gap >= 0.95, "waited Retry-After (1 s), not {gap}");
    }
    assert_eq!((report.requests, report.accepted, report.retries, report.rate_limited), (2, 2, 0, 2));
    assert!(report.errors.is_empty(), "a 429 is not an error: {:?}", report.errors);
    assert_eq!(report.rate_limited_at_stop, 0);
}

#[tokio::test]
async fn a_run_stopped_while_waiting_out_a_429_counts_it_apart() {
    let (url, _) = stand_in(vec![429; 100]).await;
    let path = temp_path("stopped");
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stopper.cancel();
    });
    let report = run(config(url, 1, 3, &path), stop).await.unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!((report.requests, report.completed, report.accepted), (1, 1, 0));
    assert_eq!((report.rate_limited, report.rate_limited_at_stop, report.retries), (1, 1, 0));
    assert!(report.errors.is_empty(), "neither accepted nor an error: {:?}", report.errors);
}
