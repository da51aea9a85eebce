//! The encoders generated from the schemas write exactly what apache-avro writes, for events
//! with every field filled, empty, absent or extreme.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use events::device_synced::{
    self, AppInfo, ClockInfo, DeviceInfo, DeviceSynced, HeartRateSeries, HrQuality, HrSensorKind, Profile, RrBlock,
    SequenceRange, Sex, SkinTemperatureNight, SleepSegment, SleepStage, Spo2Series, StepSeries, TimeZoneInfo,
    UtcOffsetSegment, WearEvent, WearState, Workout,
};
use proptest::prelude::*;

fn event(n: i64, text: String, full: bool) -> DeviceSynced {
    let many = |k: usize| if full { k } else { 0 };
    DeviceSynced {
        event_id: text.clone(),
        sync_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        user_id: format!("user-{n}"),
        device_id: String::new(),
        ingested_at: n,
        device: DeviceInfo {
            manufacturer: text.clone(),
            model: "Band".into(),
            hardware_version: "rev-b".into(),
            firmware_version: "3.1".into(),
            battery_percent: full.then_some(81),
            hr_sensor: if full { HrSensorKind::Strap } else { HrSensorKind::Optical },
        },
        app: AppInfo { app_version: "2.4".into(), os: "Android 15".into() },
        clock: ClockInfo { device_time_ms: n, phone_time_ms: n.wrapping_add(1), skew_ms: n.wrapping_neg() },
        time_zone: TimeZoneInfo {
            iana: "Europe/Berlin".into(),
            offsets: (0..many(3))
                .map(|i| UtcOffsetSegment { start_ms: n ^ i as i64, offset_minutes: -840 + i as i32 })
                .collect(),
        },
        sequence: SequenceRange { first: 0, last: i64::from(u32::MAX) },
        window_start_ms: i64::MIN,
        window_end_ms: i64::MAX,
        heart_rate: HeartRateSeries {
            time_deltas_ms: (0..many(70)).map(|i| n.wrapping_mul(i as i64)).collect(),
            bpm: (0..many(70)).map(|i| i as i32 * 3 - 5).collect(),
            quality: (0..many(70)).map(|i| [HrQuality::Locked, HrQuality::Unlocked, HrQuality::Strap][i % 3]).collect(),
        },
        rr_blocks: (0..many(2))
            .map(|i| RrBlock {
                first_beat_ms: n.wrapping_add(i as i64),
                intervals_ms: vec![800, -1, i32::MAX, i32::MIN],
            })
            .collect(),
        steps: StepSeries {
            start_deltas_ms: (0..many(5)).map(|i| i as i64 * 60_000).collect(),
            duration_s: (0..many(5)).map(|_| 60).collect(),
            steps: (0..many(5)).map(|i| i as i32).collect(),
            distance_m: (0..many(5)).map(|i| i as f32 * 0.75 - 1.0e30).collect(),
        },
        sleep: (0..many(4))
            .map(|i| SleepSegment {
                start_ms: i as i64,
                end_ms: n,
                stage: [SleepStage::Awake, SleepStage::Light, SleepStage::Deep, SleepStage::Rem][i],
            })
            .collect(),
        workouts: (0..many(1))
            .map(|_| Workout { id: text.clone(), version: i32::MAX, sport: "run".into(), start_ms: n, end_ms: n })
            .collect(),
        profile: full.then(|| Profile {
            birth_year: 1988,
            sex: Sex::Female,
            weight_kg: 61.5,
            height_cm: f64::MAX,
            hr_max: (n % 2 == 0).then_some(188),
        }),
        spo2: full.then(|| Spo2Series { time_deltas_ms: vec![n, 0, n.wrapping_neg()], percent: vec![97, 0, -1] }),
        skin_temperature: (0..many(2))
            .map(|i| SkinTemperatureNight { night_end_ms: n, deviation_c: -0.4 * i as f32 })
            .collect(),
        wear_events: (0..many(2))
            .map(|i| WearEvent { time_ms: n, state: if i == 0 { WearState::OnWrist } else { WearState::OffWrist } })
            .collect(),
        dropped_samples: if full {
            [("hr_no_reading".to_owned(), 3), ("rr_out_of_range".to_owned(), n as i32)].into()
        } else {
            Default::default()
        },
    }
}

fn check(e: &DeviceSynced) {
    let writer = GenericDatumWriter::builder(device_synced::producer_schema()).build().unwrap();
    let expected = writer.write_ser_to_vec(e).unwrap();
    let framed = events::avro::framed(0x01020304, e, 0);
    assert_eq!(framed[..5], [0, 1, 2, 3, 4]);
    assert_eq!(framed[5..], expected[..], "{e:?}");
    // And the consumer's reader gives the event back.
    let reader = GenericDatumReader::builder(device_synced::schema()).build().unwrap();
    assert_eq!(&reader.read_deser::<DeviceSynced>(&mut &framed[5..]).unwrap(), e);
}

#[test]
fn an_empty_and_a_full_event_encode_as_apache_avro_writes_them() {
    check(&event(0, String::new(), false));
    check(&event(1_764_000_000_000, "Acme".into(), true));
    check(&event(i64::MIN, "é\u{0}".repeat(100), true));
    check(&event(i64::MAX, "x".into(), true));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn any_event_encodes_as_apache_avro_writes_it(n in any::<i64>(), text in ".{0,40}", full in any::<bool>()) {
        check(&event(n, text, full));
    }
}
