//! Settings from the environment, with one error format for every service: the variable, the
//! value it had, what it expected, and how to get the default back.
//!
//! One rule for every variable: unset and empty are the same (Helm and Compose render an unset
//! value as an empty string), and both mean the default.

use std::fmt::Display;
use std::time::Duration;

/// A variable that is set but cannot be used, or a required one that is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{name}={value:?} is not valid: expected {expected}{remedy}")]
    Invalid { name: String, value: String, expected: String, remedy: String },
    #[error("{name} is not set: expected {expected}")]
    Missing { name: String, expected: String },
}

impl EnvError {
    /// A value the caller's own rule refused (a choice of words, a range), in the same format.
    pub fn invalid(name: &str, value: &str, expected: impl Into<String>) -> Self {
        Self::Invalid { name: name.into(), value: shown(value), expected: expected.into(), remedy: String::new() }
    }

    fn with_default(name: &str, value: &str, expected: String, default: &dyn Display) -> Self {
        let remedy = format!("; unset it to use the default ({default})");
        Self::Invalid { name: name.into(), value: shown(value), expected, remedy }
    }
}

/// Echoes at most 100 characters of a bad value: enough to recognise it, never a whole file.
fn shown(value: &str) -> String {
    match value.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &value[..cut]),
        None => value.to_owned(),
    }
}

/// A type a variable can hold, and how to say what a valid value looks like.
pub trait EnvValue: Sized {
    fn expected() -> String;
    fn from_env_str(raw: &str) -> Option<Self>;
}

macro_rules! whole_numbers {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn expected() -> String {
                format!("a whole number from {} to {}", <$t>::MIN, <$t>::MAX)
            }
            fn from_env_str(raw: &str) -> Option<Self> {
                raw.trim().replace('_', "").parse().ok()
            }
        }
    )*};
}
whole_numbers!(u16, u32, u64, usize, i32, i64);

impl EnvValue for f64 {
    fn expected() -> String {
        "a finite number".into()
    }
    fn from_env_str(raw: &str) -> Option<Self> {
        raw.trim().parse::<f64>().ok().filter(|v| v.is_finite())
    }
}

impl EnvValue for bool {
    fn expected() -> String {
        "true or false".into()
    }
    fn from_env_str(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }
}

/// The variable's value, with empty read as unset.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A text setting, `default` when unset.
pub fn string(name: &str, default: &str) -> String {
    optional(name).unwrap_or_else(|| default.to_owned())
}

/// A typed setting, `default` when unset.
pub fn parse<T: EnvValue + Display>(name: &str, default: T) -> Result<T, EnvError> {
    parse_value(name, optional(name).as_deref(), default)
}

/// A typed setting that has no default.
pub fn required<T: EnvValue>(name: &str) -> Result<T, EnvError> {
    match optional(name) {
        None => Err(EnvError::Missing { name: name.into(), expected: T::expected() }),
        Some(raw) => T::from_env_str(&raw).ok_or_else(|| EnvError::invalid(name, &raw, T::expected())),
    }
}

/// A duration given in milliseconds (`*_MS`).
pub fn millis(name: &str, default: Duration) -> Result<Duration, EnvError> {
    parse(name, default.as_millis() as u64).map(Duration::from_millis)
}

/// A duration given in seconds (`*_SECONDS`).
pub fn seconds(name: &str, default: Duration) -> Result<Duration, EnvError> {
    parse(name, default.as_secs()).map(Duration::from_secs)
}

/// The parsing behind [`parse`], over a value already read (tests give it values directly; the
/// process environment is shared by every test thread).
pub fn parse_value<T: EnvValue + Display>(name: &str, raw: Option<&str>, default: T) -> Result<T, EnvError> {
    match raw.filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(raw) => T::from_env_str(raw).ok_or_else(|| EnvError::with_default(name, raw, T::expected(), &default)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_and_empty_give_the_default() {
        assert_eq!(parse_value("X_POOL", None, 8u32), Ok(8));
        assert_eq!(parse_value("X_POOL", Some("  "), 8u32), Ok(8));
        assert_eq!(parse_value("X_POOL", Some(" 16 "), 8u32), Ok(16));
        assert_eq!(parse_value("X_BYTES", Some("1_000_000"), 0usize), Ok(1_000_000));
    }

    #[test]
    fn a_bad_value_names_the_variable_what_it_expected_and_the_default() {
        let e = parse_value("PROCESSOR_DB_POOL_SIZE", Some("eight"), 8u32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PROCESSOR_DB_POOL_SIZE=\"eight\" is not valid: expected a whole number from 0 to 4294967295; \
             unset it to use the default (8)"
        );
        let e = parse_value("X", Some("-1"), 1u64).unwrap_err();
        assert!(e.to_string().contains("from 0 to"), "{e}");
        let e = parse_value("X", Some("99999999999999999999"), 1i64).unwrap_err();
        assert!(e.to_string().contains("expected a whole number"), "{e}");
    }

    #[test]
    fn floats_must_be_finite_and_flags_take_the_usual_words() {
        assert_eq!(parse_value("R", Some("2.5"), 1.0f64), Ok(2.5));
        assert!(parse_value("R", Some("NaN"), 1.0f64).is_err());
        assert!(parse_value("R", Some("inf"), 1.0f64).is_err());
        for (raw, want) in [("true", true), ("ON", true), ("1", true), ("no", false), ("False", false)] {
            assert_eq!(parse_value("F", Some(raw), !want), Ok(want), "{raw}");
        }
        assert!(parse_value("F", Some("maybe"), true).unwrap_err().to_string().contains("true or false"));
    }

    #[test]
    fn a_long_value_is_cut_in_the_error() {
        let long = "x".repeat(5000);
        let e = parse_value("X", Some(&long), 1u32).unwrap_err().to_string();
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn a_custom_rule_uses_the_same_format() {
        let e = EnvError::invalid("SCHEMA_REGISTRY_AUTH", "ldap", "basic (the default) or none");
        assert_eq!(e.to_string(), "SCHEMA_REGISTRY_AUTH=\"ldap\" is not valid: expected basic (the default) or none");
    }
}
