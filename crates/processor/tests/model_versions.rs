//! Model versions: every row records the health model version that computed it, and rows of an
//! older version are recomputed from the stored samples (no replay), in the background of a
//! running processor or by `processor recompute`, beside live events that are neither lost nor
//! counted twice.

mod common;

use std::time::Duration;

use common::{
    day0, metric, model_dump, produce_event, produce_events, spawn_processor_with, story, synced, wait_processed, DAY,
    HOUR,
};
use diesel::prelude::*;
use events::device_synced::HrQuality;
use health_model::MODEL_VERSION;
use processor::schema::{daily_metrics, rolling_metrics};
use testkit::{apps, eventually, unique, TestDatabase};

/// Rows as an older model would have left them: another version, other values.
fn age_rows(conn: &mut PgConnection, users: &[String]) {
    diesel::sql_query(
        "UPDATE daily_metrics SET model_version = model_version - 1, steps = steps + 1000, training_load = -1 \
         WHERE user_id = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(users)
    .execute(conn)
    .unwrap();
    diesel::sql_query(
        "UPDATE rolling_metrics SET model_version = model_version - 1, ctl = 999, metrics = '{}' WHERE user_id = ANY($1)",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(users)
    .execute(conn)
    .unwrap();
}

fn behind(conn: &mut PgConnection) -> i64 {
    let daily: i64 =
        daily_metrics::table.filter(daily_metrics::model_version.lt(MODEL_VERSION)).count().get_result(conn).unwrap();
    let rolling: i64 = rolling_metrics::table
        .filter(rolling_metrics::model_version.lt(MODEL_VERSION))
        .count()
        .get_result(conn)
        .unwrap();
    daily + rolling
}

/// The model a processor builds from the topic alone, in a new database: what every recompute
/// must converge to.
async fn from_the_log(settings: &processor::config::Settings) -> Vec<(&'static str, Vec<String>)> {
    let fresh = TestDatabase::create();
    let mut settings = settings.clone();
    settings.database_url = fresh.url.clone();
    settings.group_id = unique("truth");
    processor::rebuild(settings, tokio_util::sync::CancellationToken::new(), |_, _| {}).await.expect("rebuilt");
    model_dump(&mut PgConnection::establish(&fresh.url).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_of_an_older_version_are_recomputed_in_the_background_beside_live_events() {
    testkit::init_logging();
    let p = spawn_processor_with(|_| {}).await;
    let topic = p.settings.topic.clone();
    let users: Vec<String> = (0..6).map(|i| unique(&format!("version-{i}"))).collect();
    let mut first = Vec::new();
    for user in &users {
        first.extend(story(user));
    }
    produce_events(&topic, &first).await;
    wait_processed(&p, &first, Duration::from_secs(60)).await;
    let mut conn = p.conn();
    assert_eq!(behind(&mut conn), 0, "a processor writes its own version");
    let versions: Vec<i32> =
        daily_metrics::table.select(daily_metrics::model_version).distinct().load(&mut conn).unwrap();
    assert_eq!(versions, vec![MODEL_VERSION]);
    let settings = p.settings.clone();
    p.app.stop().await.expect("stops");

    // An older model's rows; new events wait in the topic for the next processor.
    age_rows(&mut conn, &users);
    assert!(behind(&mut conn) > 0);
    let mut live = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let late = day0() + 5 * DAY + 10 * HOUR + i as i64 * HOUR;
        live.push(synced(user, "band-1", HrQuality::Locked, (late, late + HOUR, 5_000), 130, vec![]));
    }
    produce_events(&topic, &live).await;
    let restarted = apps::spawn_processor(settings.clone()).await;
    eventually(Duration::from_secs(60), "every row recomputed at the current version", || {
        (behind(&mut conn) == 0).then_some(())
    })
    .await;
    let recomputed = metric(restarted.port, "processor_recompute_users_total").await.unwrap_or(0.0);
    assert!(
        (1.0..=users.len() as f64).contains(&recomputed),
        "the background recompute counted its users: {recomputed}"
    );
    assert_eq!(metric(restarted.port, "processor_recompute_users_remaining").await, Some(0.0));
    let probe = common::TestProcessor { db: p.db, settings: settings.clone(), app: restarted, ops_port: 0 };
    wait_processed(&probe, &live, Duration::from_secs(60)).await;

    // The live events are in, once, and every row equals the model built from the log alone.
    let truth = from_the_log(&settings).await;
    let ours = model_dump(&mut conn);
    for ((table, want), (_, got)) in truth.iter().zip(&ours) {
        assert_eq!(got, want, "{table}: recomputed rows differ from the model built from the log");
    }

    // `processor recompute` beside the running processor: one user on demand, then those behind.
    age_rows(&mut conn, &users[..2]);
    let one = processor::recompute_users(&settings, processor::RecomputeScope::User(users[0].clone()), 1)
        .await
        .expect("recomputes one user");
    assert_eq!((one.users, one.already_current), (1, 0));
    assert!(one.user_days >= 5, "the user's series: {one:?}");
    let rest = processor::recompute_users(&settings, processor::RecomputeScope::Behind, 2).await.expect("recomputes");
    assert_eq!(rest.users, 1, "only the user still behind: {rest:?}");
    assert_eq!(behind(&mut conn), 0);
    // A live event after the recompute resumes from the recomputed rows.
    let next_day = day0() + 6 * DAY + 9 * HOUR;
    let later = synced(&users[0], "band-1", HrQuality::Locked, (next_day, next_day + HOUR, 5_000), 128, vec![]);
    produce_event(&topic, &later).await;
    wait_processed(&probe, [&later], Duration::from_secs(30)).await;
    let truth = from_the_log(&settings).await;
    assert_eq!(model_dump(&mut conn), truth, "after an on-demand recompute and a live event");
    probe.app.stop().await.expect("stops");
}
