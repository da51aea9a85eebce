ALTER TABLE user_profiles DROP COLUMN as_of_sync_id;
ALTER TABLE rolling_metrics DROP COLUMN day_index, DROP COLUMN ewma7, DROP COLUMN ewma28;
DROP TABLE day_samples;
CREATE TABLE day_chunks (
    user_id            TEXT    NOT NULL,
    local_date         DATE    NOT NULL,
    sync_id            UUID    NOT NULL,
    device_id          TEXT    NOT NULL,
    utc_offset_minutes INTEGER NOT NULL,
    synced_at_ms       BIGINT  NOT NULL,
    chunk              JSONB   NOT NULL,
    PRIMARY KEY (user_id, local_date, sync_id)
);
