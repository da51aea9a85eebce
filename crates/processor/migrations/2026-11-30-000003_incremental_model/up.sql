-- The incremental model (issue 12): raw samples as compact binary instead of JSONB, and the
-- rolling state a recomputation resumes from. The JSONB chunks cannot be converted in SQL, so
-- the model is rebuilt from the log: derived tables and watermarks are emptied, and a processor
-- with a fresh consumer group (or reset offsets) replays the topic. See docs/processor.md.
DROP TABLE day_chunks;
TRUNCATE daily_metrics, rolling_metrics, user_profiles, sync_status, partition_watermarks;

-- Each sync's samples of one local day of its user. Keyed by user first, so that user_id can be
-- the distribution column of a sharded PostgreSQL. `samples` is the chunk codec's format
-- (delta-of-delta varints); a retried sync (same sync id) inserts nothing.
CREATE TABLE day_samples (
    user_id            TEXT    NOT NULL,
    local_date         DATE    NOT NULL,
    sync_id            UUID    NOT NULL,
    device_id          TEXT    NOT NULL,
    utc_offset_minutes INTEGER NOT NULL,
    -- The sync's phone time: with sync_id, decides between conflicting re-sends.
    phone_time_ms      BIGINT  NOT NULL,
    samples            BYTEA   NOT NULL,
    PRIMARY KEY (user_id, local_date, sync_id)
);

-- What resuming the series at a day needs: its position in the dense series and the EWMA state.
ALTER TABLE rolling_metrics
    ADD COLUMN day_index INTEGER          NOT NULL,
    ADD COLUMN ewma7     DOUBLE PRECISION NOT NULL,
    ADD COLUMN ewma28    DOUBLE PRECISION NOT NULL;

-- As of which sync the profile is the latest one (the conflict rule of the samples).
ALTER TABLE user_profiles ADD COLUMN as_of_sync_id UUID NOT NULL;
