-- Per partition, the highest offset whose effects are committed. Written in the same transaction
-- as those effects: it is both the dedup guard (skip offsets at or below it) and the watermark
-- that consistency tokens are checked against.
CREATE TABLE partition_watermarks (
    topic            TEXT        NOT NULL,
    kafka_partition  INTEGER     NOT NULL,
    committed_offset BIGINT      NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);

-- One row per sync the processor has finished with, whatever the outcome.
CREATE TABLE sync_status (
    sync_id            UUID        PRIMARY KEY,
    event_id           UUID        NOT NULL,
    user_id            TEXT        NOT NULL,
    device_id          TEXT        NOT NULL,
    kafka_partition    INTEGER     NOT NULL,
    kafka_offset       BIGINT      NOT NULL,
    outcome            TEXT        NOT NULL CHECK (outcome IN ('processed', 'failed')),
    failure_reason     TEXT,
    heart_rate_samples INTEGER     NOT NULL,
    rr_intervals       INTEGER     NOT NULL,
    step_epochs        INTEGER     NOT NULL,
    sleep_segments     INTEGER     NOT NULL,
    workouts           INTEGER     NOT NULL,
    dropped_samples    JSONB       NOT NULL DEFAULT '{}'::jsonb,
    ingested_at        TIMESTAMPTZ NOT NULL,
    processed_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX sync_status_by_user ON sync_status (user_id, processed_at DESC);
