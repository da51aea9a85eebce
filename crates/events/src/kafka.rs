//! Kafka client configuration shared by the services.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

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

/// How many partitions the broker says `topic` has; an error, in words, when the broker cannot
/// be reached or does not know the topic. Blocking: call from a blocking thread.
pub fn topic_partitions<C: ClientContext>(client: &Client<C>, topic: &str, timeout: Duration) -> Result<usize, String> {
    let metadata = client.fetch_metadata(Some(topic), timeout).map_err(|e| e.to_string())?;
    match metadata.topics().first() {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len()),
        _ => Err(format!("topic {topic} not found")),
    }
}

/// A topic to create, with its topic-level configuration (`retention.ms`, ...).
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    pub config: Vec<(&'static str, String)>,
}

impl TopicSpec {
    pub fn new(name: &str, partitions: i32, replication: i32) -> Self {
        Self { name: name.to_owned(), partitions, replication, config: Vec::new() }
    }

    pub fn set(mut self, key: &'static str, value: impl ToString) -> Self {
        self.config.push((key, value.to_string()));
        self
    }
}

/// Creates each topic that is missing (topics must be created explicitly: the embedded broker
/// does not create them on first use). Returns, per topic, whether it was created now; a topic
/// that exists keeps its configuration.
pub async fn create_topics(bootstrap: &str, topics: &[TopicSpec]) -> Result<Vec<(String, bool)>, String> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().map_err(|e| format!("creating the Kafka admin client: {e}"))?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            t.config
                .iter()
                .fold(NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication)), |n, (k, v)| {
                    n.set(k, v)
                })
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&new_topics, &opts)
        .await
        .map_err(|e| format!("creating topics on {bootstrap}: {e}; is the broker up?"))?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(name) => Ok((name, true)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((name, false)),
            Err((name, e)) => Err(format!("creating topic {name}: {e}")),
        })
        .collect()
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
