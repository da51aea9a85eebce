//! What operators see: a trace id that crosses the Kafka hop, metrics named by Prometheus'
//! conventions, and a dashboard and alerts that only use metrics the services really export.

mod stack;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

/// Every metric name a PromQL expression of the chart uses (a `_bucket`/`_sum`/`_count` series
/// counts as its histogram).
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = promql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["ingest_", "processor_", "schema_registry_"].iter().any(|p| promql[i..].starts_with(p))
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
        if starts {
            let end =
                promql[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(promql.len(), |n| i + n);
            let name = &promql[i..end];
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
            names.insert(base.to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// The `# TYPE` names of an exposition.
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

fn chart_file(path: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../helm/fitness/");
    std::fs::read_to_string(format!("{root}{path}")).unwrap_or_else(|e| panic!("reading helm/fitness/{path}: {e}"))
}

#[tokio::test]
async fn a_trace_crosses_the_hop_and_the_metrics_keep_the_conventions_the_dashboard_relies_on() {
    let stack = stack::spawn(true, |_| {}).await;
    let accepted = stack.sync("obs-user", "obs-band").await;
    stack.wait_processed("obs-user", &accepted).await;
    // A request with a bad traceparent still gets a trace of its own.
    let res = stack.http.get(format!("{}/healthz", stack.api)).header("traceparent", "nonsense").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let own = res.headers()["traceresponse"].to_str().unwrap();
    assert!(service_kit::trace::TraceContext::parse(own).is_some(), "{own}");

    let http = &stack.http;
    let scrape = |url: String| async move {
        let res = http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.unwrap()
    };
    let ingest = scrape(format!("{}/metrics", stack.api)).await;
    // The consumer lag comes from librdkafka's statistics, every few seconds: wait for the first.
    let mut processor = String::new();
    for _ in 0..60 {
        processor = scrape(format!("{}/metrics", stack.processor_url().unwrap())).await;
        if processor.contains("processor_consumer_lag{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let registry = scrape(format!("{}/metrics", testkit::schema_registry_url())).await;
    testkit::metrics::assert_conventions(&ingest, "ingest");
    testkit::metrics::assert_conventions(&processor, "processor");
    testkit::metrics::assert_conventions(&registry, "schema_registry");
    // The pools and the registry client report, the read pool after a read.
    for name in
        ["ingest_db_pool_connections", "ingest_db_pool_wait_seconds", "ingest_schema_registry_client_errors_total"]
    {
        assert!(ingest.contains(name), "{name} missing:\n{ingest}");
    }
    for name in
        ["processor_db_pool_max_connections", "processor_ready 1", "processor_schema_registry_client_errors_total"]
    {
        assert!(processor.contains(name), "{name} missing:\n{processor}");
    }

    // Every metric of the dashboard and of the alerts exists.
    let all: BTreeSet<String> = [&ingest, &processor, &registry].into_iter().flat_map(|e| exported(e)).collect();
    let dashboard: Value = serde_json::from_str(&chart_file("dashboards/fitness.json")).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs
                .push((panel["title"].as_str().unwrap_or("?").to_owned(), target["expr"].as_str().unwrap().to_owned()));
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let rules = chart_file("templates/prometheusrule.yaml");
    for line in rules.lines().filter(|l| l.trim_start().starts_with("expr:")) {
        exprs.push(("alert".into(), line.to_owned()));
    }
    for (title, expr) in &exprs {
        let used = metric_names(expr);
        assert!(!used.is_empty() || expr.contains("up{"), "{title}: no metric of ours in {expr}");
        for name in &used {
            assert!(all.contains(name), "{title}: {name} is not exported by any service ({expr})");
        }
    }
    stack.stop().await;
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(processor_end_to_end_lag_seconds_bucket{a=\"b\"}[5m]))) \
         / sum(ingest_http_requests_total) + foo_processor_x",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["ingest_http_requests_total".to_owned(), "processor_end_to_end_lag_seconds".to_owned()]
    );
}
