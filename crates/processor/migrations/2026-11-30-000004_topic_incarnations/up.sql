-- Which incarnation of a topic the watermarks of partition_watermarks belong to: offsets mean
-- something only within one (a recreated topic or another cluster starts them again).
CREATE TABLE topic_incarnations (
    topic       TEXT        PRIMARY KEY,
    cluster_id  TEXT,
    topic_id    TEXT,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
