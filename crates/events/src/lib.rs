//! Event types shared by the producer (`ingest-api`) and the consumer (`processor`).
//!
//! `schemas/` is the source of truth: the types below are generated from the `.avsc` files at
//! build time, and the schema text is compiled in, so a producer registers exactly the schema its
//! types were generated from.

pub mod avro;
pub mod codec;
pub mod device_synced;
pub mod headers;
pub mod kafka;
pub mod partitioner;
pub mod registry;
pub mod token;
pub mod user_data_erasure_requested;

pub use codec::{CodecError, EventDecoder, EventEncoder, LogEvent};
pub use device_synced::DeviceSynced;
pub use token::ConsistencyToken;
pub use user_data_erasure_requested::UserDataErasureRequested;

/// The topic DeviceSynced events are published to.
pub const DEVICE_SYNCED_TOPIC: &str = "device-synced";
/// Where the processor hands off events it cannot apply.
pub const DEVICE_SYNCED_DLQ_TOPIC: &str = "device-synced.dlq";
