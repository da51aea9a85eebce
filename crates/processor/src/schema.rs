// Mirrors migrations/; keep the two in step.

diesel::table! {
    partition_watermarks (topic, kafka_partition) {
        topic -> Text,
        kafka_partition -> Int4,
        committed_offset -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sync_status (sync_id) {
        sync_id -> Uuid,
        event_id -> Uuid,
        user_id -> Text,
        device_id -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        outcome -> Text,
        failure_reason -> Nullable<Text>,
        heart_rate_samples -> Int4,
        rr_intervals -> Int4,
        step_epochs -> Int4,
        sleep_segments -> Int4,
        workouts -> Int4,
        dropped_samples -> Jsonb,
        ingested_at -> Timestamptz,
        processed_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(partition_watermarks, sync_status);
