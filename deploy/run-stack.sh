#!/usr/bin/env bash
# `make run`: provisions and starts the embedded stack (broker with PostgreSQL storage, schema
# registry, PostgreSQL), creates the topics, migrates, starts both services, and prints where to
# look. Ctrl-C (or `make stop`) stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

STATE_DIR="$HOME/.cache/fitness/run"
PID_FILE="$STATE_DIR/stack.pid"
LOG_DIR="$STATE_DIR/logs"
mkdir -p "$LOG_DIR"

CHILDREN_FILE="$STATE_DIR/children.pids"

# Stops processes a previous run left behind (its script was killed before it could clean up).
# Only PIDs that still run one of the stack's programs are touched.
stop_leftovers() {
    [[ -f $CHILDREN_FILE ]] || return 0
    local pid left=()
    while read -r pid; do
        if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'nisshi|schema-registry|processor|ingest-api|devsim|tail -n 0 -F'; then
            left+=("$pid")
        fi
    done <"$CHILDREN_FILE"
    if [[ ${#left[@]} -gt 0 ]]; then
        say "stopping ${#left[@]} process(es) a previous 'make run' left behind"
        stop_pids "${left[@]}"
    fi
    rm -f "$CHILDREN_FILE"
}

if [[ ${1:-} == "--stop" ]]; then
    if [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        kill -TERM "$(cat "$PID_FILE")"
        for _ in $(seq 1 300); do kill -0 "$(cat "$PID_FILE" 2>/dev/null || echo 0)" 2>/dev/null || break; sleep 0.1; done
        echo "stopped"
    else
        echo "no 'make run' is running"
    fi
    stop_leftovers
    exit 0
fi

if [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    die "a 'make run' is already running (pid $(cat "$PID_FILE")); stop it with Ctrl-C in its terminal or 'make stop'"
fi
stop_leftovers

export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
export SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/fitness}
export SCHEMA_REGISTRY_DATABASE_URL=${SCHEMA_REGISTRY_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/schema_registry}
export INGEST_LISTEN_ADDR=${INGEST_LISTEN_ADDR:-127.0.0.1:8080}
export PROCESSOR_OPS_ADDR=${PROCESSOR_OPS_ADDR:-127.0.0.1:9090}
export SCHEMA_REGISTRY_LISTEN_ADDR=${SCHEMA_REGISTRY_LISTEN_ADDR:-127.0.0.1:8081}
export RUST_LOG=${RUST_LOG:-info}
# The simulator sends 30 days of history per device back to back (720 syncs each as fast as it
# can), which ingest-api's default POST limits (a phone's pace: 1 sync/s per device, bursts of
# 60) would slow to a crawl; it honours the 429s, but the demo should not wait. Reads keep their
# default. Set these to try the limits (docs/ingest-api.md, "Rate limits").
export INGEST_RATE_LIMIT_DEVICE_PER_SECOND=${INGEST_RATE_LIMIT_DEVICE_PER_SECOND:-1000}
export INGEST_RATE_LIMIT_DEVICE_BURST=${INGEST_RATE_LIMIT_DEVICE_BURST:-1000}
export INGEST_RATE_LIMIT_USER_PER_SECOND=${INGEST_RATE_LIMIT_USER_PER_SECOND:-1000}
export INGEST_RATE_LIMIT_USER_BURST=${INGEST_RATE_LIMIT_USER_BURST:-1000}
# Every log is capped: at most LOG_MAX_BYTES per file plus LOG_KEEP rotated ones (40 MB a process
# by default), however long the stack runs (deploy/rotate_log.py, through lib.sh's spawn_logged).
export LOG_MAX_BYTES=${LOG_MAX_BYTES:-10000000} LOG_KEEP=${LOG_KEEP:-3}
# A development token secret, made once and kept private to this machine.
SECRET_FILE="$STATE_DIR/auth-token-secret"
if [[ -z ${AUTH_TOKEN_SECRET:-} ]]; then
    [[ -s $SECRET_FILE ]] || (umask 077; python3 -c 'import secrets; print(secrets.token_hex(32))' >"$SECRET_FILE")
    AUTH_TOKEN_SECRET=$(cat "$SECRET_FILE")
fi
export AUTH_TOKEN_SECRET
BROKER_PORT=${KAFKA_BOOTSTRAP_SERVERS##*:}
BROKER_DB=nisshi

for addr in "127.0.0.1:$BROKER_PORT" "$SCHEMA_REGISTRY_LISTEN_ADDR" "$INGEST_LISTEN_ADDR" "$PROCESSOR_OPS_ADDR"; do
    port_open "${addr##*:}" && die "port ${addr##*:} is already in use; stop whatever listens there (see 'ss -ltnp') and run again"
done

PIDS=() TAIL_PID=""
cleanup() {
    # Ignore further signals (and a closed stdout, e.g. `| tee` killed by the same Ctrl-C) so
    # the stack is always taken down completely.
    trap '' INT TERM PIPE
    trap - EXIT
    set +e
    say "stopping the stack"
    # Services first (they drain and commit), then the registry, then the broker.
    local i
    stop_pids "$TAIL_PID"
    for ((i=${#PIDS[@]}-1; i>=0; i--)); do stop_pids "${PIDS[i]}"; done
    rm -f "$PID_FILE" "$CHILDREN_FILE"
    say "stopped; logs are in $LOG_DIR"
}
trap cleanup EXIT
trap 'exit 0' INT TERM
echo $$ >"$PID_FILE"

ensure_nisshi
ensure_postgres
for db in fitness schema_registry "$BROKER_DB"; do ensure_database "$db"; done

say "building the services"
cargo build --workspace --bins --locked
BIN="$CARGO_TARGET_DIR/debug"

# Children run in their own session so the terminal's Ctrl-C reaches only this script, which
# then stops them in order: services first (they drain and commit), the broker last.
start() { # name, then the command; logs to $LOG_DIR/name.log, capped and rotated
    local name=$1; shift
    spawn_logged "$LOG_DIR/$name.log" setsid "$@"
    PIDS+=("$SPAWNED_PID")
    echo "$SPAWNED_PID" >>"$CHILDREN_FILE"
}

say "starting the broker (nisshi) on $KAFKA_BOOTSTRAP_SERVERS, stored in PostgreSQL database $BROKER_DB"
# sslmode=disable: the broker would otherwise insist on TLS and reject a certificate issued for localhost.
BROKER_LAUNCHER=setsid start_broker "$BROKER_PORT" "postgres://postgres@$PG_HOST:$PG_PORT/$BROKER_DB?sslmode=disable" "$LOG_DIR/broker.log"
PIDS+=("$BROKER_PID")
echo "$BROKER_PID" >>"$CHILDREN_FILE"

# The registry's users, made on the first run (random passwords, kept in $STATE_DIR/registry);
# the services use the writer, and an operator the admin for deletes, /config and /mode.
make_registry_credentials "$STATE_DIR/registry" "$BIN/schema-registry"
export SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=${SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO:-$REGISTRY_WRITER_USER_INFO}

say "starting the schema registry on $SCHEMA_REGISTRY_URL (HTTP Basic auth, users in $REGISTRY_AUTH_FILE)"
start schema-registry env SCHEMA_REGISTRY_AUTH_FILE="$REGISTRY_AUTH_FILE" "$BIN/schema-registry"
wait_for_http "$SCHEMA_REGISTRY_URL/healthz" "${PIDS[-1]}" "the schema registry" "$LOG_DIR/schema-registry.log"

say "creating topics and migrating the database"
"$BIN/processor" create-topics
"$BIN/processor" migrate

say "starting the processor (ops on http://$PROCESSOR_OPS_ADDR)"
# The processor only reads schemas: it gets the reader, not the writer ingest-api needs.
SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO=${PROCESSOR_REGISTRY_USER_INFO:-$REGISTRY_READER_USER_INFO} \
    start processor "$BIN/processor" run
wait_for_http "http://$PROCESSOR_OPS_ADDR/healthz" "${PIDS[-1]}" "the processor" "$LOG_DIR/processor.log"

say "starting ingest-api on http://$INGEST_LISTEN_ADDR"
start ingest-api "$BIN/ingest-api"
wait_for_http "http://$INGEST_LISTEN_ADDR/healthz" "${PIDS[-1]}" "ingest-api" "$LOG_DIR/ingest-api.log"

USER_TOKEN=$("$BIN/ingest-api" token --user sim-user-0 --ttl-hours 720)

say "starting the device simulator: 5 users, 30 days of history, then a sync every 5 minutes"
# --speed 1: simulated time follows the wall clock, so the dashboard's window ends today.
start devsim "$BIN/devsim" run --url "http://$INGEST_LISTEN_ADDR" --users 5 --backfill-days 30 \
    --backfill-interval 1h --sync-interval 5m --speed 1 --progress-every 30s

cat <<INFO

  The stack is up. Where to look:
    ingest-api          http://$INGEST_LISTEN_ADDR/healthz
    processor           http://$PROCESSOR_OPS_ADDR/readyz   http://$PROCESSOR_OPS_ADDR/metrics
    schema registry     $SCHEMA_REGISTRY_URL/subjects   (HTTP Basic auth; users in $REGISTRY_AUTH_FILE)
                        curl -u "reader:\$(cat $STATE_DIR/registry/registry-reader.password)" $SCHEMA_REGISTRY_URL/subjects
                        admin (deletes, /config, /mode): user admin, password in $STATE_DIR/registry/registry-admin.password
    broker (Kafka API)  $KAFKA_BOOTSTRAP_SERVERS   topics device-synced (6 partitions), device-synced.dlq
    database            $DATABASE_URL   (psql "$DATABASE_URL" -c 'table sync_status')
    logs                $LOG_DIR/*.log

  Data flows: the simulator backfills 30 days for 5 users, then syncs every 5 minutes
  (log: $LOG_DIR/devsim.log; the backfill takes a few minutes to process).
  Dashboard of simulated user sim-user-0 (the token is in the fragment, never sent to the server):
    http://$INGEST_LISTEN_ADDR/dashboard#user=sim-user-0&token=$USER_TOKEN
  Read that user's health model:
    curl -s -H "Authorization: Bearer $USER_TOKEN" http://$INGEST_LISTEN_ADDR/v1/users/sim-user-0/days
    curl -s -H "Authorization: Bearer $USER_TOKEN" http://$INGEST_LISTEN_ADDR/v1/users/sim-user-0/model
  Send one yourself:
    TOKEN=\$($BIN/ingest-api token --device my-band --user me)
    $BIN/ingest-api example-sync | curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      --data-binary @- http://$INGEST_LISTEN_ADDR/v1/devices/my-band/syncs

  Press Ctrl-C (or run 'make stop') to stop everything.

INFO

# Follow the services' logs until stopped; exit if any of them dies.
tail -n 0 -F "$LOG_DIR"/processor.log "$LOG_DIR"/devsim.log &
TAIL_PID=$!
echo "$TAIL_PID" >>"$CHILDREN_FILE"
while true; do
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || die "a process of the stack (pid $p) exited; see $LOG_DIR"
    done
    sleep 1
done
