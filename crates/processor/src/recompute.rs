//! Recomputing users' models from their stored samples, outside the log: after a health-model
//! version bump (in the background of a running processor, or `processor recompute`), or on
//! demand for one user.
//!
//! One user per transaction. The transaction first locks the watermark rows of the partitions
//! that carried the user's syncs and raises their model epoch: a live batch of those partitions
//! waits for it (or it for the batch), so the two never race, and every cached model of those
//! partitions in other processes is dropped, since it may hold the old rows. The user's days are
//! then computed in date order, a window of samples at a time (memory is bounded by the window,
//! not the user's history), and the user's daily and rolling rows are replaced.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{Days, NaiveDate};
use diesel::prelude::*;
use health_model::day::DayData;

use crate::apply::{self, ApplyError, DayOutcome};
use crate::cache::{ModelCache, UserModel};
use crate::series::Series;
use crate::sql;

/// Days of samples loaded per query while a user is recomputed.
const WINDOW_DAYS: u64 = 31;

/// Which users to recompute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Users with a row computed by an older model version.
    Behind,
    /// Every user with stored samples.
    All,
    /// One user, whatever the version of their rows.
    User(String),
}

/// What recomputing one user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserRecomputed {
    /// Days with a daily row.
    pub days: usize,
    /// Rolling rows (the dense series).
    pub series_days: usize,
    /// False when another process had already brought the user up to date.
    pub done: bool,
}

/// The users `scope` names, in user order.
pub fn users(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<String>> {
    match scope {
        Scope::Behind => sql::users_behind(conn, health_model::MODEL_VERSION),
        Scope::All => sql::users_with_samples(conn),
        Scope::User(user) => Ok(vec![user.clone()]),
    }
}

/// Recomputes `user` in one transaction. With `only_if_behind`, a user whose rows are all
/// current (another replica did it meanwhile) is left alone. `cache`: this process's model
/// cache, kept valid for the partitions' other users. A user whose samples span more than
/// `max_series_days` is refused (unusable): their rows are what bounds the transaction's memory.
pub fn recompute_user(
    conn: &mut PgConnection,
    topic: &str,
    user: &str,
    only_if_behind: bool,
    max_series_days: u64,
    cache: Option<&Mutex<ModelCache>>,
) -> Result<UserRecomputed, ApplyError> {
    let (result, rewrites) = conn.transaction(|conn| -> Result<_, ApplyError> {
        // Derived rows only: a commit lost in a crash leaves the user's older rows, which the next
        // recompute redoes; waiting for the WAL flush per user would bound the rate instead.
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
        let partitions = sql::partitions_of_user(conn, user)?;
        let rewrites = sql::lock_for_rewrite(conn, topic, &partitions)?;
        if only_if_behind && !sql::user_behind(conn, user, health_model::MODEL_VERSION)? {
            return Ok((UserRecomputed::default(), Vec::new()));
        }
        let result = rewrite_user(conn, user, max_series_days)?;
        Ok((result, rewrites))
    })?;
    if let Some(cache) = cache {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if rewrites.is_empty() {
            cache.evict(&[user]);
        }
        for (partition, before, after) in rewrites {
            cache.rewritten(partition, before, after, user);
        }
    }
    Ok(result)
}

/// Replaces the user's daily and rolling rows with ones computed from the stored samples.
fn rewrite_user(conn: &mut PgConnection, user: &str, max_series_days: u64) -> Result<UserRecomputed, ApplyError> {
    let profile = sql::load_profiles(conn, &[user])?.first().map(apply::stored_profile);
    let mut model = UserModel { profile, ..UserModel::default() };
    let mut daily_rows = Vec::new();
    let mut series = Series::default();
    let mut data = DayData::default();
    if let Some((first, last)) = sql::sample_span(conn, user)? {
        let span = (last - first).num_days().unsigned_abs() + 2;
        if span > max_series_days {
            return Err(ApplyError::Unusable(format!(
                "the samples of user {user} span {span} days ({first} to {last}); the limit is {max_series_days} \
                 (PROCESSOR_MAX_SERIES_DAYS)"
            )));
        }
        // Every day from the first with samples to the day after the last (its night may be
        // the last evening's), in order; a day needs its own samples and the day before's.
        let end = last.succ_opt().unwrap_or(last);
        let mut window_start = first;
        while window_start <= end {
            let window_end = window_start.checked_add_days(Days::new(WINDOW_DAYS - 1)).unwrap_or(end).min(end);
            let mut loaded: BTreeMap<NaiveDate, crate::day_state::DayState> = BTreeMap::new();
            for stored in sql::load_user_day_samples(conn, user, window_start, window_end)? {
                apply::merge_stored(&mut loaded, &stored)?;
            }
            model.days.extend(loaded);
            for date in window_start.iter_days().take_while(|d| *d <= window_end) {
                match apply::recompute_day(user, date, &mut model, &mut data) {
                    DayOutcome::Row(row, values) => {
                        series.set_day(date, Some(values));
                        daily_rows.push(*row);
                    }
                    DayOutcome::NoRow => {}
                }
                // Only the day before the next one is read again.
                model.days = model.days.split_off(&date);
            }
            let Some(next) = window_end.succ_opt() else { break };
            window_start = next;
        }
    }
    let rolling_rows = match series.first_day {
        Some(first) => series.recompute_from(user, first).ok_or_else(|| {
            ApplyError::Unusable(format!("the series of user {user} cannot be computed from {first}"))
        })?,
        None => Vec::new(),
    };
    sql::delete_user_model(conn, user)?;
    sql::upsert_daily(conn, &daily_rows)?;
    sql::upsert_rolling(conn, &rolling_rows)?;
    let dates: Vec<NaiveDate> = rolling_rows.iter().map(|r| r.local_date).collect();
    if let Some(update) = apply::model_update(user, None, dates.iter().copied()) {
        sql::notify_model_updates(conn, &[update])?;
    }
    Ok(UserRecomputed { days: daily_rows.len(), series_days: rolling_rows.len(), done: true })
}

/// Recomputes every user behind the model version, user by user, alongside live processing,
/// until done or `shutdown`. Progress goes to the metrics and to a log line every 10 s. A user
/// that fails for a transient reason is retried with backoff; one whose data cannot be computed
/// is logged and skipped (its rows keep their version, so the next start tries again).
pub async fn in_background(
    pool: crate::db::PgPool,
    topic: String,
    max_series_days: u64,
    cache: std::sync::Arc<Mutex<ModelCache>>,
    metrics: crate::metrics::Metrics,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use log::{info, warn};
    let version = health_model::MODEL_VERSION;
    let mut backoff =
        service_kit::backoff::Backoff::new(std::time::Duration::from_millis(200), std::time::Duration::from_secs(10));
    let users = loop {
        let pool = pool.clone();
        let found = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
            let mut conn = pool.get()?;
            Ok(users(&mut conn, &Scope::Behind)?)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}")));
        match found {
            Ok(users) => break users,
            Err(e) => {
                warn!("recompute: cannot list the users behind model version {version}: {e:#}; retrying");
                if !backoff.wait(&shutdown).await {
                    return;
                }
            }
        }
    };
    if users.is_empty() {
        return;
    }
    info!("recompute: {} user(s) have rows older than model version {version}; recomputing them", users.len());
    metrics.recompute_users_remaining.set(users.len() as i64);
    let started = std::time::Instant::now();
    let mut last_log = started;
    let (mut done, mut user_days) = (0usize, 0usize);
    for user in &users {
        loop {
            if shutdown.is_cancelled() {
                info!("recompute: stopped with {} of {} user(s) done; the next start goes on", done, users.len());
                return;
            }
            let (pool, topic, cache, id) = (pool.clone(), topic.clone(), cache.clone(), user.clone());
            let result = tokio::task::spawn_blocking(move || -> Result<UserRecomputed, ApplyError> {
                let mut conn = pool.get().map_err(|e| ApplyError::Pool(e.to_string()))?;
                recompute_user(&mut conn, &topic, &id, true, max_series_days, Some(&cache))
            })
            .await
            .unwrap_or_else(|e| Err(ApplyError::Unusable(format!("the recompute panicked: {e}"))));
            match result {
                Ok(r) => {
                    backoff.reset();
                    user_days += r.series_days;
                    break;
                }
                Err(e) if e.may_be_poison() => {
                    warn!("recompute: user {user} skipped: {e}");
                    break;
                }
                Err(e) => {
                    warn!("recompute: user {user}: {e}; retrying");
                    backoff.wait(&shutdown).await;
                }
            }
        }
        done += 1;
        metrics.recompute_users.inc();
        metrics.recompute_users_remaining.set((users.len() - done) as i64);
        if last_log.elapsed() >= std::time::Duration::from_secs(10) {
            last_log = std::time::Instant::now();
            info!(
                "recompute: {done} of {} user(s), {user_days} user-day(s), {:.0} user-days/s",
                users.len(),
                user_days as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    info!(
        "recompute: done, {} user(s) and {user_days} user-day(s) at model version {version} in {:.1} s",
        users.len(),
        started.elapsed().as_secs_f64()
    );
}
