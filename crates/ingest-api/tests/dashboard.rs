//! The dashboard refreshes by itself: loaded in headless Chromium against a real stack, it follows
//! the user's live event stream, and a sync posted while it is open appears on the page without
//! a reload. Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! NUL-separated JSON on its file descriptors 3 and 4), so no WebDriver is needed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout};

mod stack;

/// A headless Chromium on the DevTools protocol.
struct Browser {
    child: Child,
    commands: ChildStdin,
    answers: ChildStdout,
    buffer: Vec<u8>,
    next_id: u64,
    profile: std::path::PathBuf,
}

impl Browser {
    async fn launch() -> Self {
        let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "chromium".into());
        let profile = std::env::temp_dir().join(testkit::unique("chromium-profile"));
        std::fs::create_dir_all(&profile).unwrap();
        // The protocol pipe is fds 3 (commands in) and 4 (answers out): the shell maps them
        // onto our stdin and stdout.
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null 2>/dev/null"#)
            .arg(&chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe"])
            .args(["--disable-background-networking", "--disable-component-update", "--no-first-run"])
            .args(["--disable-sync", "--window-size=1200,1600"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("running {chromium} (install Debian's chromium, or set CHROMIUM_BIN): {e}"));
        let commands = child.stdin.take().unwrap();
        let answers = child.stdout.take().unwrap();
        Self { child, commands, answers, buffer: Vec::new(), next_id: 0, profile }
    }

    /// Sends a command and returns its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).await.unwrap();
        self.commands.flush().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            while let Some(end) = self.buffer.iter().position(|b| *b == 0) {
                let raw: Vec<u8> = self.buffer.drain(..=end).collect();
                let answer: Value = serde_json::from_slice(&raw[..raw.len() - 1]).unwrap();
                if answer["id"] == id {
                    assert!(answer.get("error").is_none(), "{method}: {answer}");
                    return answer["result"].clone();
                }
            }
            let mut chunk = vec![0u8; 65536];
            let n = tokio::time::timeout_at(deadline, self.answers.read(&mut chunk))
                .await
                .unwrap_or_else(|_| panic!("Chromium did not answer {method}"))
                .unwrap();
            assert!(n > 0, "Chromium exited");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    /// Opens a page; returns its session.
    async fn open(&mut self, url: &str) -> String {
        let target = self.call("Target.createTarget", json!({"url": url}), None).await;
        let attached =
            self.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true}), None).await;
        attached["sessionId"].as_str().unwrap().to_owned()
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let r = self
            .call("Runtime.evaluate", json!({"expression": expression, "returnByValue": true}), Some(session))
            .await;
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it is true or `within` passes.
    async fn wait_for(&mut self, session: &str, expression: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.eval(session, expression).await == json!(true) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[actix_web::test]
async fn a_sync_posted_while_the_dashboard_is_open_appears_without_a_reload() {
    let stack = stack::spawn(true, |_| {}).await;
    let user = testkit::unique("dash-live");
    let first = stack.sync_ending(&user, "band-d", chrono::Utc::now().timestamp_millis() - 86_400_000).await;
    stack.wait_processed(&user, &first).await;

    let mut browser = Browser::launch().await;
    let token = stack.signer.mint(&user, None, Duration::from_secs(600));
    let page = browser.open(&format!("{}/dashboard#user={user}&token={token}", stack.api)).await;
    assert!(
        browser
            .wait_for(
                &page,
                "document.body.dataset.state === 'rendered' && document.body.dataset.live === 'open'",
                Duration::from_secs(20)
            )
            .await,
        "the page rendered and opened its live stream: {}",
        browser.eval(&page, "document.body.outerHTML.slice(0, 2000)").await
    );
    assert_eq!(browser.eval(&page, "document.body.dataset.syncs").await, "1");
    // A mark on this page load: a reload would lose it.
    browser.eval(&page, "window.__loaded = 'once'").await;

    let second = stack.sync_ending(&user, "band-d", chrono::Utc::now().timestamp_millis()).await;
    assert!(
        browser.wait_for(&page, "document.body.dataset.syncs === '2'", Duration::from_secs(15)).await,
        "the new sync ({}) appeared on the page: {}",
        second["sync_id"],
        browser.eval(&page, "document.body.outerHTML.slice(0, 2000)").await
    );
    assert_eq!(browser.eval(&page, "window.__loaded").await, "once", "no reload");
    assert_eq!(browser.eval(&page, "Number(document.body.dataset.updates) >= 1").await, true);
    assert_eq!(browser.eval(&page, "document.querySelectorAll('canvas').length").await, 3, "three charts");
    drop(browser);
    stack.stop().await;
}
