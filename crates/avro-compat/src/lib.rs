//! Compatibility levels (Confluent Schema Registry's), decided with the Avro specification's
//! schema-resolution rules. Shared by the registry (409 on registration) and the schemas tool
//! (`make schemas-check`), so both refuse the same changes.

use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// Confluent's default.
pub const DEFAULT_LEVEL: Level = Level::Backward;

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    fn backward(self) -> bool {
        matches!(self, Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive)
    }

    fn forward(self) -> bool {
        matches!(self, Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive)
    }

    /// Checks `candidate` against the subject's live versions, oldest first. Returns the reasons
    /// it is incompatible; empty means compatible.
    pub fn check(self, candidate: &Schema, existing: &[(i32, Schema)]) -> Vec<String> {
        let against: &[(i32, Schema)] =
            if self.transitive() { existing } else { existing.last().map(std::slice::from_ref).unwrap_or(&[]) };
        let mut reasons = Vec::new();
        for (version, old) in against {
            if self.backward() {
                if let Some(why) = cannot_read(old, candidate) {
                    reasons.push(format!(
                        "{{oldSchemaVersion: {version}, direction: BACKWARD (the new schema cannot read data written with version {version}): {why}}}"
                    ));
                }
            }
            if self.forward() {
                if let Some(why) = cannot_read(candidate, old) {
                    reasons.push(format!(
                        "{{oldSchemaVersion: {version}, direction: FORWARD (version {version} cannot read data written with the new schema): {why}}}"
                    ));
                }
            }
        }
        reasons
    }
}

/// Why `reader` cannot read every datum written with `writer`, if it cannot.
///
/// A partial match (the writer may produce an enum symbol or union branch the reader lacks, with
/// no default to fall back on) counts as incompatible, as in Avro's Java `SchemaCompatibility`
/// that Confluent uses: some records would fail to decode.
fn cannot_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => None,
        Ok(Compatibility::Partial) => Some(
            "only partially compatible: the writer can produce an enum symbol or union branch the reader does not have"
                .to_owned(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

/// A compatibility level name that is not one of Confluent's seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility level {0:?}")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return Err(UnknownLevel(s.to_owned())),
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
