//! The in-memory health model of the users of the partitions this instance owns, so that a
//! batch applies only what it adds instead of re-reading each user-day from the database.
//!
//! Coherence rules:
//! - the cache holds committed state only: a batch takes its users out, and puts them back
//!   after its transaction commits; a failed batch drops what it took;
//! - each partition's entries are valid for one state of its watermark row (the watermark and
//!   the model epoch). A batch checks it under the row's lock; if another replica wrote the
//!   partition since, or a recompute rewrote one of its users, the partition's entries are
//!   dropped and reloaded;
//! - a revoked partition's entries are dropped.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use lru::LruCache;
use prometheus::{IntCounter, IntGauge};

use crate::day_state::{DayState, SyncSource};
use crate::series::Series;
use crate::sql::WatermarkRow;

/// The latest profile a sync carried, with the sync that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProfile {
    pub birth_year: i32,
    pub male: bool,
    pub weight_kg: f64,
    pub height_cm: f64,
    pub hr_max: Option<i32>,
    /// The sync that carried it; a later one (by the conflict rule of samples) replaces it.
    pub as_of: SyncSource,
}

/// One user's model state.
#[derive(Debug, Clone, Default)]
pub struct UserModel {
    pub profile: Option<StoredProfile>,
    /// Canonical sample sets of the days loaded (a day without samples is an empty state).
    pub days: BTreeMap<NaiveDate, DayState>,
    pub series: Series,
}

impl UserModel {
    pub fn bytes(&self) -> usize {
        size_of::<Self>() + self.days.values().map(|d| d.bytes() + 32).sum::<usize>() + self.series.bytes()
    }

    /// Keeps the sample sets of the latest two days (today's and the evening before it) and the
    /// series history a resume needs; older days are reloaded if late data ever reaches them.
    pub fn trim(&mut self) {
        if let Some(last) = self.days.iter().rev().find(|(_, d)| !d.is_empty()).map(|(k, _)| *k) {
            if let Some(keep) = last.pred_opt() {
                self.days = self.days.split_off(&keep);
            }
            for (_, day) in self.days.range_mut(..last) {
                day.shrink();
            }
        }
        self.series.trim();
    }
}

struct Cached {
    partition: i32,
    bytes: usize,
    model: UserModel,
}

/// Cache metrics: size, and users found or not.
#[derive(Clone)]
pub struct CacheMetrics {
    pub bytes: IntGauge,
    pub users: IntGauge,
    pub hits: IntCounter,
    pub misses: IntCounter,
    pub evictions: IntCounter,
    /// Partitions whose entries were dropped because another writer moved the watermark.
    pub invalidations: IntCounter,
}

impl CacheMetrics {
    /// Metrics registered nowhere, for a cache nobody scrapes (tests, the bench baseline).
    pub fn unregistered() -> Self {
        let gauge = |name: &str| IntGauge::new(name, name).expect("valid metric");
        let counter = |name: &str| IntCounter::new(name, name).expect("valid metric");
        Self {
            bytes: gauge("cache_bytes"),
            users: gauge("cache_users"),
            hits: counter("cache_hits"),
            misses: counter("cache_misses"),
            evictions: counter("cache_evictions"),
            invalidations: counter("cache_invalidations"),
        }
    }
}

pub struct ModelCache {
    budget_bytes: usize,
    bytes: usize,
    users: LruCache<String, Cached>,
    /// Per partition, the watermark row the cached users of that partition reflect.
    built_through: HashMap<i32, WatermarkRow>,
    metrics: CacheMetrics,
}

impl ModelCache {
    pub fn new(budget_bytes: usize, metrics: CacheMetrics) -> Self {
        Self { budget_bytes, bytes: 0, users: LruCache::unbounded(), built_through: HashMap::new(), metrics }
    }

    /// Takes the cached models of `users` of `partition` out, after checking that the cache
    /// reflects `watermark` (the database's row, read under its lock). Users not cached are
    /// absent from the answer.
    pub fn take(&mut self, partition: i32, watermark: WatermarkRow, users: &[&str]) -> HashMap<String, UserModel> {
        if self.built_through.get(&partition).is_some_and(|&w| w != watermark) {
            self.drop_partition(partition);
            self.metrics.invalidations.inc();
        }
        let mut out = HashMap::with_capacity(users.len());
        for &user in users {
            match self.users.pop(user) {
                Some(c) if c.partition == partition => {
                    self.bytes -= c.bytes;
                    self.metrics.hits.inc();
                    out.insert(user.to_owned(), c.model);
                }
                Some(c) => {
                    // Cached under another partition (topic re-created with a new layout): stale.
                    self.bytes -= c.bytes;
                    self.metrics.misses.inc();
                }
                None => self.metrics.misses.inc(),
            }
        }
        self.publish();
        out
    }

    /// Puts models back after their batch committed, leaving the row at `watermark`.
    pub fn put_back(&mut self, partition: i32, watermark: WatermarkRow, models: HashMap<String, UserModel>) {
        self.built_through.insert(partition, watermark);
        for (user, mut model) in models {
            model.trim();
            let bytes = model.bytes();
            if bytes > self.budget_bytes {
                continue;
            }
            self.bytes += bytes;
            if let Some(old) = self.users.put(user, Cached { partition, bytes, model }) {
                self.bytes -= old.bytes;
            }
        }
        while self.bytes > self.budget_bytes {
            let Some((_, evicted)) = self.users.pop_lru() else { break };
            self.bytes -= evicted.bytes;
            self.metrics.evictions.inc();
        }
        self.publish();
    }

    /// A recompute of `user` committed, moving the partition's row from `before` to `after`:
    /// the user is forgotten, and the partition's other entries stay valid if they reflected
    /// `before` (otherwise the next batch drops them).
    pub fn rewritten(&mut self, partition: i32, before: WatermarkRow, after: WatermarkRow, user: &str) {
        self.evict(&[user]);
        if self.built_through.get(&partition) == Some(&before) {
            self.built_through.insert(partition, after);
        }
    }

    /// Forgets users whatever their partition (their data was erased).
    pub fn evict(&mut self, users: &[&str]) {
        for &user in users {
            if let Some(c) = self.users.pop(user) {
                self.bytes -= c.bytes;
            }
        }
        self.publish();
    }

    /// Forgets a partition: it was revoked, or someone else wrote it.
    pub fn drop_partition(&mut self, partition: i32) {
        self.built_through.remove(&partition);
        let keys: Vec<String> =
            self.users.iter().filter(|(_, c)| c.partition == partition).map(|(k, _)| k.clone()).collect();
        for k in keys {
            if let Some(c) = self.users.pop(&k) {
                self.bytes -= c.bytes;
            }
        }
        self.publish();
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn publish(&self) {
        self.metrics.bytes.set(self.bytes as i64);
        self.metrics.users.set(self.users.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> CacheMetrics {
        CacheMetrics::unregistered()
    }

    fn at(offset: i64) -> WatermarkRow {
        WatermarkRow { committed_offset: offset, model_epoch: 0 }
    }

    #[test]
    fn a_moved_watermark_drops_the_partition() {
        let m = metrics();
        let mut cache = ModelCache::new(1 << 20, m.clone());
        cache.put_back(3, at(10), HashMap::from([("u".to_owned(), UserModel::default())]));
        assert_eq!(cache.take(3, at(10), &["u"]).len(), 1);
        cache.put_back(3, at(20), HashMap::from([("u".to_owned(), UserModel::default())]));
        // Another replica committed 21..=25 meanwhile.
        assert!(cache.take(3, at(25), &["u"]).is_empty());
        assert_eq!((m.hits.get(), m.misses.get(), m.invalidations.get()), (1, 1, 1));
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_recompute_forgets_its_user_and_keeps_the_partition() {
        let m = metrics();
        let mut cache = ModelCache::new(1 << 20, m.clone());
        let models = HashMap::from([("a".to_owned(), UserModel::default()), ("b".to_owned(), UserModel::default())]);
        cache.put_back(3, at(10), models);
        let after = WatermarkRow { committed_offset: 10, model_epoch: 1 };
        cache.rewritten(3, at(10), after, "a");
        assert!(cache.take(3, after, &["a"]).is_empty());
        assert_eq!(cache.take(3, after, &["b"]).len(), 1);
        assert_eq!(m.invalidations.get(), 0);
        // A recompute by another process raises the epoch under the cache's feet: all dropped.
        cache.put_back(3, after, HashMap::from([("b".to_owned(), UserModel::default())]));
        assert!(cache.take(3, WatermarkRow { model_epoch: 2, ..after }, &["b"]).is_empty());
        assert_eq!(m.invalidations.get(), 1);
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used() {
        let m = metrics();
        let one = UserModel::default().bytes();
        let mut cache = ModelCache::new(2 * one, m.clone());
        for u in ["a", "b", "c"] {
            cache.put_back(0, at(1), HashMap::from([(u.to_owned(), UserModel::default())]));
        }
        assert_eq!(m.evictions.get(), 1);
        assert!(cache.take(0, at(1), &["a"]).is_empty());
        assert_eq!(cache.take(0, at(1), &["b", "c"]).len(), 2);
    }

    #[test]
    fn an_erased_user_is_evicted_and_others_stay() {
        let mut cache = ModelCache::new(1 << 20, metrics());
        cache.put_back(
            1,
            at(5),
            HashMap::from([("a".to_owned(), UserModel::default()), ("b".to_owned(), UserModel::default())]),
        );
        cache.evict(&["a", "not-cached"]);
        assert!(cache.take(1, at(5), &["a"]).is_empty());
        assert_eq!(cache.take(1, at(5), &["b"]).len(), 1);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn a_revoked_partition_is_forgotten_and_others_stay() {
        let mut cache = ModelCache::new(1 << 20, metrics());
        cache.put_back(1, at(5), HashMap::from([("a".to_owned(), UserModel::default())]));
        cache.put_back(2, at(5), HashMap::from([("b".to_owned(), UserModel::default())]));
        cache.drop_partition(1);
        assert!(cache.take(1, at(5), &["a"]).is_empty());
        assert_eq!(cache.take(2, at(5), &["b"]).len(), 1);
    }
}
