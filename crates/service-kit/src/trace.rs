//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` a request
//! brings or gets, carried on the Kafka record, continued by the processor and kept in the DLQ,
//! so one trace id follows a sync across the hop. Logs carry it as the `trace_id` and `span_id`
//! key-values ([`TraceContext::trace_id`], [`TraceContext::span_id`]), which the JSON log format
//! writes as fields.

use std::fmt;

/// A valid `traceparent` value of version 00: `00-<trace id: 32 hex>-<span id: 16 hex>-<flags: 2
/// hex>`, lowercase, neither id all zeros. Kept as its text, so writing the header and logging
/// the ids allocate nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct TraceContext {
    header: String,
}

const LEN: usize = 55;

impl TraceContext {
    /// Parses a `traceparent` value. A later version is read as version 00 (its first 55
    /// characters, then a `-`), as the specification asks; anything invalid is `None`, and the
    /// caller starts a new trace.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim();
        let b = v.as_bytes();
        // ASCII first: the slicing below is by byte.
        if !v.is_ascii() || b.len() < LEN || (b.len() > LEN && b[LEN] != b'-') {
            return None;
        }
        let (version, trace, span, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
        let hex = |s: &str| s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
        let shape = b[2] == b'-' && b[35] == b'-' && b[52] == b'-';
        if !shape || ![version, trace, span, flags].iter().all(|s| hex(s)) {
            return None;
        }
        if version == "ff" || (version == "00" && b.len() != LEN) {
            return None;
        }
        if trace.bytes().all(|c| c == b'0') || span.bytes().all(|c| c == b'0') {
            return None;
        }
        Some(Self { header: format!("00-{trace}-{span}-{flags}") })
    }

    /// A new trace (this service is its root), sampled.
    pub fn new_root() -> Self {
        Self::with(uuid::Uuid::new_v4().as_u128(), new_span_id(), 0x01)
    }

    /// The incoming context continued by a new span of this service, or a new trace when there
    /// is none or it is invalid.
    pub fn continue_from(incoming: Option<&str>) -> Self {
        incoming.and_then(Self::parse).map(|parent| parent.child()).unwrap_or_else(Self::new_root)
    }

    /// The same trace and flags with a new span id: the next hop's span, whose parent is this.
    pub fn child(&self) -> Self {
        let trace = u128::from_str_radix(self.trace_id(), 16).unwrap_or(1);
        let flags = u8::from_str_radix(&self.header[53..55], 16).unwrap_or(0);
        Self::with(trace, new_span_id(), flags)
    }

    /// As [`TraceContext::child`], with a span id that is a function of `seed` (and this
    /// context): the same seed always names the same span. The processor seeds with the
    /// record's position, so every log line about one event carries one span id.
    pub fn child_for(&self, seed: &[u8]) -> Self {
        let trace = u128::from_str_radix(self.trace_id(), 16).unwrap_or(1);
        let flags = u8::from_str_radix(&self.header[53..55], 16).unwrap_or(0);
        Self::with(trace, hash64(&[self.header.as_bytes(), seed]), flags)
    }

    /// A new trace whose ids are a function of `seed`, for work that arrives without a context.
    pub fn root_for(seed: &[u8]) -> Self {
        let high = u128::from(hash64(&[b"trace-high", seed]));
        let low = u128::from(hash64(&[b"trace-low", seed]));
        Self::with(high << 64 | low, hash64(&[b"span", seed]), 0x01)
    }

    fn with(trace: u128, span: u64, flags: u8) -> Self {
        // A zero id is invalid; the odds are nil, but the header must stay valid.
        Self { header: format!("00-{:032x}-{:016x}-{flags:02x}", trace.max(1), span.max(1)) }
    }

    /// The `traceparent` value to send on.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The trace id: 32 lowercase hex digits.
    pub fn trace_id(&self) -> &str {
        &self.header[3..35]
    }

    /// This span's id: 16 lowercase hex digits.
    pub fn span_id(&self) -> &str {
        &self.header[36..52]
    }
}

/// SipHash with fixed keys: stable for a build, spread well enough for ids.
fn hash64(parts: &[&[u8]]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    for p in parts {
        h.write(p);
    }
    h.finish()
}

fn new_span_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn the_specification_example_parses_into_its_ids() {
        let t = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(t.span_id(), "b7ad6b7169203331");
        assert_eq!(t.header(), EXAMPLE);
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
            "0é-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(TraceContext::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let t = TraceContext::parse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-comes-next").unwrap();
        assert_eq!(t.header(), EXAMPLE);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span() {
        let parent = TraceContext::parse(EXAMPLE).unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        assert!(child.header().ends_with("-01"));
        assert_eq!(TraceContext::parse(child.header()), Some(child));
    }

    #[test]
    fn seeded_spans_are_stable_and_differ_by_seed() {
        let parent = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(parent.child_for(b"p0@7"), parent.child_for(b"p0@7"));
        assert_ne!(parent.child_for(b"p0@7").span_id(), parent.child_for(b"p0@8").span_id());
        assert_eq!(parent.child_for(b"p0@7").trace_id(), parent.trace_id());
        assert_eq!(TraceContext::root_for(b"p0@7"), TraceContext::root_for(b"p0@7"));
        assert_ne!(TraceContext::root_for(b"p0@7").trace_id(), TraceContext::root_for(b"p0@8").trace_id());
    }

    #[test]
    fn without_a_valid_parent_a_new_trace_starts() {
        let a = TraceContext::continue_from(None);
        let b = TraceContext::continue_from(Some("garbage"));
        assert_ne!(a.trace_id(), b.trace_id());
        assert!(TraceContext::parse(a.header()).is_some());
        let continued = TraceContext::continue_from(Some(EXAMPLE));
        assert_eq!(continued.trace_id(), "0af7651916cd43dd8448eb211c80319c");
    }
}
