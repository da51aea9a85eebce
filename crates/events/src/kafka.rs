//! Kafka client configuration shared by the services.

use rdkafka::config::ClientConfig;

/// A client config for `bootstrap`, plus every `KAFKA_*` environment variable as a librdkafka
/// property (`KAFKA_SECURITY_PROTOCOL=SASL_SSL` → `security.protocol`, `KAFKA_DEBUG=eos` →
/// `debug`), so production settings such as SASL and TLS need no code.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    // A broker back from an outage is reconnected to within a second (librdkafka's default
    // backoff grows to 10 s, which is most of a short outage's recovery).
    config.set("reconnect.backoff.ms", "100").set("reconnect.backoff.max.ms", "1000");
    for (name, value) in std::env::vars() {
        if let Some(property) = property_name(&name) {
            config.set(property, value);
        }
    }
    config
}

fn property_name(env: &str) -> Option<String> {
    let rest = env.strip_prefix("KAFKA_")?;
    // The bootstrap servers are a setting of their own.
    if rest.is_empty() || rest == "BOOTSTRAP_SERVERS" {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace('_', "."))
}

#[cfg(test)]
mod tests {
    #[test]
    fn environment_names_map_to_librdkafka_properties() {
        assert_eq!(super::property_name("KAFKA_SASL_MECHANISM").as_deref(), Some("sasl.mechanism"));
        assert_eq!(super::property_name("KAFKA_DEBUG").as_deref(), Some("debug"));
        assert_eq!(super::property_name("KAFKA_BOOTSTRAP_SERVERS"), None);
        assert_eq!(super::property_name("PATH"), None);
    }
}
