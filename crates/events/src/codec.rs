//! Confluent-framed Avro (magic byte, 4-byte schema id, datum) through a Schema Registry.

use std::collections::HashMap;
use std::sync::Mutex;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::{from_value, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::device_synced::DeviceSynced;
use crate::registry::{RegistryClient, RegistryError};
use crate::user_data_erasure_requested::UserDataErasureRequested;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("not Confluent-framed Avro: {0}")]
    Framing(&'static str),
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    /// The writer schema is a record this consumer does not know (by its full name).
    #[error("record {0} is not an event of this topic")]
    UnknownRecord(String),
}

impl CodecError {
    /// Worth retrying later (the registry is down or erring), as opposed to a bad record.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CodecError::Registry(e) if e.fault.is_retryable())
    }
}

/// Encodes with a compiled-in schema, registered under the topic's value subject: the producer
/// never depends on whatever "latest" is.
pub struct EventEncoder {
    registry: RegistryClient,
    subject: String,
    schema_json: String,
    schema: Schema,
}

impl EventEncoder {
    /// Registers under the topic's value subject (`<topic>-value`, TopicNameStrategy).
    pub fn new(registry_url: &str, topic: &str, schema_json: &str) -> Result<Self, CodecError> {
        Self::with_subject(registry_url, &format!("{topic}-value"), schema_json)
    }

    /// Registers under an explicit subject: a second event type on a topic goes under its
    /// TopicRecordNameStrategy subject, e.g. [`crate::user_data_erasure_requested::SUBJECT`].
    pub fn with_subject(registry_url: &str, subject: &str, schema_json: &str) -> Result<Self, CodecError> {
        Ok(Self {
            registry: RegistryClient::new(registry_url)?,
            subject: subject.to_owned(),
            schema_json: schema_json.to_owned(),
            schema: Schema::parse_str(schema_json).map_err(Box::new)?,
        })
    }

    /// Registers (or finds) the schema and returns its id; call at start so the first request
    /// is fast. A failure is not remembered: the next call asks the registry again.
    pub async fn warm_up(&self) -> Result<u32, CodecError> {
        Ok(self.registry.register(&self.subject, &self.schema_json).await?)
    }

    /// Through apache-avro's `Value` (tests and tools; ingest-api uses the generated encoder).
    pub async fn encode<T: Serialize>(&self, item: &T) -> Result<Vec<u8>, CodecError> {
        let id = self.warm_up().await?;
        let value = apache_avro::to_value(item).map_err(Box::new)?.resolve(&self.schema).map_err(Box::new)?;
        let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema)
            .build()
            .map_err(Box::new)?
            .write_value_to_vec(value)
            .map_err(Box::new)?;
        let mut framed = Vec::with_capacity(5 + datum.len());
        framed.push(0);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(&datum);
        Ok(framed)
    }
}

/// The most one Avro length prefix may allocate while decoding.
const MAX_ALLOCATION_BYTES: usize = 64 << 20;

/// Decodes with the writer's schema (looked up by id) and resolves the datum into the reader's
/// schema, so records written with older or newer compatible schemas become the reader's type.
///
/// When the writer's schema is the reader's (the usual case: producers write the latest
/// version), the datum is deserialized straight into the Rust type with a reader cached per
/// schema id, without building a `Value` tree; other writers go through `Value` and resolution.
pub struct EventDecoder {
    registry: RegistryClient,
    reader: &'static Schema,
    direct: Mutex<HashMap<u32, Option<&'static GenericDatumReader<'static>>>>,
    /// Per writer schema id, which event of the topic it writes (see [`EventDecoder::decode_log_event`]).
    log_writers: Mutex<HashMap<u32, LogWriter>>,
}

/// An event of the DeviceSynced topic, told apart by its writer schema's full name.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    DeviceSynced(Box<DeviceSynced>),
    UserDataErasureRequested(UserDataErasureRequested),
}

/// What a writer schema id of the topic writes, worked out once per id.
#[derive(Clone, Copy)]
enum LogWriter {
    /// DeviceSynced; with a direct reader when the writer's schema is the reader's.
    DeviceSynced(Option<&'static GenericDatumReader<'static>>),
    Erasure,
    /// Leaked once per unknown id, like the direct readers (a handful at most).
    Unknown(&'static str),
}

impl EventDecoder {
    pub fn new(registry_url: &str, reader: &'static Schema) -> Result<Self, CodecError> {
        // A length prefix may claim up to this much; apache-avro's default is 512 MiB, and a
        // 10-byte datum could reserve that. An event is at most a few MB. Process-wide, and the
        // first call wins (a decode before it would fix the default).
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        Ok(Self {
            registry: RegistryClient::new(registry_url)?,
            reader,
            direct: Mutex::default(),
            log_writers: Mutex::default(),
        })
    }

    /// Which event schema `id` writes, by its record's full name; cached per id.
    fn log_writer(&self, id: u32, writer: &Schema) -> Result<LogWriter, CodecError> {
        if let Some(w) = self.log_writers.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(*w);
        }
        let name = writer.name().map(|n| n.fullname(None)).unwrap_or_else(|| "a schema that is not a record".into());
        let kind = if name == crate::device_synced::FULL_NAME {
            let same = writer.canonical_form() == crate::device_synced::schema().canonical_form();
            LogWriter::DeviceSynced(if same { Some(leaked_reader(writer)?) } else { None })
        } else if name == crate::user_data_erasure_requested::FULL_NAME {
            LogWriter::Erasure
        } else {
            LogWriter::Unknown(Box::leak(name.into_boxed_str()))
        };
        self.log_writers.lock().unwrap_or_else(|p| p.into_inner()).insert(id, kind);
        Ok(kind)
    }

    /// Decodes an event of the DeviceSynced topic: DeviceSynced (as fast as [`Self::decode`]: a
    /// cached lookup per schema id, then the direct reader) or UserDataErasureRequested. A record
    /// of any other name is [`CodecError::UnknownRecord`], which is the record's fault.
    pub async fn decode_log_event(&self, payload: &[u8]) -> Result<LogEvent, CodecError> {
        let id = Self::schema_id(payload)?;
        let writer = self.registry.schema(id).await?;
        let datum = &payload[5..];
        match self.log_writer(id, &writer)? {
            LogWriter::DeviceSynced(Some(direct)) => {
                Ok(LogEvent::DeviceSynced(Box::new(direct.read_deser(&mut &datum[..]).map_err(Box::new)?)))
            }
            LogWriter::DeviceSynced(None) => {
                Ok(LogEvent::DeviceSynced(Box::new(decode_datum(&writer, crate::device_synced::schema(), datum)?)))
            }
            LogWriter::Erasure => Ok(LogEvent::UserDataErasureRequested(decode_datum(
                &writer,
                crate::user_data_erasure_requested::schema(),
                datum,
            )?)),
            LogWriter::Unknown(name) => Err(CodecError::UnknownRecord(name.to_owned())),
        }
    }

    /// The direct reader of schema `id` when its schema is the reader's. Built once per id and
    /// kept for the process's life (leaked on purpose: one per schema id the registry serves, so
    /// a handful, and a reader borrows its schema).
    fn direct_reader(
        &self,
        id: u32,
        writer: &Schema,
    ) -> Result<Option<&'static GenericDatumReader<'static>>, CodecError> {
        let mut cache = self.direct.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = cache.get(&id) {
            return Ok(*r);
        }
        let same = writer.canonical_form() == self.reader.canonical_form();
        let reader = if same { Some(leaked_reader(writer)?) } else { None };
        cache.insert(id, reader);
        Ok(reader)
    }

    /// The schema id in a Confluent-framed payload.
    pub fn schema_id(payload: &[u8]) -> Result<u32, CodecError> {
        match payload {
            [0, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            [] => Err(CodecError::Framing("empty payload")),
            [0, ..] => Err(CodecError::Framing("shorter than the 5-byte header")),
            _ => Err(CodecError::Framing("magic byte is not 0")),
        }
    }

    pub async fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T, CodecError> {
        let id = Self::schema_id(payload)?;
        let writer = self.registry.schema(id).await?;
        let datum = &payload[5..];
        if let Some(direct) = self.direct_reader(id, &writer)? {
            return Ok(direct.read_deser(&mut &datum[..]).map_err(Box::new)?);
        }
        decode_datum(&writer, self.reader, datum)
    }
}

/// A reader of `writer`'s datums straight into Rust types, kept for the process's life (a reader
/// borrows its schema; one per schema id the registry serves, so a handful).
fn leaked_reader(writer: &Schema) -> Result<&'static GenericDatumReader<'static>, CodecError> {
    let schema: &'static Schema = Box::leak(Box::new(writer.clone()));
    let reader = GenericDatumReader::builder(schema).build().map_err(Box::new)?;
    Ok(Box::leak(Box::new(reader)))
}

/// Reads one Avro datum written with `writer` into `T`, resolved into the `reader` schema: the
/// part of decoding that needs no registry.
pub fn decode_datum<T: DeserializeOwned>(writer: &Schema, reader: &Schema, datum: &[u8]) -> Result<T, CodecError> {
    // read_value then from_value: read_deser panics when a reader schema is set.
    let datum_reader = GenericDatumReader::builder(writer).reader_schema(reader).build().map_err(Box::new)?;
    let value = datum_reader.read_value(&mut &datum[..]).map_err(Box::new)?;
    Ok(from_value(&value).map_err(Box::new)?)
}
