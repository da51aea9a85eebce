//! A request whose query or path does not parse is a 400 `application/problem+json` whose detail
//! names the parameter, on every read route, never actix's `text/plain` "Query deserialize
//! error". Against the real service (broker, registry, PostgreSQL), with a valid user token, so
//! the answer is the parameter's, not the authentication's.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

mod stack;

const USER: &str = "extractor-errors";

#[actix_web::test]
async fn malformed_queries_and_paths_get_a_problem_naming_the_parameter() {
    let stack = stack::spawn(false, |_| {}).await;
    let token = stack.signer.mint(USER, None, Duration::from_secs(600));
    let reads = [
        format!("/v1/users/{USER}/days"),
        format!("/v1/users/{USER}/model"),
        format!("/v1/users/{USER}/syncs"),
        format!("/v1/syncs/{}", uuid::Uuid::new_v4()),
    ];
    // (path and query, what the detail must contain)
    let mut cases: Vec<(String, String)> = Vec::new();
    for route in &reads {
        cases.push((format!("{route}?wait=99999999999999999999"), "wait=".into()));
        cases.push((format!("{route}?wait=abc"), "wait=\"abc\"".into()));
        cases.push((format!("{route}?wait="), "wait=".into()));
        cases.push((format!("{route}?limit=ten"), "limit=\"ten\"".into()));
    }
    // The erasure status and the export read the same query.
    for route in [format!("/v1/users/{USER}/erasure"), format!("/v1/users/{USER}/export")] {
        cases.push((format!("{route}?wait=abc"), "wait=\"abc\"".into()));
        cases.push((format!("{route}?consistency_token=0:1&wait=99999999999999999999"), "wait=".into()));
    }
    cases.push((format!("/v1/users/{USER}/days?from=notadate"), "from=\"notadate\"".into()));
    cases.push((format!("/v1/users/{USER}/days?to=2024-13-01&from=2024-01-01"), "to=\"2024-13-01\"".into()));
    cases.push(("/v1/syncs/not-a-uuid".into(), "sync id".into()));
    // A caller's long value is not echoed whole.
    cases.push((format!("/v1/users/{USER}/days?wait={}", "9".repeat(4000)), "wait=".into()));

    for (path, named) in &cases {
        let res = stack.http.get(format!("{}{path}", stack.api)).bearer_auth(&token).send().await.unwrap();
        let status = res.status();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = res.text().await.unwrap();
        let shown = &text[..text.len().min(400)];
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {shown}");
        assert_eq!(content_type, "application/problem+json", "{path}: {shown}");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {shown}"));
        assert_eq!(body["status"], 400, "{path}: {body}");
        assert_eq!(body["type"], "https://fitness.example/problems/bad-query", "{path}: {body}");
        assert_eq!(body["title"], "Bad query", "{path}: {body}");
        let detail = body["detail"].as_str().unwrap_or_else(|| panic!("{path}: no detail: {body}"));
        assert!(detail.contains(named.as_str()), "{path}: the detail names {named}: {detail}");
        assert!(!detail.contains("Query deserialize error"), "{path}: {detail}");
        assert!(detail.chars().count() <= 300, "{path}: the detail is bounded: {} chars", detail.chars().count());
    }

    // The same routes, well formed, are not refused for their query (the first read of a fresh
    // database answers with what there is).
    let res = stack
        .http
        .get(format!("{}/v1/users/{USER}/days?wait=0&limit=5&from=2024-01-01&to=2024-01-02", stack.api))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap_or_default());

    // A path no route serves is a 404 problem too, not an empty body.
    for path in ["/v1/nothing-here", "/v1/users/x/days/extra", &format!("/{}", "a".repeat(3000))] {
        let res = stack.http.get(format!("{}{path}", stack.api)).bearer_auth(&token).send().await.unwrap();
        let status = res.status();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"), "{path}");
        assert_eq!(body["type"], "https://fitness.example/problems/not-found", "{body}");
        assert!(body["detail"].as_str().is_some_and(|d| d.len() < 200), "bounded detail: {body}");
    }
    stack.stop().await;
}
