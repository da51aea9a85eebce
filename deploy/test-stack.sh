#!/usr/bin/env bash
# `make test`: starts a private broker (memory storage) and schema registry on free ports, runs
# the whole suite against them and PostgreSQL, and stops what it started, even when a test fails.
# It never touches the ports or databases of a running `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fitness-test.XXXXXX")
REGISTRY_DB="registry_test_$$"
BROKER_PID="" REGISTRY_PID=""

cleanup() {
    local status=$?
    trap '' INT TERM PIPE
    set +e
    stop_pids "$REGISTRY_PID" "$BROKER_PID"
    drop_database "$REGISTRY_DB"
    if [[ $status -ne 0 ]]; then
        echo "test stack logs kept in $RUN_DIR" >&2
    else
        rm -rf "$RUN_DIR"
    fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_nisshi
ensure_postgres
ensure_chromium

say "building the workspace and its tests"
cargo build --workspace --bins --locked
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --workspace --locked --no-run
else
    cargo test --workspace --locked --no-run
fi

BROKER_PORT=$(free_port)
say "starting the test broker on 127.0.0.1:$BROKER_PORT (memory storage)"
start_broker "$BROKER_PORT" "memory://nisshi/" "$RUN_DIR/broker.log"

REGISTRY_PORT=$(free_port)
ensure_database "$REGISTRY_DB"
# The suite runs against an authenticated registry, as production does: the tests get the writer
# (through SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, like the services) and the other users' info.
make_registry_credentials "$RUN_DIR/registry" "$CARGO_TARGET_DIR/debug/schema-registry"
say "starting the test schema registry on 127.0.0.1:$REGISTRY_PORT (HTTP Basic auth)"
SCHEMA_REGISTRY_LISTEN_ADDR="127.0.0.1:$REGISTRY_PORT" \
SCHEMA_REGISTRY_DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$REGISTRY_DB" \
SCHEMA_REGISTRY_AUTH_FILE="$REGISTRY_AUTH_FILE" \
    "$CARGO_TARGET_DIR/debug/schema-registry" >"$RUN_DIR/registry.log" 2>&1 &
REGISTRY_PID=$!
wait_for_http "http://127.0.0.1:$REGISTRY_PORT/healthz" "$REGISTRY_PID" "the schema registry" "$RUN_DIR/registry.log"

export TEST_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT"
export TEST_SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
export SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO="$REGISTRY_WRITER_USER_INFO"
export TEST_SCHEMA_REGISTRY_READER_USER_INFO="$REGISTRY_READER_USER_INFO"
export TEST_SCHEMA_REGISTRY_ADMIN_USER_INFO="$REGISTRY_ADMIN_USER_INFO"
export TEST_NISSHI_BIN="$NISSHI_BIN"
export TEST_DATABASE_ADMIN_URL="postgres://postgres@$PG_HOST:$PG_PORT/postgres"

say "running the suite"
if command -v cargo-nextest >/dev/null; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast "$@"
fi

# The chaos suite's short form (issue 14): its own stack, every fault once, fails on any loss,
# double count or DLQ mismatch. A few minutes; skipped when only some tests were asked for.
if [[ $# -eq 0 ]]; then
    say "the chaos suite, short form (deploy/chaos.sh --short)"
    deploy/chaos.sh --short
fi
