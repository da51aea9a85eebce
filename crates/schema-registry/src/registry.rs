//! The registry's rules, over one database connection: parsing and canonicalising schemas,
//! registration with compatibility checks, look-ups and Confluent's delete rules.

use apache_avro::Schema;
use diesel::pg::PgConnection;
use serde::{Deserialize, Serialize};

use crate::compat::{Level, DEFAULT_LEVEL};
use crate::error::ApiError;
use crate::store::{self, StoredSchema, VersionRow, GLOBAL};

/// The body of register, look-up and compatibility requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    pub schema: String,
    #[serde(default)]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema that parsed, with the forms the store needs.
pub struct Candidate {
    pub text: String,
    pub canonical: String,
    pub refs: serde_json::Value,
    pub parsed: Schema,
}

/// Compact JSON with sorted keys (serde_json's map is ordered), so whitespace and key order do not
/// make a new schema.
pub fn canonical_json(text: &str) -> Result<String, ApiError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| ApiError::InvalidSchema(format!("not JSON: {e}")))?;
    Ok(value.to_string())
}

pub fn parse_candidate(conn: &mut PgConnection, req: &SchemaRequest) -> Result<Candidate, ApiError> {
    let schema_type = req.schema_type.as_deref().unwrap_or("AVRO");
    if !schema_type.eq_ignore_ascii_case("AVRO") {
        return Err(ApiError::InvalidSchema(format!(
            "schemaType {schema_type} is not supported by this registry; only AVRO is"
        )));
    }
    let referenced = resolve_references(conn, &req.references)?;
    candidate(req, &referenced)
}

/// The part of [`parse_candidate`] that needs no database: an Avro request parsed, with the
/// texts of the schemas it references (`referenced`, dependencies first), and canonicalised.
/// Split out so it can be fuzzed (`tests/fuzz.rs`).
pub fn candidate(req: &SchemaRequest, referenced: &[String]) -> Result<Candidate, ApiError> {
    let parsed = parse(&req.schema, referenced)?;
    Ok(Candidate {
        text: req.schema.clone(),
        canonical: canonical_json(&req.schema)?,
        refs: serde_json::to_value(&req.references).unwrap_or_default(),
        parsed,
    })
}

fn parse(text: &str, referenced: &[String]) -> Result<Schema, ApiError> {
    // apache-avro 0.22 panics on schemas that carry an attribute named like a keyword ("items",
    // "values", "fields") holding something that is not a schema, e.g. an array type with
    // "values": 5: `canonical_form` always does, and `parse_str` does when a field's default does
    // not fit such a type. A request must not panic the registry, and a stored schema whose
    // canonical form panics would crash every consumer that computes it (events' EventDecoder
    // does, for each writer schema), so both are run here and a panic rejects the schema.
    // Found by tests/fuzz.rs.
    let attempt = std::panic::catch_unwind(|| {
        let result = if referenced.is_empty() {
            Schema::parse_str(text)
        } else {
            Schema::parse_str_with_list(text, referenced).map(|(s, _)| s)
        };
        result.inspect(|schema| {
            schema.canonical_form();
        })
    });
    match attempt {
        Ok(result) => result.map_err(|e| ApiError::InvalidSchema(e.to_string())),
        Err(panic) => {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ApiError::InvalidSchema(format!("the Avro library cannot process it: {why}")))
        }
    }
}

/// The texts of the referenced schemas (and of what they reference), dependencies first.
fn resolve_references(conn: &mut PgConnection, refs: &[Reference]) -> Result<Vec<String>, ApiError> {
    let mut texts = Vec::new();
    for r in refs {
        let row = store::versions(conn, &r.subject)?
            .into_iter()
            .find(|v| v.version == r.version && !v.deleted)
            .ok_or_else(|| {
                ApiError::InvalidSchema(format!(
                    "reference {} to {} version {} not found",
                    r.name, r.subject, r.version
                ))
            })?;
        let nested: Vec<Reference> = serde_json::from_value(row.schema.refs.clone()).unwrap_or_default();
        texts.extend(resolve_references(conn, &nested)?);
        texts.push(row.schema.schema_text);
    }
    Ok(texts)
}

pub fn parse_stored(conn: &mut PgConnection, stored: &StoredSchema) -> Result<Schema, ApiError> {
    let refs: Vec<Reference> = serde_json::from_value(stored.refs.clone()).unwrap_or_default();
    let referenced = resolve_references(conn, &refs)?;
    parse(&stored.schema_text, &referenced)
        .map_err(|e| ApiError::Store(format!("stored schema {} no longer parses: {e}", stored.id)))
}

/// A version selector from a path: a number in [1, 2^31-1], "latest" or -1.
#[derive(Debug, Clone, Copy)]
pub enum VersionSel {
    Latest,
    Number(i32),
}

impl std::str::FromStr for VersionSel {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, ApiError> {
        match s {
            "latest" | "-1" => Ok(VersionSel::Latest),
            _ => match s.parse::<i32>() {
                Ok(n) if n >= 1 => Ok(VersionSel::Number(n)),
                _ => Err(ApiError::InvalidVersion(s.to_owned())),
            },
        }
    }
}

pub fn level(conn: &mut PgConnection, subject: &str) -> Result<Level, ApiError> {
    let configured = match store::config(conn, subject)? {
        Some(level) => Some(level),
        None => store::config(conn, GLOBAL)?,
    };
    Ok(configured.map(|l| l.parse()).transpose()?.unwrap_or(DEFAULT_LEVEL))
}

/// Versions of a subject; 40401 when it has none (or only soft-deleted ones, unless included).
pub fn subject_versions(
    conn: &mut PgConnection,
    subject: &str,
    include_deleted: bool,
) -> Result<Vec<VersionRow>, ApiError> {
    let rows: Vec<VersionRow> =
        store::versions(conn, subject)?.into_iter().filter(|v| include_deleted || !v.deleted).collect();
    if rows.is_empty() {
        return Err(ApiError::SubjectNotFound(subject.to_owned()));
    }
    Ok(rows)
}

pub fn find_version(
    conn: &mut PgConnection,
    subject: &str,
    sel: VersionSel,
    include_deleted: bool,
) -> Result<VersionRow, ApiError> {
    let rows = subject_versions(conn, subject, include_deleted)?;
    match sel {
        VersionSel::Latest => rows.into_iter().last(),
        VersionSel::Number(n) => rows.into_iter().find(|v| v.version == n),
    }
    .ok_or_else(|| {
        ApiError::VersionNotFound(match sel {
            VersionSel::Latest => "latest".to_owned(),
            VersionSel::Number(n) => n.to_string(),
        })
    })
}

/// The reasons `candidate` is incompatible with the subject's live versions at `level`.
pub fn incompatibilities(
    conn: &mut PgConnection,
    subject: &str,
    candidate: &Schema,
    level: Level,
) -> Result<Vec<String>, ApiError> {
    if level == Level::None {
        return Ok(Vec::new());
    }
    let mut existing = Vec::new();
    for row in store::versions(conn, subject)?.into_iter().filter(|v| !v.deleted) {
        existing.push((row.version, parse_stored(conn, &row.schema)?));
    }
    Ok(level.check(candidate, &existing))
}

/// Registers `req` under `subject`: an identical live version returns its id without a new
/// version; otherwise the schema must be compatible at the subject's level.
pub fn register(conn: &mut PgConnection, subject: &str, req: &SchemaRequest) -> Result<i32, ApiError> {
    store::write(conn, |conn| {
        crate::mode::ensure_writable(conn, subject)?;
        let candidate = parse_candidate(conn, req)?;
        let live: Vec<VersionRow> = store::versions(conn, subject)?.into_iter().filter(|v| !v.deleted).collect();
        if let Some(existing_id) = store::schema_id_by_canonical(conn, &candidate.canonical, &candidate.refs)? {
            if live.iter().any(|v| v.schema.id == existing_id) {
                return Ok(existing_id);
            }
        }
        let level = level(conn, subject)?;
        let reasons = incompatibilities(conn, subject, &candidate.parsed, level)?;
        if !reasons.is_empty() {
            return Err(ApiError::Incompatible { subject: subject.to_owned(), details: reasons });
        }
        let id = match store::schema_id_by_canonical(conn, &candidate.canonical, &candidate.refs)? {
            Some(id) => id,
            None => store::insert_schema(conn, "AVRO", &candidate.text, &candidate.canonical, &candidate.refs)?,
        };
        let version = store::insert_version(conn, subject, id)?;
        log::info!("registered schema id {id} as {subject} version {version}");
        Ok(id)
    })
}

/// Finds the live (or, with `include_deleted`, any) version of `subject` holding this schema.
pub fn lookup(
    conn: &mut PgConnection,
    subject: &str,
    req: &SchemaRequest,
    include_deleted: bool,
) -> Result<VersionRow, ApiError> {
    let rows = subject_versions(conn, subject, include_deleted)?;
    let candidate = parse_candidate(conn, req)?;
    let id = store::schema_id_by_canonical(conn, &candidate.canonical, &candidate.refs)?;
    rows.into_iter().rev().find(|v| Some(v.schema.id) == id).ok_or_else(|| ApiError::SchemaNotFound(String::new()))
}

/// Soft delete (default) or permanent delete of a whole subject; returns the versions deleted.
pub fn delete_subject(conn: &mut PgConnection, subject: &str, permanent: bool) -> Result<Vec<i32>, ApiError> {
    store::write(conn, |conn| {
        crate::mode::ensure_writable(conn, subject)?;
        let rows = store::versions(conn, subject)?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let live: Vec<i32> = rows.iter().filter(|v| !v.deleted).map(|v| v.version).collect();
        if permanent {
            if !live.is_empty() {
                return Err(ApiError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            let all: Vec<i32> = rows.iter().map(|v| v.version).collect();
            store::hard_delete(conn, subject, &all)?;
            store::delete_config(conn, subject)?;
            Ok(all)
        } else {
            if live.is_empty() {
                return Err(ApiError::SubjectSoftDeleted(subject.to_owned()));
            }
            store::soft_delete(conn, subject, &live)?;
            Ok(live)
        }
    })
}

pub fn delete_version(
    conn: &mut PgConnection,
    subject: &str,
    sel: VersionSel,
    permanent: bool,
) -> Result<i32, ApiError> {
    store::write(conn, |conn| {
        crate::mode::ensure_writable(conn, subject)?;
        let rows = store::versions(conn, subject)?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let row = match sel {
            // "latest" means the latest live version.
            VersionSel::Latest => rows.iter().rev().find(|v| !v.deleted),
            VersionSel::Number(n) => rows.iter().find(|v| v.version == n),
        }
        .ok_or_else(|| {
            ApiError::VersionNotFound(match sel {
                VersionSel::Latest => "latest".to_owned(),
                VersionSel::Number(n) => n.to_string(),
            })
        })?;
        match (permanent, row.deleted) {
            (false, true) => Err(ApiError::VersionSoftDeleted(subject.to_owned(), row.version)),
            (true, false) => Err(ApiError::VersionNotSoftDeleted(subject.to_owned(), row.version)),
            (false, false) => {
                store::soft_delete(conn, subject, &[row.version])?;
                Ok(row.version)
            }
            (true, true) => {
                store::hard_delete(conn, subject, &[row.version])?;
                Ok(row.version)
            }
        }
    })
}
