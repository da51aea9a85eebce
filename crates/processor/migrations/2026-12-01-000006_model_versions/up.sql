-- Which health model (health_model::MODEL_VERSION) computed each row. Every row so far came from
-- version 1. A processor with a newer version recomputes older rows from the stored samples.
-- The default stays: a processor older than this migration, still running during a rolling
-- upgrade, writes rows without the column, and version 1 is what computed them.
ALTER TABLE daily_metrics ADD COLUMN model_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE rolling_metrics ADD COLUMN model_version INTEGER NOT NULL DEFAULT 1;
-- Finding the users a recompute still has to do.
CREATE INDEX daily_metrics_by_model_version ON daily_metrics (model_version, user_id);
CREATE INDEX rolling_metrics_by_model_version ON rolling_metrics (model_version, user_id);

-- Rewrites of a partition's users outside the log (a recompute) raise it: a cached model is valid
-- for one (watermark, model_epoch) of its partition.
ALTER TABLE partition_watermarks ADD COLUMN model_epoch BIGINT NOT NULL DEFAULT 0;

-- Live updates read a partition's new statuses by offset, and replay a user's after an offset.
CREATE INDEX sync_status_by_position ON sync_status (kafka_partition, kafka_offset);
CREATE INDEX sync_status_by_user_position ON sync_status (user_id, kafka_partition, kafka_offset);
