//! `schemas/` as a set of subjects and versions: loading, offline compatibility checks, diffs
//! in words, and registration through the Schema Registry REST API (Confluent's, so the same
//! tool works against Confluent, Karapace, Redpanda or ours).

pub mod check;
pub mod diff;
pub mod manifest;
pub mod register;
