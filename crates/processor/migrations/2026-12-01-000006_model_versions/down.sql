DROP INDEX sync_status_by_user_position;
DROP INDEX sync_status_by_position;
ALTER TABLE partition_watermarks DROP COLUMN model_epoch;
ALTER TABLE rolling_metrics DROP COLUMN model_version;
ALTER TABLE daily_metrics DROP COLUMN model_version;
