//! Rate limits: token buckets (GCRA, `governor`'s keyed limiters) per device and per user on
//! `POST /v1/devices/{device_id}/syncs`, and per user on the read routes. Routes check them
//! after authentication and before any other work, so a stolen token in a loop costs the
//! service a signature check and a map lookup per request, and cannot take the ingest capacity
//! of everyone else.
//!
//! Memory: a key (one device, one user) is kept only while its bucket is not full again, that
//! is for `burst / per_second` seconds after its last request; a sweep every
//! `sweep_interval` forgets the others (`retain_recent`) and returns the memory
//! (`shrink_to_fit`). If a sweep still leaves more than `max_keys` keys, that limiter's state
//! is dropped whole: every bucket starts full again, which fails open for one burst rather than
//! growing without bound.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use anyhow::Context;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use prometheus::{IntCounter, IntGauge};

use crate::config::{RateLimit, RateLimits};
use crate::metrics::Metrics;
use crate::problem::ApiError;

type Keyed = RateLimiter<String, DashMapStateStore<String>, DefaultClock>;

/// Which limit a request hit; also the policy's name in the `RateLimit` headers and the
/// `limit` label of `ingest_rate_limited_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// POST syncs of one device.
    Device,
    /// POST syncs of one user, over all their devices.
    User,
    /// Reads of one user.
    Reads,
}

impl LimitKind {
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Device => "device",
            LimitKind::User => "user",
            LimitKind::Reads => "reads",
        }
    }
}

/// A request over a limit: which one, what it allows, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: LimitKind,
    /// Seconds until one more request conforms, rounded up (at least 1).
    pub retry_after_s: u64,
    /// The `RateLimit-Policy` field value.
    policy: String,
    /// The limit for people: "1 per second, bursts of 60".
    rule: String,
}

impl Refusal {
    pub fn policy_name(&self) -> &'static str {
        self.kind.name()
    }

    /// `Retry-After`, and the IETF draft's (draft-ietf-httpapi-ratelimit-headers-11) `RateLimit`
    /// (nothing left, for `t` seconds) and `RateLimit-Policy`.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        let name = self.kind.name();
        [
            ("Retry-After", self.retry_after_s.to_string()),
            ("RateLimit", format!("\"{name}\";r=0;t={}", self.retry_after_s)),
            ("RateLimit-Policy", self.policy.clone()),
        ]
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, per) = match self.kind {
            LimitKind::Device => ("this device has sent too many syncs", "per device"),
            LimitKind::User => ("this user's devices have sent too many syncs", "per user"),
            LimitKind::Reads => ("this user has made too many reads", "per user"),
        };
        write!(
            f,
            "{what}: the {} limit allows {} {per}; retry in {} s (Retry-After)",
            self.kind.name(),
            self.rule,
            self.retry_after_s
        )
    }
}

/// One keyed limiter and what it says about itself.
struct Limiter {
    kind: LimitKind,
    quota: Quota,
    policy: String,
    rule: String,
    max_keys: usize,
    /// Replaced whole when a sweep leaves more than `max_keys` keys.
    state: RwLock<Arc<Keyed>>,
    limited: IntCounter,
    keys: IntGauge,
}

impl Limiter {
    /// None when the limit is off (`per_second` 0).
    fn new(kind: LimitKind, limit: RateLimit, max_keys: usize, metrics: &Metrics) -> anyhow::Result<Option<Self>> {
        let env = match kind {
            LimitKind::Device => "DEVICE",
            LimitKind::User => "USER",
            LimitKind::Reads => "READS",
        };
        let rate = limit.per_second;
        anyhow::ensure!(
            rate.is_finite() && rate >= 0.0,
            "INGEST_RATE_LIMIT_{env}_PER_SECOND={rate} is not valid: give requests per second (0 turns the limit off)"
        );
        if rate == 0.0 {
            return Ok(None);
        }
        let burst = NonZeroU32::new(limit.burst).with_context(|| {
            format!("INGEST_RATE_LIMIT_{env}_BURST=0 is not valid while the limit is on: give at least 1")
        })?;
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / rate))
            .with_context(|| format!("INGEST_RATE_LIMIT_{env}_PER_SECOND={rate} is too high to keep time for"))?
            .allow_burst(burst);
        Ok(Some(Self {
            kind,
            quota,
            policy: policy_field(kind.name(), rate, burst.get()),
            rule: rule(rate, burst.get()),
            max_keys,
            state: RwLock::new(Arc::new(Keyed::dashmap(quota))),
            limited: metrics.rate_limited.with_label_values(&[kind.name()]),
            keys: metrics.rate_limit_keys.with_label_values(&[kind.name()]),
        }))
    }

    fn check(&self, key: &str) -> Result<(), Refusal> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.check_key(&key.to_owned()).map_err(|not_until| {
            self.limited.inc();
            let wait = not_until.wait_time_from(state.clock().now());
            Refusal {
                kind: self.kind,
                retry_after_s: whole_seconds_up(wait),
                policy: self.policy.clone(),
                rule: self.rule.clone(),
            }
        })
    }

    /// Forgets the keys whose bucket is full again; drops the whole state past `max_keys`.
    /// Returns the keys kept.
    fn sweep(&self) -> usize {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner).clone();
        state.retain_recent();
        state.shrink_to_fit();
        let mut kept = state.len();
        if kept > self.max_keys {
            log::warn!(
                "the {} rate limiter holds {kept} keys after a sweep, more than INGEST_RATE_LIMIT_MAX_KEYS={}: its state is dropped, every bucket starts full",
                self.kind.name(),
                self.max_keys
            );
            *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Keyed::dashmap(self.quota));
            kept = 0;
        }
        self.keys.set(kept as i64);
        kept
    }
}

/// The `RateLimit-Policy` value of a bucket: `q` requests per window `w`, the window being the
/// time the bucket takes to fill from empty (at least a second: the draft's `w` is whole
/// seconds), and `q` what it lets through in that window.
fn policy_field(name: &str, rate: f64, burst: u32) -> String {
    let w = (f64::from(burst) / rate).ceil().max(1.0);
    let q = ((rate * w).floor() as u64).max(u64::from(burst));
    format!("\"{name}\";q={q};w={w}")
}

fn rule(rate: f64, burst: u32) -> String {
    if rate >= 1.0 {
        format!("{rate} per second, bursts of {burst}")
    } else {
        format!("one every {} s, bursts of {burst}", (1.0 / rate * 10.0).round() / 10.0)
    }
}

/// Seconds, rounded up, at least 1: a client told 0 would come straight back.
fn whole_seconds_up(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000).max(1) as u64
}

struct Limiters {
    device: Option<Limiter>,
    user: Option<Limiter>,
    reads: Option<Limiter>,
}

/// Every rate limiter of the service (see the module's documentation).
#[derive(Clone)]
pub struct RateLimiters {
    inner: Arc<Limiters>,
}

impl RateLimiters {
    pub fn new(limits: &RateLimits, metrics: &Metrics) -> anyhow::Result<Self> {
        anyhow::ensure!(limits.max_keys >= 1, "INGEST_RATE_LIMIT_MAX_KEYS=0 is not valid: give at least 1");
        anyhow::ensure!(
            limits.sweep_interval >= Duration::from_secs(1),
            "INGEST_RATE_LIMIT_SWEEP_SECONDS=0 is not valid: give at least 1"
        );
        let max = limits.max_keys;
        Ok(Self {
            inner: Arc::new(Limiters {
                device: Limiter::new(LimitKind::Device, limits.device_post, max, metrics)?,
                user: Limiter::new(LimitKind::User, limits.user_post, max, metrics)?,
                reads: Limiter::new(LimitKind::Reads, limits.user_reads, max, metrics)?,
            }),
        })
    }

    /// Sweeps every `every` until the limiters are dropped (needs a tokio runtime).
    pub fn spawn_sweeper(&self, every: Duration) {
        let weak: Weak<Limiters> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                RateLimiters { inner }.sweep();
            }
        });
    }

    /// Forgets idle keys now; returns the keys kept by the device, user and reads limiters.
    pub fn sweep(&self) -> [usize; 3] {
        let i = &self.inner;
        [&i.device, &i.user, &i.reads].map(|l| l.as_ref().map_or(0, Limiter::sweep))
    }

    /// A sync from `device` of `user`: the device's bucket first, so a device over its own
    /// limit does not spend its user's.
    pub fn check_post(&self, user: &str, device: &str) -> Result<(), ApiError> {
        if let Some(l) = &self.inner.device {
            // User and device together: device ids are only unique per user.
            l.check(&format!("{user}\u{0}{device}")).map_err(ApiError::RateLimited)?;
        }
        if let Some(l) = &self.inner.user {
            l.check(user).map_err(ApiError::RateLimited)?;
        }
        Ok(())
    }

    /// A read by `user` (the caller).
    pub fn check_read(&self, user: &str) -> Result<(), ApiError> {
        match &self.inner.reads {
            Some(l) => l.check(user).map_err(ApiError::RateLimited),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(device: RateLimit, user: RateLimit, reads: RateLimit) -> RateLimits {
        RateLimits { device_post: device, user_post: user, user_reads: reads, ..RateLimits::default() }
    }

    fn refusal(r: Result<(), ApiError>) -> Refusal {
        match r {
            Err(ApiError::RateLimited(refusal)) => refusal,
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn the_policy_field_says_what_the_bucket_lets_through_in_whole_seconds() {
        assert_eq!(policy_field("device", 1.0, 60), "\"device\";q=60;w=60");
        assert_eq!(policy_field("reads", 10.0, 100), "\"reads\";q=100;w=10");
        // A bucket that fills in under a second: a one-second window with the rate in it.
        assert_eq!(policy_field("user", 100.0, 10), "\"user\";q=100;w=1");
        assert_eq!(policy_field("device", 0.2, 3), "\"device\";q=3;w=15");
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1_001)), 2);
        assert_eq!(whole_seconds_up(Duration::ZERO), 1);
    }

    #[test]
    fn a_device_over_its_burst_is_refused_with_when_to_retry_and_others_are_not() {
        let l = RateLimiters::new(
            &limits(RateLimit { per_second: 0.5, burst: 2 }, RateLimit::OFF, RateLimit::OFF),
            &Metrics::new(),
        )
        .unwrap();
        l.check_post("u1", "d1").unwrap();
        l.check_post("u1", "d1").unwrap();
        let r = refusal(l.check_post("u1", "d1"));
        assert_eq!((r.kind, r.retry_after_s), (LimitKind::Device, 2));
        let [retry, limit, policy] = r.headers();
        assert_eq!(retry, ("Retry-After", "2".into()));
        assert_eq!(limit, ("RateLimit", "\"device\";r=0;t=2".into()));
        assert_eq!(policy, ("RateLimit-Policy", "\"device\";q=2;w=4".into()));
        assert!(r.to_string().contains("retry in 2 s"), "{r}");
        assert!(r.to_string().contains("one every 2 s, bursts of 2"), "{r}");
        // Another device of the same user, and the same device id of another user, have their own buckets.
        l.check_post("u1", "d2").unwrap();
        l.check_post("u2", "d1").unwrap();
    }

    #[test]
    fn a_user_is_limited_over_all_their_devices_and_reads_apart() {
        let on = RateLimit { per_second: 1.0, burst: 3 };
        let l = RateLimiters::new(&limits(RateLimit::OFF, on, on), &Metrics::new()).unwrap();
        for d in ["a", "b", "c"] {
            l.check_post("u1", d).unwrap();
        }
        assert_eq!(refusal(l.check_post("u1", "d")).kind, LimitKind::User);
        l.check_read("u1").unwrap();
        l.check_post("u2", "a").unwrap();
        for _ in 0..2 {
            l.check_read("u1").unwrap();
        }
        assert_eq!(refusal(l.check_read("u1")).kind, LimitKind::Reads);
    }

    #[test]
    fn limits_count_their_refusals_and_off_limits_refuse_nothing() {
        let metrics = Metrics::new();
        let l = RateLimiters::new(
            &limits(RateLimit { per_second: 1.0, burst: 1 }, RateLimit::OFF, RateLimit::OFF),
            &metrics,
        )
        .unwrap();
        l.check_post("u", "d").unwrap();
        for _ in 0..3 {
            assert!(l.check_post("u", "d").is_err());
        }
        assert_eq!(metrics.rate_limited.with_label_values(&["device"]).get(), 3);
        assert_eq!(metrics.rate_limited.with_label_values(&["user"]).get(), 0);
        for _ in 0..1_000 {
            l.check_read("u").unwrap();
        }
    }

    #[test]
    fn bad_limits_are_clear_errors() {
        let m = Metrics::new();
        for bad in [RateLimit { per_second: -1.0, burst: 1 }, RateLimit { per_second: f64::NAN, burst: 1 }] {
            let e = RateLimiters::new(&limits(bad, RateLimit::OFF, RateLimit::OFF), &m).err().unwrap();
            assert!(e.to_string().contains("INGEST_RATE_LIMIT_DEVICE_PER_SECOND"), "{e}");
        }
        let e = RateLimiters::new(&limits(RateLimit::OFF, RateLimit { per_second: 1.0, burst: 0 }, RateLimit::OFF), &m)
            .err()
            .unwrap();
        assert!(e.to_string().contains("INGEST_RATE_LIMIT_USER_BURST"), "{e}");
        let e = RateLimiters::new(&RateLimits { max_keys: 0, ..RateLimits::default() }, &m).err().unwrap();
        assert!(e.to_string().contains("INGEST_RATE_LIMIT_MAX_KEYS"), "{e}");
    }

    #[test]
    fn sweeps_forget_idle_keys_and_drop_the_state_past_the_cap() {
        let metrics = Metrics::new();
        // Buckets full again 10 ms after a request.
        let fast = RateLimit { per_second: 100.0, burst: 1 };
        let slow = RateLimit { per_second: 0.001, burst: 1 };
        let l = RateLimiters::new(&RateLimits { max_keys: 5, ..limits(fast, slow, RateLimit::OFF) }, &metrics).unwrap();
        for i in 0..5 {
            l.check_post(&format!("u{i}"), "d").unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(l.sweep(), [0, 5, 0], "idle device keys go, the users' empty buckets stay");
        assert_eq!(metrics.rate_limit_keys.with_label_values(&["user"]).get(), 5);
        assert!(l.check_post("u0", "d").is_err(), "u0's bucket is still empty");
        l.check_post("u5", "d").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(l.sweep(), [0, 0, 0], "six users are more than the cap of five: the state is dropped");
        l.check_post("u0", "d").unwrap();
    }
}
