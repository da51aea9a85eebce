//! The processor's one write: one partition's batch of events, applied in one transaction.
//!
//! 1. lock the partition's watermark row; events at or below it were applied already;
//!    erasures delete their users' rows and record receipts; syncs of an erased user that precede
//!    the erasure (in the log, or by ingest time) are skipped (see [`crate::erasure`]);
//! 2. take the batch's users from the cache (committed state only), loading misses with one
//!    statement per table;
//! 3. insert sync statuses and raw chunks; only chunks that are really new change the state;
//! 4. recompute each changed user-day once, and resume each user's rolling series at its
//!    earliest changed day;
//! 5. write daily and rolling rows and raise the watermark, one statement each;
//! 6. after the commit, put the users back into the cache.
//!
//! About ten statements per batch, whatever its size.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use chrono::{Datelike, Days, NaiveDate};
use diesel::prelude::*;
use events::device_synced::Sex;
use events::DeviceSynced;
use health_model::day::{self, DayData};
use health_model::Profile;
use model_schema::ModelUpdate;

use crate::cache::{ModelCache, StoredProfile, UserModel};
use crate::chunk::{self, local_midnight_ms, Chunk};
use crate::day_state::{self, DayState, SyncSource};
use crate::erasure::{self, Erasure};
use crate::series::{DailyValues, Series, HISTORY_DAYS};
use crate::sql::{self, DailyRow, ProfileRow, StoredChunk};
use crate::sync_outcome::{Position, SyncOutcome};

/// One consumed sync to apply: its sync status, and the event when there is one to model.
#[derive(Debug, Clone)]
pub struct ConsumedSync {
    pub outcome: SyncOutcome,
    pub event: Option<DeviceSynced>,
}

/// One consumed record of the topic, in offset order within its partition.
#[derive(Debug, Clone)]
pub enum Record {
    Sync(Box<ConsumedSync>),
    Erasure(Erasure),
    /// Dead-lettered with nothing to record (an erasure that could not be applied): only its
    /// offset counts, for the watermark.
    Skipped(Position),
}

impl Record {
    pub fn offset(&self) -> i64 {
        match self {
            Record::Sync(i) => i.outcome.kafka_offset,
            Record::Erasure(e) => e.at.offset,
            Record::Skipped(at) => at.offset,
        }
    }

    pub fn partition(&self) -> i32 {
        match self {
            Record::Sync(i) => i.outcome.kafka_partition,
            Record::Erasure(e) => e.at.partition,
            Record::Skipped(at) => at.partition,
        }
    }
}

impl From<ConsumedSync> for Record {
    fn from(item: ConsumedSync) -> Self {
        Record::Sync(Box::new(item))
    }
}

/// Why a batch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("no database connection: {0}")]
    Pool(String),
    /// Stored data this processor cannot read: not the fault of the events being applied, so
    /// retried (and visible on /readyz) rather than dead-lettered.
    #[error("{0}")]
    Corrupt(String),
    /// The data itself cannot be applied; retrying will not help.
    #[error("{0}")]
    Unusable(String),
}

impl ApplyError {
    /// Whether the failure may be the data's rather than the environment's: only such failures
    /// are worth isolating an event for. Connection loss, serialization conflicts and the like
    /// are retried as they are.
    pub fn may_be_poison(&self) -> bool {
        use diesel::result::DatabaseErrorKind as K;
        use diesel::result::Error as E;
        match self {
            ApplyError::Unusable(_) => true,
            ApplyError::Database(E::DatabaseError(kind, _)) => matches!(
                kind,
                K::UniqueViolation
                    | K::ForeignKeyViolation
                    | K::NotNullViolation
                    | K::CheckViolation
                    | K::RestrictViolation
                    | K::ExclusionViolation
                    | K::Unknown
            ),
            ApplyError::Database(E::DeserializationError(_) | E::SerializationError(_)) => true,
            ApplyError::Database(_) | ApplyError::Pool(_) | ApplyError::Corrupt(_) => false,
        }
    }
}

/// What the writer needs besides the connection.
pub struct ModelWriter<'a> {
    pub topic: &'a str,
    pub cache: &'a Mutex<ModelCache>,
    /// Longest dense series a user may have; an event that would stretch it further is unusable.
    pub max_series_days: u64,
    /// Whether the partition watermark guards the batch (the processor); false applies every item
    /// as new (the in-request baseline of `make bench`, which has no log position).
    pub watermarked: bool,
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// Ingest times of the events above the watermark (new to the database) that took effect,
    /// for freshness (an erasure's request time counts as its ingest time).
    pub fresh_ingested_at: Vec<chrono::DateTime<chrono::Utc>>,
    /// The partition's watermark after the commit.
    pub watermark: i64,
    /// Syncs above the watermark that were not applied because their user's data was erased
    /// after them.
    pub skipped_erased: usize,
    /// Erasures carried out.
    pub erasures: usize,
}

impl Applied {
    /// Adds up the outcomes of consecutive transactions of one partition.
    pub fn absorb(&mut self, other: Applied) {
        self.fresh_ingested_at.extend(other.fresh_ingested_at);
        self.watermark = self.watermark.max(other.watermark);
        self.skipped_erased += other.skipped_erased;
        self.erasures += other.erasures;
    }
}

/// A fresh event's chunk, encoded for storage and kept decoded for the state.
struct NewChunk {
    stored: StoredChunk,
    chunk: Chunk,
}

impl ModelWriter<'_> {
    /// Applies `records` (one partition's, in offset order) and raises the partition's
    /// watermark to `through`, atomically.
    pub fn apply(
        &self,
        conn: &mut PgConnection,
        partition: i32,
        through: i64,
        records: &[Record],
    ) -> Result<Applied, ApplyError> {
        let (applied, models, row) = conn.transaction(|conn| -> Result<_, ApplyError> {
            let row = if self.watermarked {
                sql::lock_watermark(conn, self.topic, partition)?
            } else {
                sql::WatermarkRow { committed_offset: i64::MIN, model_epoch: 0 }
            };
            let watermark = row.committed_offset;
            let fresh_records: Vec<&Record> = records.iter().filter(|r| r.offset() > watermark).collect();
            let erasures: Vec<&Erasure> = fresh_records
                .iter()
                .filter_map(|r| match r {
                    Record::Erasure(e) => Some(e),
                    _ => None,
                })
                .collect();
            let syncs: Vec<&ConsumedSync> = fresh_records
                .iter()
                .filter_map(|r| match r {
                    Record::Sync(i) => Some(&**i),
                    _ => None,
                })
                .collect();
            // Erasures first: a sync before an erasure of its user (this batch's or a stored
            // one's) is not applied, and one after it starts from nothing.
            let (fresh, skipped_erased) = if self.watermarked {
                erasure::without_erased(conn, self.topic, partition, &erasures, syncs)?
            } else {
                (syncs, 0)
            };
            let carried_out =
                if erasures.is_empty() { 0 } else { erasure::carry_out(conn, self.topic, self.cache, &erasures)? };
            let events: Vec<(&DeviceSynced, &SyncOutcome)> =
                fresh.iter().filter_map(|i| Some((i.event.as_ref()?, &i.outcome))).collect();
            let users: Vec<&str> =
                events.iter().map(|(e, _)| e.user_id.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
            let mut models = self.cache.lock().unwrap_or_else(|p| p.into_inner()).take(partition, row, &users);

            let new_chunks = new_chunks(&events);
            let spans = date_spans(&new_chunks);
            self.load_missing(conn, &mut models, &users, &spans, &new_chunks)?;
            for &user in &users {
                self.check_time_bound(user, &models[user], spans.get(user).copied())?;
            }

            sql::insert_sync_status(conn, &fresh.iter().map(|i| &i.outcome).collect::<Vec<_>>())?;
            let stored: Vec<&StoredChunk> = new_chunks.iter().map(|c| &c.stored).collect();
            let inserted: HashSet<sql::ChunkKey> = sql::insert_day_samples(conn, &stored)?.into_iter().collect();

            let mut changed: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
            for c in &new_chunks {
                let key = sql::ChunkKey {
                    user_id: c.stored.user_id.clone(),
                    local_date: c.stored.local_date,
                    sync_id: c.stored.sync_id,
                };
                if !inserted.contains(&key) {
                    continue;
                }
                let model = models.get_mut(&c.stored.user_id).expect("loaded above");
                let days = changed.entry(c.stored.user_id.clone()).or_default();
                days.extend(merge_chunk(model, c));
            }

            let profile_changed = self.apply_profiles(conn, &mut models, &events)?;
            for user in &profile_changed {
                // Every day depends on the profile: load all of the user's days and recompute them.
                let model = models.get_mut(user.as_str()).expect("loaded above");
                let all = sql::load_all_day_samples(conn, &[user.as_str()])?;
                let mut days: BTreeMap<NaiveDate, DayState> = BTreeMap::new();
                for stored in &all {
                    merge_stored(&mut days, stored)?;
                }
                let dates: Vec<NaiveDate> = days.keys().copied().collect();
                model.days = days;
                let touched = changed.entry(user.clone()).or_default();
                for d in dates {
                    touched.insert(d);
                    if let Some(next) = d.succ_opt() {
                        touched.insert(next);
                        model.days.entry(next).or_default();
                    }
                }
                if model.series.loaded_from.is_some() {
                    let rows = sql::load_series(conn, &[(user.as_str(), earliest_date())], HISTORY_DAYS as i32)?;
                    model.series = series_of(&rows, earliest_date());
                }
            }

            let mut daily_rows = Vec::new();
            let mut daily_deletes: Vec<(String, NaiveDate)> = Vec::new();
            let mut rolling_rows = Vec::new();
            let mut data = DayData::default();
            for (user, dates) in &changed {
                let model = models.get_mut(user.as_str()).expect("loaded above");
                let mut earliest: Option<NaiveDate> = None;
                for &date in dates {
                    match recompute_day(user, date, model, &mut data) {
                        DayOutcome::Row(row, values) => {
                            if model.series.set_day(date, Some(values)) {
                                earliest = earliest.or(Some(date));
                            }
                            daily_rows.push(*row);
                        }
                        DayOutcome::NoRow => {
                            if model.series.set_day(date, None) {
                                earliest = earliest.or(Some(date));
                                daily_deletes.push((user.clone(), date));
                            }
                        }
                    }
                }
                if let Some(from) = earliest {
                    let rows = model.series.recompute_from(user, from).ok_or_else(|| {
                        ApplyError::Unusable(format!("the series of user {user} cannot resume at {from}"))
                    })?;
                    rolling_rows.extend(rows);
                }
            }
            sql::upsert_daily(conn, &daily_rows)?;
            sql::delete_daily(conn, &daily_deletes.iter().map(|(u, d)| (u.as_str(), *d)).collect::<Vec<_>>())?;
            sql::upsert_rolling(conn, &rolling_rows)?;
            let new_watermark = watermark.max(through);
            if self.watermarked {
                // Readers waiting for this offset are told on commit (LISTEN processor_watermarks).
                sql::raise_watermark(conn, self.topic, partition, new_watermark, new_watermark > watermark)?;
                // Live streams are told which days changed, on commit (LISTEN processor_model_updates),
                // after the watermark's notification, so after the syncs that changed them.
                let mut last_offset: HashMap<&str, i64> = HashMap::new();
                for (event, outcome) in &events {
                    let slot = last_offset.entry(event.user_id.as_str()).or_insert(outcome.kafka_offset);
                    *slot = (*slot).max(outcome.kafka_offset);
                }
                let updates: Vec<ModelUpdate> = changed
                    .iter()
                    .filter_map(|(user, dates)| {
                        let position = last_offset.get(user.as_str()).map(|&offset| (partition, offset));
                        model_update(user, position, dates.iter().copied())
                    })
                    .collect();
                sql::notify_model_updates(conn, &updates)?;
            }
            let fresh_ingested_at =
                fresh.iter().map(|i| i.outcome.ingested_at).chain(erasures.iter().map(|e| e.requested_at)).collect();
            let applied =
                Applied { fresh_ingested_at, watermark: new_watermark, skipped_erased, erasures: carried_out };
            Ok((applied, models, sql::WatermarkRow { committed_offset: new_watermark, ..row }))
        })?;
        // Committed: only now does the cache see the new state.
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).put_back(partition, row, models);
        Ok(applied)
    }

    /// Loads what the batch needs and the cache lacks: users (profile and series) and user-days
    /// (each changed day, the day before it for its night, and the day after it).
    fn load_missing(
        &self,
        conn: &mut PgConnection,
        models: &mut HashMap<String, UserModel>,
        users: &[&str],
        spans: &HashMap<&str, (NaiveDate, NaiveDate)>,
        new_chunks: &[NewChunk],
    ) -> Result<(), ApplyError> {
        let missing: HashSet<&str> = users.iter().copied().filter(|u| !models.contains_key(*u)).collect();
        for &user in &missing {
            models.insert(user.to_owned(), UserModel::default());
        }
        if !missing.is_empty() {
            let missing: Vec<&str> = missing.iter().copied().collect();
            for row in sql::load_profiles(conn, &missing)? {
                let profile = stored_profile(&row);
                models.get_mut(row.user_id.as_str()).expect("inserted above").profile = Some(profile);
            }
        }
        // Series: of new users, and of cached ones whose window does not reach back far enough.
        let mut series_from: Vec<(&str, NaiveDate)> = Vec::new();
        for &user in users {
            // A user with no new samples (a profile-only event) still needs its recent series.
            let from = spans.get(user).map_or(latest_date(), |s| s.0);
            if missing.contains(user) || !models[user].series.covers(from) {
                let window = from.checked_sub_days(Days::new(HISTORY_DAYS)).unwrap_or(earliest_date());
                series_from.push((user, window.max(earliest_date())));
            }
        }
        if !series_from.is_empty() {
            let rows = sql::load_series(conn, &series_from, HISTORY_DAYS as i32)?;
            let mut by_user: HashMap<String, Vec<sql::SeriesRow>> = HashMap::new();
            for row in rows {
                by_user.entry(row.user_id.clone()).or_default().push(row);
            }
            for (user, from) in &series_from {
                let mine = by_user.remove(*user).unwrap_or_default();
                models.get_mut(*user).expect("inserted above").series = series_of(&mine, *from);
            }
        }
        // User-days.
        let mut wanted: BTreeSet<(&str, NaiveDate)> = BTreeSet::new();
        for c in new_chunks {
            let d = c.stored.local_date;
            for date in [d.pred_opt(), Some(d), d.succ_opt()].into_iter().flatten() {
                if !models[c.stored.user_id.as_str()].days.contains_key(&date) {
                    wanted.insert((c.stored.user_id.as_str(), date));
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let keys: Vec<(&str, NaiveDate)> = wanted.iter().copied().collect();
        let stored = sql::load_day_samples(conn, &keys)?;
        let mut loaded: HashMap<&str, BTreeMap<NaiveDate, DayState>> = HashMap::new();
        for &(user, date) in &keys {
            loaded.entry(user).or_default().insert(date, DayState::default());
        }
        for s in &stored {
            merge_stored(loaded.get_mut(s.user_id.as_str()).expect("requested"), s)?;
        }
        for (user, days) in loaded {
            models.get_mut(user).expect("loaded above").days.extend(days);
        }
        Ok(())
    }

    /// A user's dense series may not stretch past the configured span: it is held and
    /// recomputed day by day, so its length bounds memory and time. Checked per user over the
    /// batch (`span`: the dates of its new chunks); splitting the batch then finds the event that
    /// stretches it.
    fn check_time_bound(
        &self,
        user: &str,
        model: &UserModel,
        span: Option<(NaiveDate, NaiveDate)>,
    ) -> Result<(), ApplyError> {
        let known = [model.series.first_day, model.series.daily.keys().next_back().copied()];
        let dates = span.into_iter().flat_map(|(lo, hi)| [lo, hi]).chain(known.into_iter().flatten());
        let (Some(lo), Some(hi)) = (dates.clone().min(), dates.max()) else { return Ok(()) };
        let span = (hi - lo).num_days().unsigned_abs() + 1;
        if span > self.max_series_days {
            return Err(ApplyError::Unusable(format!(
                "the series of user {user} would span {span} days ({lo} to {hi}); the limit is {} \
                 (PROCESSOR_MAX_SERIES_DAYS)",
                self.max_series_days
            )));
        }
        Ok(())
    }

    /// Keeps each user's latest profile by the conflict rule; returns users whose profile values
    /// changed (every day of theirs depends on it).
    fn apply_profiles(
        &self,
        conn: &mut PgConnection,
        models: &mut HashMap<String, UserModel>,
        events: &[(&DeviceSynced, &SyncOutcome)],
    ) -> Result<Vec<String>, ApplyError> {
        let mut latest: BTreeMap<&str, StoredProfile> = BTreeMap::new();
        for (event, outcome) in events {
            let Some(p) = &event.profile else { continue };
            let candidate = StoredProfile {
                birth_year: p.birth_year,
                male: p.sex == Sex::Male,
                weight_kg: p.weight_kg,
                height_cm: p.height_cm,
                hr_max: p.hr_max,
                as_of: SyncSource { phone_time_ms: event.clock.phone_time_ms, sync_id: outcome.sync_id },
            };
            let slot = latest.entry(event.user_id.as_str()).or_insert_with(|| candidate.clone());
            if candidate.as_of > slot.as_of {
                *slot = candidate;
            }
        }
        let mut rows = Vec::new();
        let mut changed = Vec::new();
        for (user, candidate) in latest {
            let model = models.get_mut(user).expect("loaded above");
            if model.profile.as_ref().is_some_and(|p| p.as_of >= candidate.as_of) {
                continue;
            }
            let same_values = model
                .profile
                .as_ref()
                .is_some_and(|p| StoredProfile { as_of: candidate.as_of, ..p.clone() } == candidate);
            rows.push(ProfileRow {
                user_id: user.to_owned(),
                birth_year: candidate.birth_year,
                sex: if candidate.male { "male" } else { "female" }.to_owned(),
                weight_kg: candidate.weight_kg,
                height_cm: candidate.height_cm,
                hr_max: candidate.hr_max,
                as_of_ms: candidate.as_of.phone_time_ms,
                as_of_sync_id: candidate.as_of.sync_id,
            });
            model.profile = Some(candidate);
            if !same_values {
                changed.push(user.to_owned());
            }
        }
        sql::upsert_profiles(conn, &rows)?;
        Ok(changed)
    }
}

/// What live streams are told about a user's recomputed `dates` (ascending); None for none.
pub fn model_update(
    user: &str,
    position: Option<(i32, i64)>,
    dates: impl ExactSizeIterator<Item = NaiveDate> + Clone,
) -> Option<ModelUpdate> {
    let from = dates.clone().next()?;
    let to = dates.clone().last()?;
    let listed = dates.len() <= ModelUpdate::MAX_DAYS_LISTED;
    Some(ModelUpdate {
        user_id: user.to_owned(),
        partition: position.map(|p| p.0),
        offset: position.map(|p| p.1),
        from,
        to,
        days: if listed { dates.collect() } else { Vec::new() },
        model_version: health_model::MODEL_VERSION,
    })
}

/// Splits every fresh event into its per-day chunks, encoded for storage. A sync sent twice
/// within the batch (the same sync id) gives its chunks once, the first copy's, as a copy in a
/// later batch finds them stored and adds nothing.
fn new_chunks(events: &[(&DeviceSynced, &SyncOutcome)]) -> Vec<NewChunk> {
    let mut out = Vec::new();
    let mut seen: HashSet<(&str, uuid::Uuid)> = HashSet::new();
    for (event, outcome) in events {
        if !seen.insert((event.user_id.as_str(), outcome.sync_id)) {
            continue;
        }
        for (date, day) in chunk::chunks_of(event) {
            out.push(NewChunk {
                stored: StoredChunk {
                    user_id: event.user_id.clone(),
                    local_date: date,
                    sync_id: outcome.sync_id,
                    device_id: event.device_id.clone(),
                    utc_offset_minutes: day.offset_minutes,
                    phone_time_ms: event.clock.phone_time_ms,
                    samples: model_schema::chunk_codec::encode(&day.chunk),
                },
                chunk: day.chunk,
            });
        }
    }
    out
}

/// The earliest and latest date of each user's new chunks.
fn date_spans(new_chunks: &[NewChunk]) -> HashMap<&str, (NaiveDate, NaiveDate)> {
    let mut spans: HashMap<&str, (NaiveDate, NaiveDate)> = HashMap::new();
    for c in new_chunks {
        let d = c.stored.local_date;
        let span = spans.entry(c.stored.user_id.as_str()).or_insert((d, d));
        *span = (span.0.min(d), span.1.max(d));
    }
    spans
}

pub(crate) fn merge_stored(days: &mut BTreeMap<NaiveDate, DayState>, stored: &StoredChunk) -> Result<(), ApplyError> {
    let chunk = model_schema::chunk_codec::decode(&stored.samples).map_err(|e| {
        ApplyError::Corrupt(format!(
            "stored samples of {} on {} (sync {}): {e}",
            stored.user_id, stored.local_date, stored.sync_id
        ))
    })?;
    let source = SyncSource { phone_time_ms: stored.phone_time_ms, sync_id: stored.sync_id };
    days.entry(stored.local_date).or_default().merge(&stored.device_id, source, stored.utc_offset_minutes, &chunk);
    Ok(())
}

/// Merges a new chunk into its day and returns the days whose outputs it can change: its own,
/// and the next one when it reaches that day's night (sleep or wear, or samples at or after the
/// start of an evening's sleep).
fn merge_chunk(model: &mut UserModel, c: &NewChunk) -> Vec<NaiveDate> {
    let date = c.stored.local_date;
    let source = SyncSource { phone_time_ms: c.stored.phone_time_ms, sync_id: c.stored.sync_id };
    let state = model.days.entry(date).or_default();
    let effect = state.merge(&c.stored.device_id, source, c.stored.utc_offset_minutes, &c.chunk);
    // The day's own night, when the chunk reaches into it.
    let night_touched = |night: Option<&day::NightSummary>| match night {
        None => false,
        Some(n) => {
            effect.sleep_or_wear || n.span().zip(effect.span).is_some_and(|((a, b), (lo, hi))| hi >= a && lo <= b)
        }
    };
    if night_touched(state.night.as_ref()) {
        state.night = None;
    }
    let mut days = vec![date];
    let Some(next) = date.succ_opt() else { return days };
    let offset = state.offset_minutes().unwrap_or(c.stored.utc_offset_minutes);
    let evening = local_midnight_ms(next, offset) - day::NIGHT_LOOKBACK_MS;
    let reaches_next = effect.sleep_or_wear
        || effect.span.is_some_and(|(_, hi)| state.first_sleep_from(evening).is_some_and(|sleep| hi >= sleep));
    if reaches_next {
        model.days.entry(next).or_default().night = None;
        days.push(next);
    }
    days
}

pub(crate) enum DayOutcome {
    Row(Box<DailyRow>, DailyValues),
    NoRow,
}

/// Recomputes one user-day from the canonical states of the day and the evening before.
pub(crate) fn recompute_day(user: &str, date: NaiveDate, model: &mut UserModel, data: &mut DayData) -> DayOutcome {
    let mut state = model.days.remove(&date).unwrap_or_default();
    let previous = date.pred_opt().and_then(|p| model.days.get(&p));
    let night_cached = state.night.is_some();
    day_state::assemble(date, previous, &state, data, !night_cached);
    let night = state.night.get_or_insert_with(|| day::night_summary(data));
    let profile = model.profile.as_ref().map(|p| Profile {
        sex: if p.male { health_model::Sex::Male } else { health_model::Sex::Female },
        age: f64::from(date.year() - p.birth_year),
        weight_kg: p.weight_kg,
        height_cm: p.height_cm,
        measured_hr_max: p.hr_max.map(f64::from),
    });
    let mut summary = day::summarize_with_night(data, night, profile.as_ref());
    if night_cached {
        // Assembled without RR runs (only the night reads them); count them from the state.
        summary.quality.rr_intervals = day_state::rr_intervals_between(previous, &state, data.start_ms, data.end_ms);
    }
    let outcome = if day_state::reportable(&state, summary.sleep.is_some()) {
        let (received, duplicates) = state.counts();
        let ln_rmssd = summary.hrv.as_ref().filter(|h| h.filtered.window_valid).map(|h| h.filtered.ln_rmssd);
        let values =
            DailyValues { load: summary.load(), resting_hr: summary.resting_hr, ln_rmssd, hr_max: summary.hr_max };
        DayOutcome::Row(
            Box::new(DailyRow {
                user_id: user.to_owned(),
                local_date: date,
                steps: summary.steps,
                resting_hr: summary.resting_hr,
                hr_max: summary.hr_max,
                ln_rmssd,
                training_load: summary.load(),
                low_coverage: summary.quality.low_coverage,
                samples_received: i32::try_from(received).unwrap_or(i32::MAX),
                duplicates_dropped: i32::try_from(duplicates).unwrap_or(i32::MAX),
                summary: serde_json::to_value(&summary).unwrap_or_default(),
            }),
            values,
        )
    } else {
        DayOutcome::NoRow
    };
    model.days.insert(date, state);
    outcome
}

/// The first date PostgreSQL's `date` and chrono both hold, as "from the beginning".
pub(crate) fn earliest_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).expect("a valid date")
}

/// A date later than any a series reaches, as "only the latest stretch".
fn latest_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date")
}

pub(crate) fn stored_profile(row: &ProfileRow) -> StoredProfile {
    StoredProfile {
        birth_year: row.birth_year,
        male: row.sex == "male",
        weight_kg: row.weight_kg,
        height_cm: row.height_cm,
        hr_max: row.hr_max,
        as_of: SyncSource { phone_time_ms: row.as_of_ms, sync_id: row.as_of_sync_id },
    }
}

/// A user's series from its stored rows, which cover every day from `from` (widened by the query).
fn series_of(rows: &[sql::SeriesRow], from: NaiveDate) -> Series {
    let mut series = Series::default();
    for r in rows {
        if let Some(first) = r.local_date.checked_sub_days(Days::new(u64::try_from(r.day_index).unwrap_or(0))) {
            series.first_day = Some(series.first_day.map_or(first, |f| f.min(first)));
        }
        series.rolling.insert(
            r.local_date,
            health_model::rolling::LoadDay {
                load: r.training_load,
                fitness: r.fitness,
                fatigue: r.fatigue,
                form: r.form,
                acwr_rolling: r.acwr_rolling,
                acwr_ewma: r.acwr_ewma,
                ewma7: r.ewma7,
                ewma28: r.ewma28,
            },
        );
        if r.has_daily {
            series.daily.insert(
                r.local_date,
                DailyValues { load: r.training_load, resting_hr: r.resting_hr, ln_rmssd: r.ln_rmssd, hr_max: r.hr_max },
            );
        }
    }
    // The query loads every row from `from`, or from HISTORY_DAYS before the last row if that
    // is earlier; with no rows at all, the user has no series yet and nothing is missing.
    series.loaded_from = series
        .rolling
        .keys()
        .next_back()
        .map(|&last| from.min(last.checked_sub_days(Days::new(HISTORY_DAYS)).unwrap_or(NaiveDate::MIN)));
    series
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error};

    use super::ApplyError;

    fn database(kind: DatabaseErrorKind) -> ApplyError {
        ApplyError::Database(Error::DatabaseError(kind, Box::new(String::from("from the server"))))
    }

    #[test]
    fn only_failures_that_may_be_the_datas_isolate_an_event() {
        assert!(ApplyError::Unusable("a date past the bound".into()).may_be_poison());
        assert!(database(DatabaseErrorKind::CheckViolation).may_be_poison());
        assert!(database(DatabaseErrorKind::Unknown).may_be_poison());
        // The environment's failures, and stored data the processor cannot read, are retried.
        assert!(!database(DatabaseErrorKind::ClosedConnection).may_be_poison());
        assert!(!database(DatabaseErrorKind::SerializationFailure).may_be_poison());
        assert!(!ApplyError::Pool("timed out".into()).may_be_poison());
        assert!(!ApplyError::Corrupt("stored samples of u on 2026-03-02".into()).may_be_poison());
        assert!(!ApplyError::Database(Error::BrokenTransactionManager).may_be_poison());
    }
}
