//! The shutdown signal: SIGINT (Ctrl-C) and SIGTERM (Kubernetes, systemd) both start the same
//! graceful stop, by cancelling one token that every part of a service watches.

use tokio_util::sync::CancellationToken;

/// A token cancelled by the first SIGINT or SIGTERM. Call inside a Tokio runtime (it spawns the
/// task that waits for the signal). A second Ctrl-C is left to the default action, so a stop
/// that hangs can still be forced.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        log::info!("{signal} received: stopping gracefully");
        cancel.cancel();
    });
    token
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(e) => {
            log::error!("cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
