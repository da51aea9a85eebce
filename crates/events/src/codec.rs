//! Confluent-framed Avro (magic byte, 4-byte schema id, datum) through a Schema Registry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::{from_value, Schema};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How long one call to the registry may take before it counts as failed.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema registry: {0}")]
    Registry(#[from] SRCError),
    #[error("not Confluent-framed Avro: {0}")]
    Framing(&'static str),
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
}

impl CodecError {
    /// Worth retrying later (registry unreachable or 5xx), as opposed to a bad record.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CodecError::Registry(e) if e.retriable)
    }
}

fn settings(registry_url: &str) -> Result<SrSettings, CodecError> {
    Ok(SrSettings::new_builder(registry_url.to_owned()).set_timeout(REGISTRY_TIMEOUT).no_proxy().build()?)
}

/// Encodes with a compiled-in schema, registering it under the topic's value subject
/// (`TopicNameStrategyWithSchema`): the producer never depends on whatever "latest" is.
pub struct EventEncoder {
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
}

impl EventEncoder {
    pub fn new(registry_url: &str, topic: &str, schema_json: &str) -> Result<Self, CodecError> {
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema_json.to_owned());
        Ok(Self {
            encoder: AvroEncoder::new(settings(registry_url)?),
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(topic.to_owned(), false, supplied),
        })
    }

    /// Registers (or finds) the schema and returns its id; call at start so the first request is fast.
    pub async fn warm_up(&self) -> Result<u32, CodecError> {
        let subject = self.strategy.get_subject()?;
        Ok(self.encoder.get_schema_and_id(&subject, self.strategy.clone()).await?.id)
    }

    pub async fn encode<T: Serialize>(&self, item: &T) -> Result<Vec<u8>, CodecError> {
        Ok(self.encoder.encode_struct(item, &self.strategy).await?)
    }
}

/// Decodes with the writer's schema (looked up by id) and resolves the datum into the reader's
/// schema, so records written with older or newer compatible schemas become the reader's type.
///
/// When the writer's schema is the reader's (the usual case: producers write the latest
/// version), the datum is deserialized straight into the Rust type with a reader cached per
/// schema id, without building a `Value` tree; other writers go through `Value` and resolution.
pub struct EventDecoder {
    decoder: AvroDecoder,
    reader: &'static Schema,
    direct: Mutex<HashMap<u32, Option<&'static GenericDatumReader<'static>>>>,
}

impl EventDecoder {
    pub fn new(registry_url: &str, reader: &'static Schema) -> Result<Self, CodecError> {
        Ok(Self { decoder: AvroDecoder::new(settings(registry_url)?), reader, direct: Mutex::default() })
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
        let reader = if same {
            let schema: &'static Schema = Box::leak(Box::new(writer.clone()));
            let reader = GenericDatumReader::builder(schema).build().map_err(Box::new)?;
            Some(&*Box::leak(Box::new(reader)))
        } else {
            None
        };
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
        let writer = self.decoder.get_schema(id).await?;
        let mut datum = &payload[5..];
        if let Some(direct) = self.direct_reader(id, &writer.parsed)? {
            return Ok(direct.read_deser(&mut datum).map_err(Box::new)?);
        }
        // read_value then from_value: read_deser panics when a reader schema is set.
        let reader =
            GenericDatumReader::builder(&writer.parsed).reader_schema(self.reader).build().map_err(Box::new)?;
        let value = reader.read_value(&mut datum).map_err(Box::new)?;
        Ok(from_value(&value).map_err(Box::new)?)
    }
}
