//! Micro benchmarks of the command path's CPU work, as production does it: parse and validate a
//! standard sync (the typed path; the full validator beside it for comparison); build and encode
//! its DeviceSynced; decode and resolve one (the processor's side).

use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{from_value, to_value};
use criterion::{criterion_group, criterion_main, Criterion};
use events::device_synced::{schema, DeviceSynced};
use ingest_api::command::{parse, parse_command, parse_typed};
use ingest_api::config::Limits;
use ingest_api::example::standard_sync;

/// The allocator production runs with (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    let now = 1_772_409_600_000;
    let body = serde_json::to_vec(&standard_sync(uuid::Uuid::new_v4(), now, 1, false)).unwrap();
    let limits = Limits::default();
    let server_now = now + 1_200;
    c.bench_function("ingest: parse and validate a standard sync", |b| {
        // What post_sync does: the typed path, which accepts it (asserted below).
        b.iter(|| parse(black_box(&body), None, &limits, server_now).unwrap())
    });
    assert!(parse_typed(&body, None, &limits, server_now).is_some(), "the typed path takes the standard sync");
    c.bench_function("ingest: full validator on a standard sync (the fallback)", |b| {
        b.iter(|| {
            let json: serde_json::Value = serde_json::from_slice(black_box(&body)).unwrap();
            parse_command(&json, None, &limits, server_now).unwrap()
        })
    });
    let sync = parse(&body, None, &limits, server_now).unwrap();
    c.bench_function("ingest: encode its DeviceSynced as production does", |b| {
        // Build the event from the validated sync (moved in, as post_sync does; the clone is
        // the benchmark's), then the generated encoder writes it framed.
        b.iter_batched(
            || sync.clone(),
            |sync| {
                let event = sync.into_event("user", "device", uuid::Uuid::nil(), now);
                events::avro::framed(1, &event, body.len() / 4)
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let writer = GenericDatumWriter::builder(schema()).build().unwrap();
    let event = sync.into_event("user", "device", uuid::Uuid::nil(), now);
    c.bench_function("ingest: encode with apache-avro's serde writer (for comparison)", |b| {
        b.iter(|| writer.write_ser_to_vec(black_box(&event)).unwrap())
    });
    let bytes = writer.write_value_to_vec(to_value(&event).unwrap().resolve(schema()).unwrap()).unwrap();
    // The generated encoder produces the very bytes of apache-avro's writer.
    assert_eq!(events::avro::framed(1, &event, 0)[5..], bytes[..]);
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
