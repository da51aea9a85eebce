//! The consistency token: an opaque, versioned name for a position in the log (the partition and
//! offset of a DeviceSynced record). ingest-api hands it out with a 202; a downstream consumer
//! builds the same token from the record it consumed; the read side waits until the processor's
//! watermark for that partition reaches the offset.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsistencyToken {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a consistency token: {0}")]
pub struct InvalidToken(&'static str);

/// Version tag inside the encoding, so the format can change without breaking old tokens.
const V1: &str = "v1";

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(format!("{V1}:{}:{}", self.partition, self.offset)))
    }
}

impl FromStr for ConsistencyToken {
    type Err = InvalidToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let raw = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| InvalidToken("not base64url"))?;
        let text = String::from_utf8(raw).map_err(|_| InvalidToken("not text"))?;
        let mut parts = text.split(':');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(V1), Some(p), Some(o), None) => {
                let partition = p.parse().map_err(|_| InvalidToken("bad partition"))?;
                let offset = o.parse().map_err(|_| InvalidToken("bad offset"))?;
                if partition < 0 || offset < 0 {
                    return Err(InvalidToken("negative position"));
                }
                Ok(Self { partition, offset })
            }
            (Some(V1), ..) => Err(InvalidToken("malformed v1 token")),
            _ => Err(InvalidToken("unknown version")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let t = ConsistencyToken { partition: 5, offset: 123_456_789_012 };
        let s = t.to_string();
        assert!(!s.contains(':'), "opaque to clients: {s}");
        assert_eq!(s.parse::<ConsistencyToken>(), Ok(t));
        for bad in [
            "",
            "!!",
            "djI6MTox",
            &URL_SAFE_NO_PAD.encode("v1:x:1"),
            &URL_SAFE_NO_PAD.encode("v1:-1:1"),
            &URL_SAFE_NO_PAD.encode("v1:1:2:3"),
        ] {
            assert!(bad.parse::<ConsistencyToken>().is_err(), "{bad}");
        }
    }
}
