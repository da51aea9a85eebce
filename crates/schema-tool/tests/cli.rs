//! The `schemas` CLI: offline checks of the repository's schemas and of broken copies, and
//! registration against a real registry (dry run, apply, idempotence, refusal).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn schemas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_schemas")).args(args).output().expect("the schemas binary runs")
}

fn repo_schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// A copy of the repository's schemas with a v3 made by `change` from v2.
fn with_v3(change: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(testkit::unique("schemas"));
    // Every subject's directory, as the manifest names them all.
    for entry in std::fs::read_dir(repo_schemas()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(dir.join(entry.file_name())).unwrap();
            for file in std::fs::read_dir(entry.path()).unwrap() {
                let file = file.unwrap();
                std::fs::copy(file.path(), dir.join(entry.file_name()).join(file.file_name())).unwrap();
            }
        } else {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    std::fs::remove_file(dir.join("device-synced/v3.avsc")).ok();
    let mut v3: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("device-synced/v2.avsc")).unwrap()).unwrap();
    change(&mut v3);
    std::fs::write(dir.join("device-synced/v3.avsc"), v3.to_string()).unwrap();
    dir
}

#[test]
fn the_repositorys_schemas_pass_the_check() {
    let out = schemas(&["check", "--dir", repo_schemas().to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("v2: BACKWARD_TRANSITIVE compatible with v1"), "{stdout}");
    assert!(stdout.contains("generated code is current"));
}

#[test]
fn an_incompatible_change_fails_the_check_with_the_field_and_the_rule() {
    // A new field without a default under BACKWARD_TRANSITIVE.
    let dir = with_v3(|v| v["fields"].as_array_mut().unwrap().push(json!({"name": "mood", "type": "string"})));
    let out = schemas(&["check", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("v3")
            && stderr.contains("breaks BACKWARD_TRANSITIVE")
            && stderr.contains("Field 'mood' in reader schema must have a default value"),
        "{stderr}"
    );
    // A type change.
    let dir = with_v3(|v| {
        let f = v["fields"].as_array_mut().unwrap().iter_mut().find(|f| f["name"] == "window_start_ms").unwrap();
        f["type"] = json!("string");
    });
    let out = schemas(&["check", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("v3") && stderr.contains("window_start_ms"), "{stderr}");
    // And the diff says it in words.
    let out = schemas(&["diff", "--dir", dir.to_str().unwrap(), "--from", "2", "--to", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("`window_start_ms`: type changed from long to string"), "{stdout}");
}

#[test]
fn bad_arguments_are_a_message_and_exit_1() {
    for args in [&["frobnicate"][..], &["check", "--dir", "/nonexistent"][..], &["register"][..]] {
        let out = schemas(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[tokio::test]
async fn registration_is_a_dry_run_until_apply_idempotent_and_refuses_incompatible_versions() {
    let db = testkit::TestDatabase::create();
    let registry = testkit::apps::spawn_registry(testkit::apps::registry_settings(&db.url)).await;
    let url = registry.url.clone();
    let repo = repo_schemas();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_schemas")).args(args).output().unwrap())
    };
    let register = |dir: &Path, extra: &[&str]| -> Vec<String> {
        ["register", "--registry", url.as_str(), "--dir", dir.to_str().unwrap()]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let args = |extra: &[&str]| register(&repo, extra);

    let out = run(args(&[])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would register"));
    let subjects: Value = reqwest::get(format!("{url}/subjects")).await.unwrap().json().await.unwrap();
    assert_eq!(subjects, json!([]), "a dry run registers nothing");

    let out = run(args(&["--apply"])).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let versions: Value =
        reqwest::get(format!("{url}/subjects/device-synced-value/versions")).await.unwrap().json().await.unwrap();
    assert_eq!(versions, json!([1, 2]));
    let config: Value = reqwest::get(format!("{url}/config/device-synced-value")).await.unwrap().json().await.unwrap();
    assert_eq!(config, json!({"compatibilityLevel": "BACKWARD_TRANSITIVE"}));

    let out = run(args(&["--apply"])).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && stdout.contains("already registered as version 2"), "{stdout}");

    // An incompatible v3 is refused by the tool (before registering) and by the registry (409).
    let bad = with_v3(|v| v["fields"].as_array_mut().unwrap().push(json!({"name": "mood", "type": "string"})));
    let out = run(register(&bad, &["--apply"])).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("v3 is not compatible"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v3 = std::fs::read_to_string(bad.join("device-synced/v3.avsc")).unwrap();
    let res = reqwest::Client::new()
        .post(format!("{url}/subjects/device-synced-value/versions"))
        .json(&json!({"schema": v3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error_code"], 409);
    assert!(body["message"].as_str().unwrap().contains("mood"), "{body}");
}
