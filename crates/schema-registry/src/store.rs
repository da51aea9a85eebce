//! PostgreSQL storage. Every write runs in a transaction that first takes one advisory lock, so
//! any number of registry instances behind one URL act as a single writer: versions are assigned
//! one at a time and the `UNIQUE (canonical, refs)` constraint gives each distinct schema one id.

use diesel::dsl::max;
use diesel::pg::PgConnection;
use diesel::prelude::*;

use crate::error::ApiError;
use crate::schema::{audit_log, compatibility_config, registry_mode, schemas, subject_versions};

/// Key of the advisory lock every write takes (any constant shared by all instances).
const WRITE_LOCK: i64 = 0x5343_4845_4d41; // "SCHEMA"

/// Row key of the global compatibility level.
pub const GLOBAL: &str = "";

#[derive(Debug, Clone, Queryable)]
pub struct StoredSchema {
    pub id: i32,
    pub schema_type: String,
    pub schema_text: String,
    pub refs: serde_json::Value,
}

/// One version of a subject with its schema.
#[derive(Debug, Clone, Queryable)]
pub struct VersionRow {
    pub subject: String,
    pub version: i32,
    pub deleted: bool,
    pub schema: StoredSchema,
}

pub fn lock_for_write(conn: &mut PgConnection) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(WRITE_LOCK)
        .execute(conn)?;
    Ok(())
}

pub fn schema_by_id(conn: &mut PgConnection, id: i32) -> QueryResult<Option<StoredSchema>> {
    schemas::table
        .find(id)
        .select((schemas::id, schemas::schema_type, schemas::schema_text, schemas::refs))
        .first(conn)
        .optional()
}

pub fn schema_id_by_canonical(
    conn: &mut PgConnection,
    canonical: &str,
    refs: &serde_json::Value,
) -> QueryResult<Option<i32>> {
    schemas::table
        .filter(schemas::canonical.eq(canonical))
        .filter(schemas::refs.eq(refs))
        .select(schemas::id)
        .first(conn)
        .optional()
}

pub fn insert_schema(
    conn: &mut PgConnection,
    schema_type: &str,
    text: &str,
    canonical: &str,
    refs: &serde_json::Value,
) -> QueryResult<i32> {
    diesel::insert_into(schemas::table)
        .values((
            schemas::schema_type.eq(schema_type),
            schemas::schema_text.eq(text),
            schemas::canonical.eq(canonical),
            schemas::refs.eq(refs),
        ))
        .returning(schemas::id)
        .get_result(conn)
}

fn version_columns() -> (
    subject_versions::subject,
    subject_versions::version,
    subject_versions::deleted,
    (schemas::id, schemas::schema_type, schemas::schema_text, schemas::refs),
) {
    (
        subject_versions::subject,
        subject_versions::version,
        subject_versions::deleted,
        (schemas::id, schemas::schema_type, schemas::schema_text, schemas::refs),
    )
}

/// All versions of a subject, soft-deleted ones included, oldest first.
pub fn versions(conn: &mut PgConnection, subject: &str) -> QueryResult<Vec<VersionRow>> {
    subject_versions::table
        .inner_join(schemas::table)
        .filter(subject_versions::subject.eq(subject))
        .order(subject_versions::version.asc())
        .select(version_columns())
        .load(conn)
}

/// Where a schema is used: (subject, version, deleted).
pub fn usages(conn: &mut PgConnection, schema_id: i32) -> QueryResult<Vec<(String, i32, bool)>> {
    subject_versions::table
        .filter(subject_versions::schema_id.eq(schema_id))
        .order((subject_versions::subject.asc(), subject_versions::version.asc()))
        .select((subject_versions::subject, subject_versions::version, subject_versions::deleted))
        .load(conn)
}

pub fn subjects(conn: &mut PgConnection, include_deleted: bool) -> QueryResult<Vec<String>> {
    let mut query = subject_versions::table.select(subject_versions::subject).distinct().into_boxed();
    if !include_deleted {
        query = query.filter(subject_versions::deleted.eq(false));
    }
    query.order(subject_versions::subject.asc()).load(conn)
}

pub fn insert_version(conn: &mut PgConnection, subject: &str, schema_id: i32) -> QueryResult<i32> {
    let latest: Option<i32> = subject_versions::table
        .filter(subject_versions::subject.eq(subject))
        .select(max(subject_versions::version))
        .first(conn)?;
    let version = latest.unwrap_or(0) + 1;
    diesel::insert_into(subject_versions::table)
        .values((
            subject_versions::subject.eq(subject),
            subject_versions::version.eq(version),
            subject_versions::schema_id.eq(schema_id),
        ))
        .execute(conn)?;
    Ok(version)
}

pub fn soft_delete(conn: &mut PgConnection, subject: &str, versions: &[i32]) -> QueryResult<usize> {
    diesel::update(
        subject_versions::table
            .filter(subject_versions::subject.eq(subject))
            .filter(subject_versions::version.eq_any(versions)),
    )
    .set(subject_versions::deleted.eq(true))
    .execute(conn)
}

/// Removes versions for good; schemas no version refers to any more go too (their ids are not reused).
pub fn hard_delete(conn: &mut PgConnection, subject: &str, versions: &[i32]) -> QueryResult<usize> {
    let n = diesel::delete(
        subject_versions::table
            .filter(subject_versions::subject.eq(subject))
            .filter(subject_versions::version.eq_any(versions)),
    )
    .execute(conn)?;
    diesel::sql_query(
        "DELETE FROM schemas s WHERE NOT EXISTS (SELECT 1 FROM subject_versions v WHERE v.schema_id = s.id)",
    )
    .execute(conn)?;
    Ok(n)
}

pub fn config(conn: &mut PgConnection, subject: &str) -> QueryResult<Option<String>> {
    compatibility_config::table.find(subject).select(compatibility_config::compatibility).first(conn).optional()
}

pub fn set_config(conn: &mut PgConnection, subject: &str, level: &str) -> QueryResult<()> {
    diesel::insert_into(compatibility_config::table)
        .values((compatibility_config::subject.eq(subject), compatibility_config::compatibility.eq(level)))
        .on_conflict(compatibility_config::subject)
        .do_update()
        .set(compatibility_config::compatibility.eq(level))
        .execute(conn)?;
    Ok(())
}

pub fn delete_config(conn: &mut PgConnection, subject: &str) -> QueryResult<Option<String>> {
    diesel::delete(compatibility_config::table.find(subject))
        .returning(compatibility_config::compatibility)
        .get_result(conn)
        .optional()
}

pub fn mode(conn: &mut PgConnection, subject: &str) -> QueryResult<Option<String>> {
    registry_mode::table.find(subject).select(registry_mode::mode).first(conn).optional()
}

pub fn set_mode(conn: &mut PgConnection, subject: &str, mode: &str) -> QueryResult<()> {
    diesel::insert_into(registry_mode::table)
        .values((registry_mode::subject.eq(subject), registry_mode::mode.eq(mode)))
        .on_conflict(registry_mode::subject)
        .do_update()
        .set(registry_mode::mode.eq(mode))
        .execute(conn)?;
    Ok(())
}

pub fn delete_mode(conn: &mut PgConnection, subject: &str) -> QueryResult<Option<String>> {
    diesel::delete(registry_mode::table.find(subject)).returning(registry_mode::mode).get_result(conn).optional()
}

/// One row of the audit trail.
pub struct AuditRow<'a> {
    pub username: &'a str,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub version: Option<&'a str>,
    pub detail: &'a str,
    pub result: &'a str,
}

pub fn insert_audit(conn: &mut PgConnection, row: &AuditRow<'_>) -> QueryResult<()> {
    diesel::insert_into(audit_log::table)
        .values((
            audit_log::username.eq(row.username),
            audit_log::action.eq(row.action),
            audit_log::subject.eq(row.subject),
            audit_log::version.eq(row.version),
            audit_log::detail.eq(row.detail),
            audit_log::result.eq(row.result),
        ))
        .execute(conn)?;
    Ok(())
}

/// Runs `f` in a write transaction holding the writer lock.
pub fn write<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    conn.transaction(|conn| {
        lock_for_write(conn)?;
        f(conn)
    })
}
