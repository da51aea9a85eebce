-- The latest profile a sync carried ("latest" by the sync's own time, not by arrival).
CREATE TABLE user_profiles (
    user_id    TEXT PRIMARY KEY,
    birth_year INTEGER          NOT NULL,
    sex        TEXT             NOT NULL CHECK (sex IN ('male', 'female')),
    weight_kg  DOUBLE PRECISION NOT NULL,
    height_cm  DOUBLE PRECISION NOT NULL,
    hr_max     INTEGER,
    as_of_ms   BIGINT           NOT NULL
);

-- What a day is recomputed from: each sync's samples of one local day, compact (parallel arrays
-- in JSONB, which PostgreSQL compresses). Re-sent samples are deduplicated when a day is
-- computed, so a retried sync (same sync id) adds nothing and an overlapping one counts once.
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

-- Per local day: the full summary, plus the columns the rolling series and the read side query.
CREATE TABLE daily_metrics (
    user_id            TEXT             NOT NULL,
    local_date         DATE             NOT NULL,
    steps              DOUBLE PRECISION NOT NULL,
    resting_hr         DOUBLE PRECISION,
    hr_max             DOUBLE PRECISION,
    ln_rmssd           DOUBLE PRECISION,
    training_load      DOUBLE PRECISION NOT NULL,
    low_coverage       BOOLEAN          NOT NULL,
    samples_received   INTEGER          NOT NULL,
    duplicates_dropped INTEGER          NOT NULL,
    summary            JSONB            NOT NULL,
    updated_at         TIMESTAMPTZ      NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, local_date)
);

-- The rolling series over the dense run of days (a day without data has load 0 and is flagged).
CREATE TABLE rolling_metrics (
    user_id       TEXT             NOT NULL,
    local_date    DATE             NOT NULL,
    has_data      BOOLEAN          NOT NULL,
    training_load DOUBLE PRECISION NOT NULL,
    ctl           DOUBLE PRECISION NOT NULL,
    atl           DOUBLE PRECISION NOT NULL,
    tsb           DOUBLE PRECISION NOT NULL,
    acwr_rolling  DOUBLE PRECISION,
    acwr_ewma     DOUBLE PRECISION,
    rhr_z         DOUBLE PRECISION,
    rhr_flag      BOOLEAN          NOT NULL,
    night_signal  BOOLEAN          NOT NULL,
    metrics       JSONB            NOT NULL,
    PRIMARY KEY (user_id, local_date)
);
