-- Every batch that touches a user-day rewrites its daily, rolling and profile rows. With room left
-- on each page, PostgreSQL writes the new version beside the old one (a HOT update: no new index
-- entries) and prunes the old one the next time the page is read, so these tables stay near their
-- live size between autovacuum runs instead of growing by a row version per batch.
ALTER TABLE daily_metrics SET (fillfactor = 70);
ALTER TABLE rolling_metrics SET (fillfactor = 70);
ALTER TABLE user_profiles SET (fillfactor = 70);

-- The recent-syncs read walks sync_status_by_user_position backwards (a user's syncs are in one
-- partition, applied in offset order), so the index by processed_at is one index too many: about
-- 45 bytes per sync.
DROP INDEX sync_status_by_user;

-- user_id first in every key, so that user_id can be the distribution column of a sharded
-- PostgreSQL (Citus wants it in every unique constraint) with no change to the processor's
-- transactions. Sync ids come from devices: two users' syncs may now share one without the
-- second being taken for a re-send of the first. GET /v1/syncs/{id} looks a sync up by id alone.
ALTER TABLE sync_status DROP CONSTRAINT sync_status_pkey, ADD PRIMARY KEY (user_id, sync_id);
CREATE INDEX sync_status_by_sync_id ON sync_status (sync_id);
ALTER TABLE erasure_receipts DROP CONSTRAINT erasure_receipts_pkey, ADD PRIMARY KEY (user_id, erasure_id);
