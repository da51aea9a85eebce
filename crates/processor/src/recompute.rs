//! The health model's writes, inside the batch's transaction: each event's chunks and profile,
//! then every affected day recomputed from the database alone, then the rolling series carried
//! forward from the earliest changed day. The result depends only on the data stored, never on
//! the order it arrived in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use diesel::prelude::*;
use events::device_synced::Sex;
use events::DeviceSynced;
use health_model::{day, rolling, Profile};
use serde_json::json;

use crate::model::{self, Chunk};
use crate::schema::{daily_metrics, day_chunks, rolling_metrics, user_profiles};

/// birth year, sex, weight, height, measured HRmax
type StoredProfile = (i32, String, f64, f64, Option<i32>);

const PROFILE_COLUMNS: (
    user_profiles::birth_year,
    user_profiles::sex,
    user_profiles::weight_kg,
    user_profiles::height_cm,
    user_profiles::hr_max,
) = (
    user_profiles::birth_year,
    user_profiles::sex,
    user_profiles::weight_kg,
    user_profiles::height_cm,
    user_profiles::hr_max,
);

/// What one batch changed, per user: the days to recompute, or all of them (a new profile).
#[derive(Debug, Default)]
pub struct Affected {
    pub days: BTreeMap<String, BTreeSet<NaiveDate>>,
    pub all_days: BTreeSet<String>,
}

/// Stores an event's samples (by local day) and its profile; notes what it affects.
pub fn store_event(
    conn: &mut PgConnection,
    event: &DeviceSynced,
    sync_id: uuid::Uuid,
    affected: &mut Affected,
) -> QueryResult<()> {
    let chunks = model::chunks_of(event);
    let rows: Vec<_> = chunks
        .iter()
        .map(|(date, (offset, chunk))| {
            (
                day_chunks::user_id.eq(&event.user_id),
                day_chunks::local_date.eq(*date),
                day_chunks::sync_id.eq(sync_id),
                day_chunks::device_id.eq(&event.device_id),
                day_chunks::utc_offset_minutes.eq(*offset),
                day_chunks::synced_at_ms.eq(event.clock.phone_time_ms),
                day_chunks::chunk.eq(serde_json::to_value(chunk).unwrap_or_default()),
            )
        })
        .collect();
    // A retried sync (same sync id) stores nothing new.
    let inserted = diesel::insert_into(day_chunks::table).values(rows).on_conflict_do_nothing().execute(conn)?;
    if inserted > 0 {
        let days = affected.days.entry(event.user_id.clone()).or_default();
        for date in chunks.keys() {
            days.extend(model::affected_days(*date));
        }
    }
    if let Some(p) = &event.profile {
        let sex = match p.sex {
            Sex::Male => "male",
            Sex::Female => "female",
        };
        let before = user_profiles::table
            .find(&event.user_id)
            .select((PROFILE_COLUMNS, user_profiles::as_of_ms))
            .first::<(StoredProfile, i64)>(conn)
            .optional()?;
        // The latest profile by the sync's own time wins, whatever the arrival order. One user's
        // events are in one partition, so one replica at a time writes this row.
        let newer = before.as_ref().is_none_or(|(_, as_of)| *as_of < event.clock.phone_time_ms);
        if newer {
            let values = (
                user_profiles::user_id.eq(&event.user_id),
                user_profiles::birth_year.eq(p.birth_year),
                user_profiles::sex.eq(sex),
                user_profiles::weight_kg.eq(p.weight_kg),
                user_profiles::height_cm.eq(p.height_cm),
                user_profiles::hr_max.eq(p.hr_max),
                user_profiles::as_of_ms.eq(event.clock.phone_time_ms),
            );
            diesel::insert_into(user_profiles::table)
                .values(values)
                .on_conflict(user_profiles::user_id)
                .do_update()
                .set(values)
                .execute(conn)?;
        }
        let changed = newer;
        let before = before.map(|(p, _)| p);
        let new = (p.birth_year, sex.to_owned(), p.weight_kg, p.height_cm, p.hr_max);
        if changed && before.as_ref() != Some(&new) {
            // Every day depends on the profile.
            affected.all_days.insert(event.user_id.clone());
        }
    }
    Ok(())
}

fn load_profile(conn: &mut PgConnection, user: &str) -> QueryResult<Option<(i32, Profile)>> {
    Ok(user_profiles::table.find(user).select(PROFILE_COLUMNS).first::<StoredProfile>(conn).optional()?.map(
        |(birth_year, sex, weight_kg, height_cm, hr_max)| {
            let sex = if sex == "male" { health_model::Sex::Male } else { health_model::Sex::Female };
            (birth_year, Profile { sex, age: 0.0, weight_kg, height_cm, measured_hr_max: hr_max.map(f64::from) })
        },
    ))
}

/// Recomputes what a batch affected, user by user.
pub fn recompute(conn: &mut PgConnection, affected: &Affected) -> QueryResult<()> {
    let users: BTreeSet<&String> = affected.days.keys().chain(affected.all_days.iter()).collect();
    for user in users {
        let days: BTreeSet<NaiveDate> = if affected.all_days.contains(user) {
            day_chunks::table
                .filter(day_chunks::user_id.eq(user))
                .select(day_chunks::local_date)
                .distinct()
                .load::<NaiveDate>(conn)?
                .into_iter()
                .flat_map(model::affected_days)
                .collect()
        } else {
            affected.days.get(user).cloned().unwrap_or_default()
        };
        let profile = load_profile(conn, user)?;
        for &date in &days {
            recompute_day(conn, user, date, profile.as_ref())?;
        }
        if let Some(&earliest) = days.first() {
            carry_forward(conn, user, earliest)?;
        }
    }
    Ok(())
}

fn recompute_day(
    conn: &mut PgConnection,
    user: &str,
    date: NaiveDate,
    profile: Option<&(i32, Profile)>,
) -> QueryResult<()> {
    let previous = date.pred_opt().unwrap_or(date);
    let rows: Vec<(NaiveDate, String, i32, serde_json::Value)> = day_chunks::table
        .filter(day_chunks::user_id.eq(user))
        .filter(day_chunks::local_date.eq_any([previous, date]))
        .select((day_chunks::local_date, day_chunks::device_id, day_chunks::utc_offset_minutes, day_chunks::chunk))
        .load(conn)?;
    // The day's offset: that of its own chunks, else of the evening before.
    let offset = rows.iter().find(|r| r.0 == date).or(rows.first()).map_or(0, |r| r.2);
    let chunks: Vec<(NaiveDate, String, Chunk)> =
        rows.into_iter().filter_map(|(d, device, _, c)| Some((d, device, serde_json::from_value(c).ok()?))).collect();
    let (data, received, duplicates) = model::assemble(date, offset, &chunks);
    let with_age = profile.map(|(birth_year, p)| Profile { age: f64::from(date.year() - birth_year), ..p.clone() });
    let summary = day::summarize(&data, with_age.as_ref());
    let has_own_data = chunks.iter().any(|c| c.0 == date);
    if !has_own_data && summary.sleep.is_none() {
        // Only the evening before exists and no night ends today: nothing to report.
        diesel::delete(daily_metrics::table.find((user, date))).execute(conn)?;
        return Ok(());
    }
    let values = (
        daily_metrics::user_id.eq(user),
        daily_metrics::local_date.eq(date),
        daily_metrics::steps.eq(summary.steps),
        daily_metrics::resting_hr.eq(summary.resting_hr),
        daily_metrics::hr_max.eq(summary.hr_max),
        daily_metrics::ln_rmssd.eq(summary
            .hrv
            .as_ref()
            .filter(|h| h.filtered.window_valid)
            .map(|h| h.filtered.ln_rmssd)),
        daily_metrics::training_load.eq(summary.load()),
        daily_metrics::low_coverage.eq(summary.quality.low_coverage),
        daily_metrics::samples_received.eq(received as i32),
        daily_metrics::duplicates_dropped.eq(duplicates as i32),
        daily_metrics::summary.eq(serde_json::to_value(&summary).unwrap_or_default()),
        daily_metrics::updated_at.eq(diesel::dsl::now),
    );
    diesel::insert_into(daily_metrics::table)
        .values(values.clone())
        .on_conflict((daily_metrics::user_id, daily_metrics::local_date))
        .do_update()
        .set(values)
        .execute(conn)?;
    Ok(())
}

type DailyRow = (NaiveDate, f64, Option<f64>, Option<f64>, Option<f64>);

/// Recomputes the rolling series over the user's dense days and rewrites it from `from` on.
fn carry_forward(conn: &mut PgConnection, user: &str, from: NaiveDate) -> QueryResult<()> {
    let rows: Vec<DailyRow> = daily_metrics::table
        .filter(daily_metrics::user_id.eq(user))
        .order(daily_metrics::local_date.asc())
        .select((
            daily_metrics::local_date,
            daily_metrics::training_load,
            daily_metrics::resting_hr,
            daily_metrics::ln_rmssd,
            daily_metrics::hr_max,
        ))
        .load(conn)?;
    let by_date: BTreeMap<NaiveDate, DailyRow> = rows.into_iter().map(|r| (r.0, r)).collect();
    let days = model::dense_days(&by_date.keys().copied().collect());
    let loads: Vec<f64> = days.iter().map(|d| by_date.get(d).map_or(0.0, |r| r.1)).collect();
    let rhr: Vec<Option<f64>> = days.iter().map(|d| by_date.get(d).and_then(|r| r.2)).collect();
    let ln_rmssd: Vec<Option<f64>> = days.iter().map(|d| by_date.get(d).and_then(|r| r.3)).collect();
    let load = rolling::load_series(&loads);
    let anomalies = rolling::rhr_anomalies(&rhr);
    let hrv = rolling::hrv_baseline(&ln_rmssd);
    diesel::delete(
        rolling_metrics::table.filter(rolling_metrics::user_id.eq(user)).filter(rolling_metrics::local_date.ge(from)),
    )
    .execute(conn)?;
    let mut rows = Vec::new();
    for (i, date) in days.iter().enumerate().filter(|(_, d)| **d >= from) {
        let daily = by_date.get(date);
        let vo2max = daily.and_then(|r| Some(health_model::energy::uth_vo2max(r.4?, r.2?)));
        let metrics = json!({
            "load": load[i],
            "acwr_band": load[i].acwr_rolling.map(rolling::acwr_band),
            "resting_hr": anomalies[i],
            "hrv": hrv[i],
            "vo2max": vo2max,
            "hr_max": daily.and_then(|r| r.4),
        });
        rows.push((
            rolling_metrics::user_id.eq(user.to_owned()),
            rolling_metrics::local_date.eq(*date),
            rolling_metrics::has_data.eq(daily.is_some()),
            rolling_metrics::training_load.eq(load[i].load),
            rolling_metrics::ctl.eq(load[i].ctl),
            rolling_metrics::atl.eq(load[i].atl),
            rolling_metrics::tsb.eq(load[i].tsb),
            rolling_metrics::acwr_rolling.eq(load[i].acwr_rolling),
            rolling_metrics::acwr_ewma.eq(load[i].acwr_ewma),
            rolling_metrics::rhr_z.eq(anomalies[i].z),
            rolling_metrics::rhr_flag.eq(anomalies[i].z_flag),
            rolling_metrics::night_signal.eq(anomalies[i].night_signal),
            rolling_metrics::metrics.eq(metrics),
        ));
    }
    // 13 parameters a row: well under the 65,535-parameter limit per statement.
    for chunk in rows.chunks(2_000) {
        diesel::insert_into(rolling_metrics::table).values(chunk).execute(conn)?;
    }
    Ok(())
}
