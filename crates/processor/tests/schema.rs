//! `model-schema`'s table definitions stay in step with the migrations: every table the
//! migrations create is defined, with exactly the columns the database has, so a migration that
//! adds, drops or renames a column without the matching change (or the reverse) fails here, not
//! at the first query that touches it.

use std::collections::{BTreeMap, BTreeSet};

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::Text;
use processor::schema::*;
use testkit::TestDatabase;

/// The columns a table definition selects, read off the SQL Diesel writes for `SELECT *`.
fn defined_columns<T>(table: T) -> (String, BTreeSet<String>)
where
    T: Table + diesel::query_dsl::methods::SelectDsl<<T as Table>::AllColumns>,
    <T as diesel::query_dsl::methods::SelectDsl<<T as Table>::AllColumns>>::Output:
        diesel::query_builder::QueryFragment<Pg>,
{
    let sql = diesel::debug_query::<Pg, _>(&table.select(T::all_columns())).to_string();
    // SELECT "t"."a", "t"."b" FROM "t" -- binds: []
    let (select, from) = sql.split_once(" FROM ").expect("a SELECT");
    let name = from.split('"').nth(1).expect("a quoted table name").to_owned();
    let columns = select
        .trim_start_matches("SELECT ")
        .split(", ")
        .map(|c| c.rsplit('.').next().unwrap().trim_matches('"').to_owned())
        .collect();
    (name, columns)
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
}

#[tokio::test]
async fn every_migrated_table_is_defined_with_exactly_its_columns() {
    let db = TestDatabase::create();
    processor::migrate(&processor::db::pool(&db.url, 1)).await.expect("migrations");
    let mut conn = PgConnection::establish(&db.url).unwrap();
    let rows: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text AS table_name, column_name::text AS column_name FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'",
    )
    .load(&mut conn)
    .unwrap();
    let mut migrated: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        migrated.entry(r.table_name).or_default().insert(r.column_name);
    }
    let defined: BTreeMap<String, BTreeSet<String>> = [
        defined_columns(partition_watermarks::table),
        defined_columns(topic_incarnations::table),
        defined_columns(sync_status::table),
        defined_columns(user_profiles::table),
        defined_columns(day_samples::table),
        defined_columns(daily_metrics::table),
        defined_columns(rolling_metrics::table),
        defined_columns(erasure_receipts::table),
    ]
    .into_iter()
    .collect();
    assert!(defined["rolling_metrics"].contains("ctl"), "renamed columns are compared by their SQL names");
    for (table, columns) in &migrated {
        let Some(mine) = defined.get(table) else {
            panic!("the migrations create {table}, which model-schema does not define: add its table! block");
        };
        assert_eq!(mine, columns, "{table}: model-schema's columns (left) differ from the migrated table's (right)");
    }
    let undefined: Vec<_> = defined.keys().filter(|t| !migrated.contains_key(*t)).collect();
    assert!(undefined.is_empty(), "model-schema defines tables no migration creates: {undefined:?}");
}
