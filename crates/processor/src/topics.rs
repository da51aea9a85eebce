//! `processor create-topics`: creates the event topic and its DLQ when they are missing.
//!
//! Partitions are set with headroom at creation: the embedded broker cannot add partitions, and
//! adding them on Kafka remaps keys (and so users) to other partitions.

use std::time::Duration;

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Settings;

/// Creates the topics; returns, per topic, whether it was created now (false: it existed).
pub async fn create_topics(
    settings: &Settings,
    partitions: i32,
    replication: i32,
) -> anyhow::Result<Vec<(String, bool)>> {
    let admin: AdminClient<DefaultClientContext> = events::kafka::client_config(&settings.kafka_bootstrap_servers)
        .create()
        .context("creating the Kafka admin client")?;
    let topics = [
        NewTopic::new(&settings.topic, partitions, TopicReplication::Fixed(replication)),
        NewTopic::new(&settings.dlq_topic, 1, TopicReplication::Fixed(replication)),
    ];
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(30)))
        .request_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .with_context(|| format!("creating topics on {}: is the broker up?", settings.kafka_bootstrap_servers))?;
    results
        .into_iter()
        .map(|r| match r {
            Ok(name) => Ok((name, true)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => Ok((name, false)),
            Err((name, e)) => Err(anyhow::anyhow!("creating topic {name}: {e}")),
        })
        .collect()
}
