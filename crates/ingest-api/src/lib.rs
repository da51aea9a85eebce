//! ingest-api: the command side. It validates a device's sync while the caller is connected and
//! publishes it to Kafka; it never writes to the database.

pub mod config;
pub mod health;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer};
use anyhow::Context;

use crate::config::Settings;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(&settings.listen_addr).with_context(|| format!("binding {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(|| App::new().service(health::healthz)).listen(listener)?.run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or Ctrl-C; in-flight requests are finished first.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
