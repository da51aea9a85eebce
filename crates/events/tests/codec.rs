//! The generated types agree with the schema they were generated from, and the codec's framing
//! checks reject what is not Confluent-framed Avro.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{from_value, to_value};
use events::device_synced::{schema, SCHEMA_JSON};
use events::{DeviceSynced, EventDecoder};

#[test]
fn a_device_synced_round_trips_through_its_avro_schema() {
    let event = testkit::sample_device_synced("user-1", "device-1");
    let value = to_value(&event).unwrap().resolve(schema()).expect("the value fits the schema");
    let bytes = GenericDatumWriter::builder(schema()).build().unwrap().write_value_to_vec(value).expect("encodes");
    let decoded =
        GenericDatumReader::builder(schema()).build().unwrap().read_value(&mut bytes.as_slice()).expect("decodes");
    let back: DeviceSynced = from_value(&decoded).expect("becomes the Rust type");
    assert_eq!(back, event);
}

#[test]
fn direct_deserialization_equals_the_value_path() {
    // The processor's fast path (no Value tree) must give exactly what Value + from_value gives,
    // for a full event and for one with every optional part empty.
    let mut sparse = testkit::sample_device_synced("user-2", "device-2");
    sparse.profile = None;
    sparse.spo2 = None;
    sparse.rr_blocks.clear();
    sparse.sleep.clear();
    for event in [testkit::sample_device_synced("user-1", "device-1"), sparse] {
        let value = to_value(&event).unwrap().resolve(schema()).unwrap();
        let bytes = GenericDatumWriter::builder(schema()).build().unwrap().write_value_to_vec(value).unwrap();
        let direct: DeviceSynced =
            GenericDatumReader::builder(schema()).build().unwrap().read_deser(&mut bytes.as_slice()).expect("direct");
        assert_eq!(direct, event);
    }
}

#[test]
fn every_schema_field_is_a_struct_field() {
    // Serialising the generated struct yields exactly the schema's top-level fields.
    let event = testkit::sample_device_synced("u", "d");
    let json = serde_json::to_value(&event).unwrap();
    let schema: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let names: Vec<&str> = schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    let mut names = names.clone();
    keys.sort_unstable();
    names.sort_unstable();
    assert_eq!(keys, names);
}

#[test]
fn framing_is_checked_before_any_registry_call() {
    assert_eq!(EventDecoder::schema_id(&[0, 0, 0, 1, 2, 9]).unwrap(), 258);
    for bad in [&b""[..], &[0, 0, 1][..], &[1, 0, 0, 0, 1, 2][..]] {
        assert!(EventDecoder::schema_id(bad).is_err(), "{bad:?}");
    }
}
