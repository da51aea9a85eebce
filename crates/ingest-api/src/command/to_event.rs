//! A validated command becomes one DeviceSynced event, in the compact form of the schema.

use events::device_synced::{ClockInfo, HeartRateSeries, SequenceRange, Spo2Series, StepSeries, TimeZoneInfo};
use events::DeviceSynced;

use super::ValidSync;

/// Successive differences, the first relative to `origin`.
fn deltas(origin: i64, times: impl Iterator<Item = i64>) -> Vec<i64> {
    let mut previous = origin;
    times
        .map(|t| {
            let d = t - previous;
            previous = t;
            d
        })
        .collect()
}

impl ValidSync {
    /// The event this sync is published as, for `user_id`'s `device_id`, accepted at
    /// `ingested_at_ms` (server clock).
    pub fn into_event(self, user_id: &str, device_id: &str, event_id: uuid::Uuid, ingested_at_ms: i64) -> DeviceSynced {
        device_synced(self, user_id, device_id, event_id, ingested_at_ms)
    }
}

fn device_synced(
    sync: ValidSync,
    user_id: &str,
    device_id: &str,
    event_id: uuid::Uuid,
    ingested_at_ms: i64,
) -> DeviceSynced {
    let origin = sync.window_start_ms;
    DeviceSynced {
        event_id: event_id.to_string(),
        sync_id: sync.sync_id.to_string(),
        user_id: user_id.to_owned(),
        device_id: device_id.to_owned(),
        ingested_at: ingested_at_ms,
        device: sync.device,
        app: sync.app,
        clock: ClockInfo {
            device_time_ms: sync.device_time_ms,
            phone_time_ms: sync.phone_time_ms,
            skew_ms: sync.skew_ms,
        },
        time_zone: TimeZoneInfo { iana: sync.time_zone, offsets: sync.offsets },
        sequence: SequenceRange { first: sync.sequence_first, last: sync.sequence_last },
        window_start_ms: sync.window_start_ms,
        window_end_ms: sync.window_end_ms,
        heart_rate: HeartRateSeries {
            time_deltas_ms: deltas(origin, sync.heart_rate.iter().map(|s| s.time_ms)),
            bpm: sync.heart_rate.iter().map(|s| s.bpm).collect(),
            quality: sync.heart_rate.iter().map(|s| s.quality).collect(),
        },
        rr_blocks: sync.rr_blocks,
        steps: StepSeries {
            start_deltas_ms: deltas(origin, sync.steps.iter().map(|s| s.start_ms)),
            duration_s: sync.steps.iter().map(|s| s.duration_s).collect(),
            steps: sync.steps.iter().map(|s| s.steps).collect(),
            distance_m: sync.steps.iter().map(|s| s.distance_m).collect(),
        },
        sleep: sync.sleep,
        workouts: sync.workouts,
        profile: sync.profile,
        spo2: (!sync.spo2.is_empty()).then(|| Spo2Series {
            time_deltas_ms: deltas(origin, sync.spo2.iter().map(|s| s.time_ms)),
            percent: sync.spo2.iter().map(|s| s.percent).collect(),
        }),
        skin_temperature: sync.skin_temperature,
        wear_events: sync.wear,
        dropped_samples: sync.dropped.into_iter().collect(),
    }
}
