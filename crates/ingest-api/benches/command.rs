//! Micro benchmarks of the command path's CPU work: parse and validate a standard sync; build and
//! Avro-encode its DeviceSynced; decode and resolve one (the processor's side).

use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{from_value, to_value};
use criterion::{criterion_group, criterion_main, Criterion};
use events::device_synced::{schema, DeviceSynced};
use ingest_api::command::parse_command;
use ingest_api::config::Limits;
use ingest_api::event::device_synced;
use ingest_api::example::standard_sync;

fn benches(c: &mut Criterion) {
    let now = 1_772_409_600_000;
    let body = serde_json::to_vec(&standard_sync(uuid::Uuid::new_v4(), now, 1, false)).unwrap();
    let limits = Limits::default();
    c.bench_function("ingest: parse and validate a standard sync", |b| {
        b.iter(|| {
            let json: serde_json::Value = serde_json::from_slice(black_box(&body)).unwrap();
            parse_command(&json, None, &limits).unwrap()
        })
    });
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let sync = parse_command(&json, None, &limits).unwrap();
    let writer = GenericDatumWriter::builder(schema()).build().unwrap();
    c.bench_function("ingest: build and Avro-encode its DeviceSynced", |b| {
        b.iter(|| {
            let event = device_synced(black_box(sync.clone()), "user", "device", uuid::Uuid::nil(), now);
            let value = to_value(&event).unwrap().resolve(schema()).unwrap();
            writer.write_value_to_vec(value).unwrap()
        })
    });
    let event = device_synced(sync, "user", "device", uuid::Uuid::nil(), now);
    let bytes = writer.write_value_to_vec(to_value(&event).unwrap().resolve(schema()).unwrap()).unwrap();
    let v1 = apache_avro::Schema::parse_str(events::device_synced::VERSIONS[0].1).unwrap();
    let v1_bytes = {
        let w = GenericDatumWriter::builder(&v1).build().unwrap();
        let old: events::device_synced::v1::DeviceSynced = {
            let mut j = serde_json::to_value(&event).unwrap();
            for f in ["spo2", "skin_temperature", "wear_events"] {
                j.as_object_mut().unwrap().remove(f);
            }
            serde_json::from_value(j).unwrap()
        };
        w.write_value_to_vec(to_value(&old).unwrap().resolve(&v1).unwrap()).unwrap()
    };
    println!("standard sync: {} bytes of JSON, {} bytes of Avro", body.len(), bytes.len());
    c.bench_function("processor: decode one DeviceSynced directly (writer = reader schema)", |b| {
        // What the processor does for the latest version: no Value tree, no resolution.
        let reader = GenericDatumReader::builder(schema()).build().unwrap();
        b.iter(|| reader.read_deser::<DeviceSynced>(&mut black_box(&bytes[..])).unwrap())
    });
    c.bench_function("processor: decode and resolve one DeviceSynced (v2 writer)", |b| {
        let reader = GenericDatumReader::builder(schema()).reader_schema(schema()).build().unwrap();
        b.iter(|| from_value::<DeviceSynced>(&reader.read_value(&mut black_box(&bytes[..])).unwrap()).unwrap())
    });
    c.bench_function("processor: decode and resolve one DeviceSynced (v1 writer)", |b| {
        let reader = GenericDatumReader::builder(&v1).reader_schema(schema()).build().unwrap();
        b.iter(|| from_value::<DeviceSynced>(&reader.read_value(&mut black_box(&v1_bytes[..])).unwrap()).unwrap())
    });
}

criterion_group!(group, benches);
criterion_main!(group);
