//! `fitness.events.DeviceSynced`: a sync was validated and is safe in Kafka (not "processed").

use std::sync::OnceLock;

use apache_avro::Schema;

include!(concat!(env!("OUT_DIR"), "/device_synced_v1.rs"));

/// The schema producers write, as committed in `schemas/`.
pub const SCHEMA_JSON: &str = include_str!("../../../schemas/device-synced/v1.avsc");

/// The Schema Registry subject under the topic-name strategy.
pub const SUBJECT: &str = "device-synced-value";

/// The parsed [`SCHEMA_JSON`]; also the processor's reader schema.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(SCHEMA_JSON).expect("schemas/device-synced/v1.avsc is valid Avro"))
}
