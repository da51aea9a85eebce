//! `devsim run` against a stand-in server: 503 is retried with the same sync id after
//! Retry-After, bounded; a 429 is waited out and sent again without spending a retry; tokens
//! name the device. (The real ingest-api is in tests/ingest.rs.)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devsim::fleet::FleetConfig;
use devsim::phone::{Imperfections, SimConfig};
use devsim::run::{run, RunConfig};
use ingest_api::auth::TokenSigner;
use ingest_api::config::Secret;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "retry-test-secret-0123456789";

/// What the stand-in server saw: (path, sync id, authorization header, when).
type Seen = Arc<Mutex<Vec<(String, String, String, Instant)>>>;

/// An HTTP/1.1 server that answers the n-th request with `answers[n]` (status, Retry-After)
/// and 202 after that.
async fn stand_in(answers: Vec<(u16, Option<u64>)>) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
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
                    let (mut length, mut auth) = (0usize, String::new());
                    loop {
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "authorization" => auth = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push((path, json["sync_id"].as_str().unwrap().to_owned(), auth, Instant::now()));
                        log.len() - 1
                    };
                    let (status, retry_after) = answers.get(n).copied().unwrap_or((202, None));
                    let extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
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

fn config(url: String, max_retries: u32) -> RunConfig {
    let fleet = FleetConfig { seed: 3, users: 1, strap_share: 0.0, user_prefix: "retry".into() };
    let mut sim = SimConfig::new(fleet, chrono::Utc::now().timestamp_millis());
    sim.imperfections = Imperfections::none();
    sim.backfill_ms = 50 * 60_000;
    RunConfig {
        url,
        secret: Secret::new(SECRET),
        sim,
        speed: 1.0,
        concurrency: 2,
        max_retries,
        timeout: Duration::from_secs(5),
        progress_every: None,
        duration: Some(Duration::from_secs(30)),
        backfill_only: true,
        gzip: false,
        watch: false,
    }
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_sync_id_after_retry_after() {
    let (url, seen) = stand_in(vec![(503, Some(1))]).await;
    let report = run(config(url, 3), CancellationToken::new()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(report.syncs >= 2, "{report:?}");
    assert_eq!(report.retries, 1);
    assert_eq!(report.accepted, report.syncs);
    assert_eq!(report.requests, report.syncs + 1);
    assert_eq!(report.by_status.get(&503), Some(&1));
    assert_eq!(report.per_user.get("retry-0"), Some(&report.accepted));
    assert_eq!(seen.len() as u64, report.requests);
    assert_eq!(seen[0].1, seen[1].1, "the retry carries the same sync id");
    assert!(seen[1].3 - seen[0].3 >= Duration::from_millis(950), "waited for Retry-After");
    assert_ne!(seen[1].1, seen[2].1);
    let signer = TokenSigner::new(&Secret::new(SECRET));
    for (path, _, auth, _) in seen.iter() {
        let claims = signer.verify_header(Some(auth)).unwrap();
        assert_eq!(claims.sub, "retry-0");
        assert_eq!(path, &format!("/v1/devices/{}/syncs", claims.device.unwrap()));
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let (url, seen) = stand_in(vec![(503, Some(0)); 3]).await;
    let report = run(config(url, 2), CancellationToken::new()).await.unwrap();
    assert_eq!((report.retries, report.gave_up), (2, 1), "{report:?}");
    assert_eq!(report.accepted, report.syncs - 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].1, seen[2].1);
    assert_ne!(seen[2].1, seen[3].1, "after giving up the phone moves on");
}

#[tokio::test]
async fn a_429_is_waited_out_and_sent_again_without_spending_a_retry() {
    let (url, seen) = stand_in(vec![(429, Some(1)), (429, Some(1))]).await;
    let report = run(config(url, 0), CancellationToken::new()).await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(report.syncs >= 2, "{report:?}");
    assert_eq!(report.accepted, report.syncs, "every sync accepted in the end: {report:?}");
    assert_eq!((report.rate_limited, report.retries, report.gave_up), (2, 0, 0), "{report:?}");
    assert_eq!(report.by_status.get(&429), Some(&2));
    assert_eq!(report.requests, report.syncs + 2);
    assert!(seen[0].1 == seen[1].1 && seen[1].1 == seen[2].1, "the same sync id each time");
    assert!(seen[1].3 - seen[0].3 >= Duration::from_millis(950), "waited for Retry-After");
    assert!(seen[2].3 - seen[1].3 >= Duration::from_millis(950), "waited for Retry-After");
    assert_ne!(seen[2].1, seen[3].1);
}
