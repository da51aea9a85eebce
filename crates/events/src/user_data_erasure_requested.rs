//! `fitness.events.UserDataErasureRequested`: a user asked for all of their data to be erased.
//!
//! Published on the DeviceSynced topic, keyed by the user, under the TopicRecordNameStrategy
//! subject [`SUBJECT`]; the processor tells it from DeviceSynced by the writer schema's full name.
//! Generated from `schemas/user-data-erasure-requested/v*.avsc` at build time.

use std::sync::OnceLock;

use apache_avro::Schema;

include!(concat!(env!("OUT_DIR"), "/user_data_erasure_requested.rs"));

/// The parsed reader schema (the latest version).
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::parse_str(READER_SCHEMA_JSON).expect("the latest UserDataErasureRequested schema is valid Avro")
    })
}
