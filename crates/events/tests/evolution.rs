//! DeviceSynced v1 and v2 read each other, by the Avro specification's resolution rules: an old
//! processor build (a v1 reader) reads v2 events, and the current one reads v1 events.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{from_value, to_value, Schema};
use events::device_synced::{v1, v2, WearEvent, WearState, VERSIONS};

fn schema(version: u32) -> Schema {
    Schema::parse_str(VERSIONS.iter().find(|(v, _)| *v == version).expect("version exists").1).unwrap()
}

fn encode<T: serde::Serialize>(value: &T, writer: &Schema) -> Vec<u8> {
    let v = to_value(value).unwrap().resolve(writer).expect("fits its schema");
    GenericDatumWriter::builder(writer).build().unwrap().write_value_to_vec(v).unwrap()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], writer: &Schema, reader: &Schema) -> T {
    let r = GenericDatumReader::builder(writer).reader_schema(reader).build().unwrap();
    from_value(&r.read_value(&mut &bytes[..]).expect("resolves")).expect("becomes the reader's type")
}

fn v2_event() -> v2::DeviceSynced {
    let mut e = testkit::sample_device_synced("u", "d");
    e.spo2 = Some(v2::Spo2Series { time_deltas_ms: vec![0, 60_000], percent: vec![96, 93] });
    e.wear_events = vec![WearEvent { time_ms: e.window_start_ms + 1000, state: WearState::OffWrist }];
    e
}

#[test]
fn a_v1_reader_reads_v2_events() {
    let event = v2_event();
    let old: v1::DeviceSynced = decode(&encode(&event, &schema(2)), &schema(2), &schema(1));
    // Everything v1 knows survives; the new fields are ignored.
    assert_eq!(old.sync_id, event.sync_id);
    assert_eq!(old.heart_rate.bpm, event.heart_rate.bpm);
    assert_eq!(old.rr_blocks.len(), event.rr_blocks.len());
}

#[test]
fn the_v2_reader_reads_v1_events_with_the_defaults() {
    let mut old: v1::DeviceSynced = decode(&encode(&v2_event(), &schema(2)), &schema(2), &schema(1));
    old.sync_id = "0b5a5e1c-7a53-4cbb-9f1b-6c0e2d7a9e41".into();
    let new: v2::DeviceSynced = decode(&encode(&old, &schema(1)), &schema(1), &schema(2));
    assert_eq!(new.sync_id, "0b5a5e1c-7a53-4cbb-9f1b-6c0e2d7a9e41");
    assert_eq!(new.spo2, None);
    assert!(new.skin_temperature.is_empty() && new.wear_events.is_empty());
    assert_eq!(new.heart_rate.bpm, old.heart_rate.bpm);
}

#[test]
fn the_versions_are_mutually_compatible_by_the_resolution_rules() {
    use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
    assert!(matches!(SchemaCompatibility::can_read(&schema(1), &schema(2)), Ok(Compatibility::Full)));
    assert!(matches!(SchemaCompatibility::can_read(&schema(2), &schema(1)), Ok(Compatibility::Full)));
}
