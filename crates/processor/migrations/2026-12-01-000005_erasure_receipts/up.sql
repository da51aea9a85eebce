-- One row per erasure the processor carried out (UserDataErasureRequested): who, where in the log,
-- when it was asked and done, and how many rows went. No health data. A sync of the user at a
-- lower offset of the same partition, or accepted before the request, is never applied again.
CREATE TABLE erasure_receipts (
    erasure_id      UUID        PRIMARY KEY,
    user_id         TEXT        NOT NULL,
    topic           TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL,
    completed_at    TIMESTAMPTZ NOT NULL,
    rows_deleted    BIGINT      NOT NULL
);

CREATE INDEX erasure_receipts_by_user ON erasure_receipts (user_id, kafka_offset);
