//! `fitness.events.DeviceSynced`: a sync was validated and is safe in Kafka (not "processed").
//!
//! Generated from `schemas/device-synced/v*.avsc` and `schemas/manifest.json` at build time:
//! `v1`, `v2`, … hold each version's types; the latest version's types are re-exported here and
//! are what the processor reads every version into.

use std::sync::OnceLock;

use apache_avro::Schema;

include!(concat!(env!("OUT_DIR"), "/device_synced.rs"));

/// The parsed reader schema (the latest version).
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(READER_SCHEMA_JSON).expect("the latest DeviceSynced schema is valid Avro"))
}

/// The parsed schema producers write (the manifest's producer version).
pub fn producer_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::parse_str(SCHEMA_JSON).expect("the producer's DeviceSynced schema is valid Avro"))
}
