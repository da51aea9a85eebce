//! The binary: bad input is a message and a non-zero exit status, never a panic.

use std::process::{Command, Output};

fn devsim(args: &[&str], secret: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devsim"));
    cmd.args(args).env_remove("AUTH_TOKEN_SECRET");
    if let Some(s) = secret {
        cmd.env("AUTH_TOKEN_SECRET", s);
    }
    cmd.output().expect("devsim runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SECRET: &str = "cli-test-secret-0123456789";

#[test]
fn bad_options_are_usage_errors() {
    for (args, expect) in [
        (&["load", "--rate", "fast"][..], "is not a rate"),
        (&["load", "--count", "0"][..], "--count"),
        (&["load", "--concurrency", "0"][..], "--concurrency"),
        (&["run", "--speed", "0"][..], "is not a speed"),
        (&["run", "--p-late", "2"][..], "is not a probability"),
        (&["run", "--sync-interval", "90s"][..], "whole minutes"),
        (&["run", "--users", "0"][..], "--users"),
        (&["run", "--duration", "soon"][..], "is not a duration"),
        (&["fly"][..], "unrecognized subcommand"),
    ] {
        let out = devsim(args, Some(SECRET));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_missing_or_short_secret_and_a_bad_url_are_explained() {
    let out = devsim(&["run"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("AUTH_TOKEN_SECRET is not set"), "{}", stderr(&out));
    let out = devsim(&["load", "--count", "1"], Some("short"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("shorter than 16 bytes"), "{}", stderr(&out));
    let out = devsim(&["run", "--url", "localhost:8080"], Some(SECRET));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("must be an http:// or https:// URL"), "{}", stderr(&out));
}

#[test]
fn a_load_that_reaches_no_server_fails_with_a_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = devsim(&["load", "--url", &url, "--count", "3", "--rate", "max", "--progress-every", "0"], Some(SECRET));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no request was accepted"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("transport: 3"));
}

#[test]
fn preview_prints_valid_commands_without_a_secret() {
    let out = devsim(&["preview", "--count", "4", "--users", "2", "--start-ms", "1764000000000"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    for line in lines {
        let body: serde_json::Value = serde_json::from_str(line).unwrap();
        let now = body["clock"]["phone_time_ms"].as_i64().unwrap();
        ingest_api::command::parse_command(&body, None, &ingest_api::config::Limits::default(), now).unwrap();
    }
}
