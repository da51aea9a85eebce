-- Confluent's /mode: READWRITE or READONLY; the row with subject '' is the global one.
CREATE TABLE registry_mode (
    subject TEXT PRIMARY KEY,
    mode    TEXT NOT NULL CHECK (mode IN ('READWRITE', 'READONLY'))
);

-- Who deleted what and changed which config or mode, and how it ended.
CREATE TABLE audit_log (
    id       BIGSERIAL   PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    username TEXT        NOT NULL,
    action   TEXT        NOT NULL,
    subject  TEXT,
    version  TEXT,
    detail   TEXT        NOT NULL DEFAULT '',
    result   TEXT        NOT NULL
);
