ALTER TABLE erasure_receipts DROP CONSTRAINT erasure_receipts_pkey, ADD PRIMARY KEY (erasure_id);
DROP INDEX sync_status_by_sync_id;
ALTER TABLE sync_status DROP CONSTRAINT sync_status_pkey, ADD PRIMARY KEY (sync_id);
CREATE INDEX sync_status_by_user ON sync_status (user_id, processed_at DESC);
ALTER TABLE user_profiles RESET (fillfactor);
ALTER TABLE rolling_metrics RESET (fillfactor);
ALTER TABLE daily_metrics RESET (fillfactor);
