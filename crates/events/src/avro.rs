//! Avro's binary encoding, written by code that `build.rs` generates from the schemas: each
//! record type gets an [`Encode`] impl that appends its fields in schema order, with no schema
//! lookups, no `Value` tree and no serde. `tests/avro_encode.rs` checks it byte for byte against
//! apache-avro's own writer.

/// Appends the Avro binary encoding of a value.
pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

/// An `int` or `long`: zig-zag, then a little-endian base-128 varint.
#[inline]
pub fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// `bytes` and `string`: the length, then the bytes.
#[inline]
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

/// A Confluent-framed record: magic byte 0, the schema id (big-endian), then the datum, all in one
/// buffer sized by `size_hint`.
pub fn framed<T: Encode>(schema_id: u32, item: &T, size_hint: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_hint.max(64));
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    item.encode(&mut out);
    out
}
