-- Runs once, when the Compose stack's PostgreSQL volume is first created (POSTGRES_DB makes
-- `fitness`). The project's own schema registry (Compose profile `own-registry`) keeps its
-- schemas in a database of its own, as under `make run`.
CREATE DATABASE schema_registry;
