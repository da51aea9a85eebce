-- Schemas are global: one id per distinct canonical schema (and its references).
CREATE TABLE schemas (
    id          SERIAL PRIMARY KEY,
    schema_type TEXT   NOT NULL DEFAULT 'AVRO',
    schema_text TEXT   NOT NULL,
    -- Compact JSON with sorted object keys: whitespace and key order do not make a new schema.
    canonical   TEXT   NOT NULL,
    refs        JSONB  NOT NULL DEFAULT '[]'::jsonb,
    UNIQUE (canonical, refs)
);

-- Versions are per subject. A soft-deleted version keeps its row until a permanent delete.
CREATE TABLE subject_versions (
    subject    TEXT        NOT NULL,
    version    INTEGER     NOT NULL,
    schema_id  INTEGER     NOT NULL REFERENCES schemas (id),
    deleted    BOOLEAN     NOT NULL DEFAULT false,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX subject_versions_by_schema ON subject_versions (schema_id);

-- Compatibility levels; the row with subject '' is the global one.
CREATE TABLE compatibility_config (
    subject       TEXT PRIMARY KEY,
    compatibility TEXT NOT NULL
);
