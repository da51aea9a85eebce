//! Running an actix-web server under the service's shutdown token instead of actix's own signal
//! handling, which stops at once on Ctrl-C and which a test cannot trigger.

use actix_web::dev::Server;
use tokio_util::sync::CancellationToken;

/// Serves until `shutdown` is cancelled, then stops accepting and finishes the requests in
/// flight (up to the server's `shutdown_timeout`). Build the server with `.disable_signals()`.
pub async fn serve_until_cancelled(server: Server, shutdown: CancellationToken) -> std::io::Result<()> {
    let handle = server.handle();
    let stopper = tokio::spawn(async move {
        shutdown.cancelled().await;
        log::info!("stopping: finishing the requests in flight");
        handle.stop(true).await;
    });
    let served = server.await;
    stopper.abort();
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{web, App, HttpServer};

    #[actix_web::test]
    async fn a_cancelled_token_stops_the_server_and_frees_its_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hi" })))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(serve_until_cancelled(server, shutdown.clone()));
        let connected = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(connected.is_ok(), "serving");
        drop(connected);
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(10), serving)
            .await
            .expect("stops promptly")
            .unwrap()
            .expect("stops cleanly");
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "the port is free again");
    }
}
