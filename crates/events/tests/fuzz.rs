//! Fuzz targets of what the events crate reads from outside: a record's Confluent header, the
//! Avro datum after it, and a consistency token from a client. Whatever the bytes, each answers
//! Ok or Err and never panics; what decodes re-encodes to a datum that decodes the same.
//!
//! The datum is decoded as the processor does: `decode_datum` (resolution into the reader's
//! schema, for any writer) with the latest schema and with every older version as the writer,
//! and the direct path `EventDecoder::decode` takes when the writer's schema is the reader's
//! (apache-avro's `read_deser`, no reader schema).
//!
//! `FUZZ_CASES` sets the number of cases; `make fuzz` runs a million of each in release.

use std::sync::OnceLock;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use events::avro::{write_long, Encode};
use events::codec::decode_datum;
use events::device_synced::{schema, VERSIONS};
use events::{ConsistencyToken, DeviceSynced, EventDecoder};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use testkit::fuzz as fz;

/// Every older version's schema, parsed once: the writers of events still in the topic.
fn older_writers() -> &'static [Schema] {
    static OLDER: OnceLock<Vec<Schema>> = OnceLock::new();
    OLDER.get_or_init(|| {
        let (_, older) = VERSIONS.split_last().expect("at least one version");
        older.iter().map(|(_, text)| Schema::parse_str(text).expect("every version parses")).collect()
    })
}

/// The direct reader the decoder builds when the writer is the reader's schema.
fn direct_reader() -> &'static GenericDatumReader<'static> {
    static READER: OnceLock<GenericDatumReader<'static>> = OnceLock::new();
    READER.get_or_init(|| GenericDatumReader::builder(schema()).build().expect("the schema is valid"))
}

fn encode(event: &DeviceSynced) -> Vec<u8> {
    let mut out = Vec::new();
    event.encode(&mut out);
    out
}

/// How a datum is read: the resolving `decode_datum` with a writer, or the direct path.
#[derive(Clone, Copy)]
enum Path {
    Resolved(&'static Schema),
    Direct,
}

impl Path {
    fn decode(self, datum: &[u8]) -> Result<DeviceSynced, String> {
        match self {
            Path::Resolved(writer) => decode_datum(writer, schema(), datum).map_err(|e| e.to_string()),
            Path::Direct => direct_reader().read_deser(&mut &datum[..]).map_err(|e| e.to_string()),
        }
    }
}

/// Whatever a path decodes survives the generated encoder: encoded and read again the way the
/// processor reads what ingest-api writes (latest writer), it encodes to the same bytes (bytes,
/// not values, so a NaN read from the input compares equal to itself).
///
/// The read-back uses the path that decoded it: the direct path does not check that a `uuid`
/// string is a UUID, and `decode_datum` does (the processor parses both ids itself and
/// dead-letters an event whose id is not one).
fn check(path: Path, datum: &[u8]) -> TestCaseResult {
    match path.decode(datum) {
        Ok(event) => {
            let bytes = encode(&event);
            let latest = if let Path::Resolved(_) = path { Path::Resolved(schema()) } else { Path::Direct };
            let again = latest
                .decode(&bytes)
                .map_err(|e| TestCaseError::fail(format!("a decoded event, re-encoded, does not decode: {e}")))?;
            prop_assert_eq!(encode(&again), bytes);
        }
        Err(e) => prop_assert!(!e.trim().is_empty(), "an error without a message"),
    }
    Ok(())
}

/// Decodes a datum every way the processor may: as the latest version (resolved and direct) and
/// as each older version resolved into the latest.
fn decode_every_way(datum: &[u8]) -> TestCaseResult {
    check(Path::Resolved(schema()), datum)?;
    check(Path::Direct, datum)?;
    for writer in older_writers() {
        check(Path::Resolved(writer), datum)?;
    }
    Ok(())
}

#[test]
fn schema_id_never_panics_and_reads_only_framed_payloads() {
    let payload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|mut b| {
            b.insert(0, 0);
            b
        }),
    ];
    fz::run("schema-id", 20_000, payload, |payload| {
        match EventDecoder::schema_id(&payload) {
            Ok(id) => {
                prop_assert!(payload.len() >= 5 && payload[0] == 0, "{:?} has no header", payload);
                prop_assert_eq!(id, u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]));
            }
            Err(e) => {
                prop_assert!(payload.len() < 5 || payload[0] != 0, "{:?} has a header: {}", payload, e);
                prop_assert!(!e.to_string().trim().is_empty());
            }
        }
        Ok(())
    });
}

#[test]
fn decoding_arbitrary_bytes_after_a_valid_header_never_panics() {
    let payload = (any::<u32>(), prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(id, datum)| {
        let mut payload = vec![0];
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&datum);
        payload
    });
    fz::run("avro-arbitrary-bytes", 5_000, payload, |payload| {
        prop_assert!(EventDecoder::schema_id(&payload).is_ok());
        decode_every_way(&payload[5..])
    });
}

/// Events to mutate: a full one, and one with every optional part empty.
fn events() -> [DeviceSynced; 2] {
    let mut sparse = testkit::sample_device_synced("user-2", "device-2");
    sparse.profile = None;
    sparse.spo2 = None;
    sparse.rr_blocks.clear();
    sparse.sleep.clear();
    [testkit::sample_device_synced("user-1", "device-1"), sparse]
}

/// The events as the latest version writes them (writer `None`) and as every older version
/// does (`Some(i)`: `older_writers()[i]`).
fn datums() -> &'static [(Option<usize>, Vec<u8>)] {
    static DATUMS: OnceLock<Vec<(Option<usize>, Vec<u8>)>> = OnceLock::new();
    DATUMS.get_or_init(|| {
        let mut datums: Vec<_> = events().iter().map(|e| (None, encode(e))).collect();
        for (i, writer) in older_writers().iter().enumerate() {
            for event in &events() {
                // Through apache-avro's own writer, resolved into the older schema (its fields
                // only), so no generated type of that version is needed.
                let value = apache_avro::to_value(event).unwrap().resolve(writer).expect("an older version holds it");
                let bytes =
                    GenericDatumWriter::builder(writer).build().unwrap().write_value_to_vec(value).expect("it encodes");
                datums.push((Some(i), bytes));
            }
        }
        datums
    })
}

/// One change to a datum's bytes. Positions are taken modulo the datum's length.
#[derive(Debug, Clone)]
enum ByteMutation {
    Set {
        at: usize,
        byte: u8,
    },
    Flip {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Remove {
        at: usize,
        len: usize,
    },
    Truncate {
        at: usize,
    },
    /// A varint (a length, a count, a union branch, an enum index…) overwritten with an extreme.
    Varint {
        at: usize,
        value: i64,
    },
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    let extreme = prop_oneof![
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            1,
            i64::from(i32::MAX) + 1,
            1 << 29,
            (1 << 29) + 1,
            (1 << 26) - 1,
            1 << 40,
        ]),
        any::<i64>(),
    ];
    prop_oneof![
        3 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteMutation::Set { at, byte }),
        2 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteMutation::Flip { at, bit }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(at, bytes)| ByteMutation::Insert { at, bytes }),
        1 => (any::<usize>(), 1usize..64).prop_map(|(at, len)| ByteMutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| ByteMutation::Truncate { at }),
        3 => (any::<usize>(), extreme).prop_map(|(at, value)| ByteMutation::Varint { at, value }),
    ]
}

fn mutate(datum: &mut Vec<u8>, m: &ByteMutation) {
    let pos = |at: usize, len: usize| if len == 0 { 0 } else { at % len };
    let len = datum.len();
    match m {
        ByteMutation::Set { at, byte } if len > 0 => datum[pos(*at, len)] = *byte,
        ByteMutation::Flip { at, bit } if len > 0 => datum[pos(*at, len)] ^= 1 << bit,
        ByteMutation::Insert { at, bytes } => {
            let at = pos(*at, len + 1);
            datum.splice(at..at, bytes.iter().copied());
        }
        ByteMutation::Remove { at, len: n } if len > 0 => {
            let at = pos(*at, len);
            datum.drain(at..(at + n).min(len));
        }
        ByteMutation::Truncate { at } => datum.truncate(pos(*at, len + 1)),
        ByteMutation::Varint { at, value } => {
            let at = pos(*at, len + 1);
            // Replace the varint that starts there (its continuation bytes have the top bit set).
            let end = datum[at..].iter().position(|b| b & 0x80 == 0).map_or(len, |i| at + i + 1);
            let mut varint = Vec::new();
            write_long(&mut varint, *value);
            datum.splice(at..end, varint);
        }
        _ => {}
    }
}

#[test]
fn decoding_mutated_events_never_panics_and_what_decodes_round_trips() {
    let case = (any::<prop::sample::Index>(), prop::collection::vec(byte_mutation(), 1..6));
    fz::run("avro-mutated-events", 5_000, case, |(which, mutations)| {
        let mut datum = which.get(datums()).1.clone();
        for m in &mutations {
            mutate(&mut datum, m);
        }
        decode_every_way(&datum)
    });
}

#[test]
fn the_events_to_mutate_decode_with_their_writer() {
    // Otherwise the mutation target would only ever test errors. An older writer lacks the later
    // versions' fields, which read as their defaults.
    for (writer, datum) in datums() {
        let writer = writer.map_or(schema(), |i| &older_writers()[i]);
        let event: DeviceSynced = decode_datum(writer, schema(), datum).expect("decodes");
        assert!(events().iter().any(|e| e.user_id == event.user_id && e.heart_rate == event.heart_rate));
    }
}

/// Strings a client might send as a token: anything, base64url of anything, and base64url of
/// text shaped like a token with arbitrary or extreme parts.
fn token_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        any::<String>(),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i128>().prop_map(|n| n.to_string()),
        prop::sample::select(vec!["", "-0", "+1", "0x10", " 1", "1 ", "٣", "2147483648", "9223372036854775808"])
            .prop_map(str::to_owned),
    ];
    let version = prop::sample::select(vec!["v1", "v2", "V1", "", "v1 "]);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        (version, part.clone(), part, prop::option::of(any::<String>())).prop_map(|(v, p, o, extra)| {
            let text = match extra {
                Some(x) => format!("{v}:{p}:{o}:{x}"),
                None => format!("{v}:{p}:{o}"),
            };
            URL_SAFE_NO_PAD.encode(text)
        }),
    ]
}

#[test]
fn token_parser_never_panics_and_what_parses_round_trips() {
    fz::run("consistency-token", 10_000, token_text(), |text| {
        match text.parse::<ConsistencyToken>() {
            Ok(token) => {
                prop_assert!(token.partition >= 0 && token.offset >= 0, "{:?} from {:?}", token, text);
                prop_assert_eq!(token.to_string().parse::<ConsistencyToken>(), Ok(token));
            }
            Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
        }
        Ok(())
    });
}

#[test]
fn every_position_round_trips_through_its_token_and_no_negative_one_does() {
    fz::run("consistency-token-positions", 20_000, (any::<i32>(), any::<i64>()), |(partition, offset)| {
        let token = ConsistencyToken { partition, offset };
        let parsed = token.to_string().parse::<ConsistencyToken>();
        if partition >= 0 && offset >= 0 {
            prop_assert_eq!(parsed, Ok(token));
        } else {
            prop_assert!(parsed.is_err(), "{:?} parsed", token);
        }
        Ok(())
    });
}
