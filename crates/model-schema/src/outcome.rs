//! The outcome of a finished sync: `sync_status.outcome`, and the `status` of a sync in
//! ingest-api's answers. One type for the processor that writes it and the routes that read it,
//! stored and serialized as the lowercase strings the table's CHECK constraint allows.

use std::fmt;
use std::io::Write;
use std::str::FromStr;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use serde::{Deserialize, Serialize};

/// How a consumed sync ended (the `sync_status.outcome` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, AsExpression, FromSqlRow)]
#[serde(rename_all = "lowercase")]
#[diesel(sql_type = Text)]
pub enum Outcome {
    /// Applied to the health model, with its counts.
    Processed,
    /// Never applicable: sent to the dead-letter topic, with the reason in `failure_reason`.
    Failed,
}

impl Outcome {
    /// Both outcomes, in declaration order.
    pub const ALL: [Outcome; 2] = [Outcome::Processed, Outcome::Failed];

    /// The stored and serialized form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Failed => "failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the outcomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sync outcome {0:?} (expected \"processed\" or \"failed\")")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

impl ToSql<Text, Pg> for Outcome {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(self.as_str().as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Text, Pg> for Outcome {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        Ok(std::str::from_utf8(value.as_bytes())?.parse()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
            assert_eq!(o.to_string(), o.as_str());
        }
        assert_eq!(Outcome::Processed.as_str(), "processed");
        assert_eq!(Outcome::Failed.as_str(), "failed");
    }

    #[test]
    fn an_unknown_string_is_an_error() {
        for s in ["", "pending", "Processed", "FAILED", " failed", "processed\n"] {
            assert_eq!(s.parse::<Outcome>(), Err(UnknownOutcome(s.to_owned())), "{s:?}");
        }
    }

    #[test]
    fn json_is_the_lowercase_string() {
        for o in Outcome::ALL {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
        }
        assert_eq!(serde_json::json!({ "status": Outcome::Failed }).to_string(), r#"{"status":"failed"}"#);
        assert!(serde_json::from_str::<Outcome>("\"pending\"").is_err());
        assert!(serde_json::from_str::<Outcome>("\"Processed\"").is_err());
    }
}
