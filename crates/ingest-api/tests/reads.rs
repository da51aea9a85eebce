//! The read side with read-your-writes, against the real broker, registry and PostgreSQL, with
//! ingest-api and the processor sharing a topic and a database.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use testkit::unique;

mod stack;

use stack::Stack;

async fn spawn_stack(with_processor: bool) -> Stack {
    stack::spawn(with_processor, |_| {}).await
}

async fn spawn_stack_with(with_processor: bool, max_waiters: usize, max_waiters_per_user: usize) -> Stack {
    stack::spawn(with_processor, |s| {
        s.read_max_waiters = max_waiters;
        s.read_max_waiters_per_user = max_waiters_per_user;
    })
    .await
}

impl Stack {
    async fn get(&self, path: &str, user: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(self.signer.mint(user, None, Duration::from_secs(600)))
            .send()
            .await
            .unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }
}

#[actix_web::test]
async fn a_202_then_a_read_with_the_token_and_a_wait_returns_the_new_data() {
    let stack = spawn_stack(true).await;
    let accepted = stack.sync("reader-1", "band-1").await;
    let token = accepted["consistency_token"].as_str().unwrap();

    let (status, headers, body) =
        stack.get(&format!("/v1/users/reader-1/days?consistency_token={token}&wait=10000"), "reader-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let days = body["days"].as_array().unwrap();
    assert!(!days.is_empty(), "the new data is there: {body}");
    let total_hr: i64 = days.iter().map(|d| d["summary"]["quality"]["hr_samples"].as_i64().unwrap()).sum();
    assert_eq!(total_hr, 180);
    // Each day says which health model version computed it.
    assert!(days.iter().all(|d| d["model_version"] == health_model::MODEL_VERSION), "{body}");
    let offset = accepted["offset"].as_i64().unwrap();
    assert!(body["freshness"]["committed_offset"].as_i64().unwrap() >= offset);
    assert_eq!(body["freshness"]["partition"], accepted["partition"]);
    assert_eq!(
        headers["x-processed-position"].to_str().unwrap(),
        format!("{}:{}", accepted["partition"], body["freshness"]["committed_offset"])
    );

    // The sync's status, through its status_url.
    let (status, _, body) = stack.get(accepted["status_url"].as_str().unwrap(), "reader-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "processed");
    assert_eq!(body["counts"]["heart_rate_samples"], 180);
    assert_eq!(body["dropped_samples"], json!({}));

    let (status, _, body) = stack.get(&format!("/v1/users/reader-1/model?consistency_token={token}"), "reader-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["model"]["fitness"].is_number(), "{body}");
    assert_eq!(body["model"]["model_version"], health_model::MODEL_VERSION, "{body}");
    stack.stop().await;
}

#[actix_web::test]
async fn with_the_processor_stopped_a_read_gets_409_never_stale_data() {
    let mut stack = spawn_stack(false).await;
    let accepted = stack.sync("reader-2", "band-2").await;
    let token = accepted["consistency_token"].as_str().unwrap();
    let started = std::time::Instant::now();
    let (status, headers, body) =
        stack.get(&format!("/v1/users/reader-2/days?consistency_token={token}&wait=500"), "reader-2").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(500), "it waited");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["freshness"]["committed_offset"], -1);
    // The status is provably pending: the token's offset is above the watermark.
    let (_, _, body) = stack.get(accepted["status_url"].as_str().unwrap(), "reader-2").await;
    assert_eq!(body["status"], "pending");
    // Without a token nothing can be proven.
    let (_, _, body) = stack.get(&format!("/v1/syncs/{}", accepted["sync_id"].as_str().unwrap()), "reader-2").await;
    assert_eq!(body["status"], "unknown");

    // The freshness moves once the processor commits.
    stack.start_processor().await;
    let (status, _, body) =
        stack.get(&format!("/v1/users/reader-2/days?consistency_token={token}&wait=10000"), "reader-2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["freshness"]["committed_offset"].as_i64().unwrap() >= accepted["offset"].as_i64().unwrap());
    stack.stop().await;
}

#[actix_web::test]
async fn read_routes_check_who_reads_and_what_is_asked() {
    let stack = spawn_stack(true).await;
    let accepted = stack.sync("reader-3", "band-3").await;
    let status_url = accepted["status_url"].as_str().unwrap();
    // Another user's data: 403; no token: 401.
    assert_eq!(stack.get("/v1/users/reader-3/days", "someone-else").await.0, StatusCode::FORBIDDEN);
    assert_eq!(stack.get(&format!("{status_url}&wait=10000"), "someone-else").await.0, StatusCode::FORBIDDEN);
    let res = stack.http.get(format!("{}/v1/users/reader-3/model", stack.api)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Authentication comes before any work on the query, a broken one included.
    for query in ["to=-262143-01-01", "wait=soon", "from=yesterday"] {
        let res = stack.http.get(format!("{}/v1/users/reader-3/days?{query}", stack.api)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{query}");
    }
    // The device's own token reads its user's data.
    let res = stack
        .http
        .get(format!("{}/v1/users/reader-3/model", stack.api))
        .bearer_auth(stack.signer.mint("reader-3", Some("band-3"), Duration::from_secs(60)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Bad queries.
    for path in [
        "/v1/users/reader-3/days?from=2026-03-10&to=2026-03-01",
        "/v1/users/reader-3/days?from=2026-01-01&to=2026-03-01",
        "/v1/users/reader-3/days?consistency_token=garbage",
        "/v1/syncs/not-a-uuid",
        // Out of any calendar's range: 400, never a panic in date arithmetic.
        "/v1/users/reader-3/days?to=-262143-01-01",
        "/v1/users/reader-3/days?from=-262143-01-01&to=2026-01-01",
        "/v1/users/reader-3/days?to=+262142-12-31",
        "/v1/users/reader-3/days?wait=soon",
    ] {
        let (status, headers, body) = stack.get(path, "reader-3").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
    }
    // Pagination: one day per page, over two days with data: wear at noon (Berlin, the example's
    // zone, UTC+1) yesterday and three days ago, so no sync straddles a local midnight whatever
    // the hour the test runs.
    let berlin_today = (chrono::Utc::now() + chrono::Duration::hours(1)).date_naive();
    let noon_utc = |days_ago: u64| {
        let day = berlin_today - chrono::Days::new(days_ago);
        day.and_hms_opt(11, 0, 0).unwrap().and_utc().timestamp_millis()
    };
    let recent = stack.sync_ending("reader-3", "band-3", noon_utc(1)).await;
    let older = stack.sync_ending("reader-3", "band-3", noon_utc(3)).await;
    assert_eq!(older["partition"], accepted["partition"], "one user, one partition");
    let token = if older["offset"].as_i64() > recent["offset"].as_i64() {
        older["consistency_token"].as_str().unwrap()
    } else {
        recent["consistency_token"].as_str().unwrap()
    };
    let today = berlin_today - chrono::Days::new(1);
    let from = berlin_today - chrono::Days::new(3);
    let (_, _, body) = stack
        .get(
            &format!("/v1/users/reader-3/days?from={from}&to={today}&limit=1&consistency_token={token}&wait=10000"),
            "reader-3",
        )
        .await;
    assert_eq!(body["days"].as_array().unwrap().len(), 1, "{body}");
    let next = body["next_from"].as_str().expect("a next page").to_owned();
    let (_, _, page2) = stack.get(&format!("/v1/users/reader-3/days?from={next}&to={today}&limit=1"), "reader-3").await;
    assert_eq!(page2["days"][0]["date"], json!(next));
    assert!(page2["next_from"].is_null(), "{page2}");
    stack.stop().await;
}

/// Waiting reads hold no database connection and are bounded: 300 of them on an offset the
/// processor will not reach leave another user's reads fast, and one more is refused at once.
#[actix_web::test]
async fn three_hundred_waiters_do_not_starve_other_reads_and_one_more_is_refused() {
    let stack = spawn_stack_with(false, 300, 300).await;
    let accepted = stack.sync("waiter-1", "band-w1").await;
    let unreachable = events::ConsistencyToken {
        partition: accepted["partition"].as_i64().unwrap() as i32,
        offset: accepted["offset"].as_i64().unwrap() + 1_000_000,
    };
    let path = format!("/v1/users/waiter-1/model?consistency_token={unreachable}&wait=8000");
    let token = stack.signer.mint("waiter-1", None, Duration::from_secs(600));
    let waiters: Vec<_> = (0..300)
        .map(|_| {
            let request = stack.http.get(format!("{}{path}", stack.api)).bearer_auth(&token);
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    let waiting = || async {
        let text = stack.http.get(format!("{}/metrics", stack.api)).send().await.unwrap().text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix("ingest_read_waiters ")).and_then(|v| v.parse::<i64>().ok())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while waiting().await != Some(300) {
        assert!(std::time::Instant::now() < deadline, "300 waiters never waited together: {:?}", waiting().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Another user's read, with the 300 waiting: fast, several times over.
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let (status, _, body) = stack.get("/v1/users/waiter-2/model", "waiter-2").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    }
    // The 301st wait is refused at once.
    let started = std::time::Instant::now();
    let (status, headers, body) = stack.get(&path, "waiter-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["type"], "https://fitness.example/problems/too-many-waiters");
    assert!(started.elapsed() < Duration::from_secs(1));
    for w in waiters {
        assert_eq!(w.await.unwrap().unwrap(), StatusCode::CONFLICT, "a waiter ends with 409 at its wait");
    }
    assert_eq!(waiting().await, Some(0), "every place is given back");
    stack.stop().await;
}

/// One user cannot take every waiting place: past their share their waits are refused at once,
/// and another user still waits.
#[actix_web::test]
async fn one_user_cannot_take_every_waiting_place() {
    let stack = spawn_stack_with(false, 100, 2).await;
    let mut unreachable = Vec::new();
    for user in ["greedy-1", "patient-1"] {
        let accepted = stack.sync(user, &format!("band-{user}")).await;
        let token = events::ConsistencyToken {
            partition: accepted["partition"].as_i64().unwrap() as i32,
            offset: accepted["offset"].as_i64().unwrap() + 1_000_000,
        };
        unreachable.push(format!("/v1/users/{user}/model?consistency_token={token}"));
    }
    let wait = |user: &'static str, path: String, ms: u64| {
        let request = stack.http.get(format!("{}{path}&wait={ms}", stack.api)).bearer_auth(stack.signer.mint(
            user,
            None,
            Duration::from_secs(600),
        ));
        tokio::spawn(async move { request.send().await.map(|r| r.status()) })
    };
    let held = [wait("greedy-1", unreachable[0].clone(), 3000), wait("greedy-1", unreachable[0].clone(), 3000)];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, body) = stack.get(&format!("{}&wait=3000", unreachable[0]), "greedy-1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("for this user"), "{body}");
    let (status, _, body) = stack.get(&format!("{}&wait=200", unreachable[1]), "patient-1").await;
    assert_eq!(status, StatusCode::CONFLICT, "another user waits, then hears not yet: {body}");
    for h in held {
        assert_eq!(h.await.unwrap().unwrap(), StatusCode::CONFLICT);
    }
    stack.stop().await;
}

/// A sync's status with a consistency token waits only on the caller's own partition: a token
/// of another partition is refused before any work, so it cannot probe others' positions.
#[actix_web::test]
async fn a_sync_status_wait_is_authorized_before_any_work() {
    let stack = spawn_stack(false).await;
    let accepted = stack.sync("prober-1", "band-p1").await;
    let partition = accepted["partition"].as_i64().unwrap() as i32;
    let other = events::ConsistencyToken { partition: (partition + 1) % 3, offset: 5 };
    let started = std::time::Instant::now();
    let (status, _, body) =
        stack.get(&format!("/v1/syncs/{}?consistency_token={other}&wait=5000", uuid::Uuid::new_v4()), "prober-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("partition"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "refused without waiting");
    stack.stop().await;
}

/// The lines of an NDJSON export, parsed, with their types.
async fn export(stack: &Stack, user: &str, query: &str) -> Vec<Value> {
    let res = stack
        .http
        .get(format!("{}/v1/users/{user}/export{query}", stack.api))
        .bearer_auth(stack.signer.mint(user, None, Duration::from_secs(600)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn kinds(lines: &[Value]) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for l in lines {
        *kinds.entry(l["type"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    kinds
}

/// Export then erasure, through the log: the export holds every kind of stored row with the raw
/// samples decoded; the erasure request is a 202 with a token, the processor deletes everything
/// of that user and leaves a receipt, another user keeps their data, and a device token cannot
/// erase its owner.
#[actix_web::test]
async fn a_user_exports_then_erases_their_data_and_another_user_keeps_theirs() {
    let stack = spawn_stack(true).await;
    let mine = stack.sync("erased-1", "band-e1").await;
    let theirs = stack.sync("kept-1", "band-k1").await;
    for (user, accepted) in [("erased-1", &mine), ("kept-1", &theirs)] {
        let token = accepted["consistency_token"].as_str().unwrap();
        let (status, _, body) =
            stack.get(&format!("/v1/users/{user}/model?consistency_token={token}&wait=10000"), user).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let lines = export(&stack, "erased-1", "").await;
    let found = kinds(&lines);
    assert_eq!(lines.first().unwrap()["type"], "export");
    assert_eq!(lines.last().unwrap(), &json!({"type": "end", "lines": lines.len()}));
    for kind in ["profile", "sync", "day", "rolling", "samples"] {
        assert!(found.get(kind).copied().unwrap_or(0) >= 1, "no {kind} line: {found:?}");
    }
    let samples = lines.iter().find(|l| l["type"] == "samples").unwrap();
    assert!(samples["samples"].is_object() && samples["samples"].get("undecodable").is_none(), "{samples}");
    assert!(lines.iter().all(|l| l["data"].get("user_id").is_none_or(|u| u == "erased-1")), "only the user's rows");

    // A device token may not erase its owner's data; another user may not either.
    let delete = |user: &str, token: String| {
        stack.http.delete(format!("{}/v1/users/{user}/data", stack.api)).bearer_auth(token).send()
    };
    let res =
        delete("erased-1", stack.signer.mint("erased-1", Some("band-e1"), Duration::from_secs(60))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = delete("erased-1", stack.signer.mint("kept-1", None, Duration::from_secs(60))).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = delete("erased-1", stack.signer.mint("erased-1", None, Duration::from_secs(60))).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let erasure: Value = res.json().await.unwrap();
    assert_eq!(erasure["partition"], mine["partition"], "the erasure is in the user's partition");
    assert!(erasure["offset"].as_i64() > mine["offset"].as_i64(), "after the user's syncs");
    let (status, _, body) =
        stack.get(&format!("{}&wait=10000", erasure["status_url"].as_str().unwrap()), "erased-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(body["erasures"][0]["erasure_id"], erasure["erasure_id"]);
    assert!(body["erasures"][0]["rows_deleted"].as_i64().unwrap() > 0, "{body}");

    let after = kinds(&export(&stack, "erased-1", "").await);
    assert_eq!(
        after,
        [("end", 1), ("erasure", 1), ("export", 1)].into_iter().map(|(k, n)| (k.to_owned(), n)).collect(),
        "nothing but the receipt is left"
    );
    let (_, _, model) = stack.get("/v1/users/erased-1/model", "erased-1").await;
    assert!(model["model"].is_null(), "{model}");
    let (_, _, model) = stack.get("/v1/users/kept-1/model", "kept-1").await;
    assert!(!model["model"].is_null(), "the other user keeps their data: {model}");
    stack.stop().await;
}

#[actix_web::test]
async fn the_dashboard_renders_the_users_data_in_headless_chromium() {
    let stack = spawn_stack(true).await;
    let older = stack.sync_ending("dash-user", "band-9", chrono::Utc::now().timestamp_millis() - 2 * 86_400_000).await;
    let newer = stack.sync("dash-user", "band-9").await;
    let last = if newer["offset"].as_i64() > older["offset"].as_i64() { &newer } else { &older };
    let path = format!(
        "/v1/users/dash-user/days?consistency_token={}&wait=10000",
        last["consistency_token"].as_str().unwrap()
    );
    assert_eq!(stack.get(&path, "dash-user").await.0, StatusCode::OK);

    // The page and its assets are served from here, with no third-party origin.
    let html = stack.http.get(format!("{}/dashboard", stack.api)).send().await.unwrap();
    assert!(html.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
    let html = html.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "no CDN");
    for asset in [
        "/dashboard/dashboard.js",
        "/dashboard/dashboard.css",
        "/dashboard/vendor/uPlot.iife.min.js",
        "/dashboard/vendor/uPlot.min.css",
    ] {
        assert_eq!(
            stack.http.get(format!("{}{asset}", stack.api)).send().await.unwrap().status(),
            StatusCode::OK,
            "{asset}"
        );
    }

    let token = stack.signer.mint("dash-user", None, Duration::from_secs(600));
    let url = format!("{}/dashboard#user=dash-user&token={token}", stack.api);
    let profile = tempdir();
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".into());
    let out = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .args([
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--virtual-time-budget=15000",
            "--window-size=1200,1600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {chromium} (install Debian's chromium package, or set CHROMIUM_BIN): {e}"));
    let dom = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        dom.contains("data-state=\"rendered\""),
        "the page did not render:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dom.matches("<canvas").count(), 3, "three charts");
    assert!(dom.contains("data-syncs=\"2\""), "both syncs listed");
    let points: u32 =
        dom.split("data-points=\"").nth(1).and_then(|s| s.split('"').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(points >= 2, "the charts have data points ({points})");
    assert!(dom.contains("processed up to offset"), "the page says how fresh it is");
    stack.stop().await;
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("chromium-profile"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
