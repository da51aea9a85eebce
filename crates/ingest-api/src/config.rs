//! Settings from the environment, with defaults that match `make run`.

#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP API listens on; port 0 picks a free one.
    pub listen_addr: String,
    pub kafka_bootstrap_servers: String,
    pub schema_registry_url: String,
    pub topic: String,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            listen_addr: var("INGEST_LISTEN_ADDR", "127.0.0.1:8080"),
            kafka_bootstrap_servers: var("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            schema_registry_url: var("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081"),
            topic: var("INGEST_TOPIC", events::DEVICE_SYNCED_TOPIC),
        })
    }
}

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
