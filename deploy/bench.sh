#!/usr/bin/env bash
# `make bench`: micro benchmarks (criterion) and system benchmarks against a private stack of
# release builds (broker with memory storage, registry, PostgreSQL, ingest-api, processor), then
# writes docs/benchmarks.md with the machine, the commands and the results.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fitness-bench.XXXXXX")
PIDS=()
DBS=()
cleanup() {
    local status=$?
    trap '' INT TERM PIPE
    set +e
    stop_pids "${PIDS[@]}"
    for db in "${DBS[@]}"; do drop_database "$db"; done
    [[ $status -eq 0 ]] && rm -rf "$RUN_DIR" || echo "bench logs kept in $RUN_DIR" >&2
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export BENCH_SATURATION_SECONDS=${BENCH_SATURATION_SECONDS:-10} BENCH_RATE_SECONDS=${BENCH_RATE_SECONDS:-10}
SAT_SECONDS=$BENCH_SATURATION_SECONDS
RATE_SECONDS=$BENCH_RATE_SECONDS

ensure_nisshi
ensure_postgres
say "building release binaries"
cargo build --release --locked -p ingest-api -p processor -p schema-registry -p devsim -p baseline
REL="$CARGO_TARGET_DIR/release"

say "micro benchmarks (criterion)"
cargo bench --locked -p health-model --bench model -- --warm-up-time 1 --measurement-time 3 --noplot | tee "$RUN_DIR/micro.txt"
cargo bench --locked -p ingest-api --bench command -- --warm-up-time 1 --measurement-time 3 --noplot | tee -a "$RUN_DIR/micro.txt"

BROKER_PORT=$(free_port)
start_broker "$BROKER_PORT" "memory://nisshi/" "$RUN_DIR/broker.log"
PIDS+=("$BROKER_PID")
REG_DB="bench_registry_$$" MODEL_DB="bench_model_$$" MODEL_DB2="bench_model2_$$" BASE_DB="bench_baseline_$$"
for db in "$REG_DB" "$MODEL_DB" "$MODEL_DB2" "$BASE_DB"; do ensure_database "$db"; DBS+=("$db"); done
REG_PORT=$(free_port)
SCHEMA_REGISTRY_LISTEN_ADDR="127.0.0.1:$REG_PORT" SCHEMA_REGISTRY_DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$REG_DB" \
    RUST_LOG=warn "$REL/schema-registry" >"$RUN_DIR/registry.log" 2>&1 &
PIDS+=($!)
wait_for_http "http://127.0.0.1:$REG_PORT/healthz" "${PIDS[-1]}" "the registry" "$RUN_DIR/registry.log"

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" SCHEMA_REGISTRY_URL="http://127.0.0.1:$REG_PORT"
export AUTH_TOKEN_SECRET="bench-secret-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export RUST_LOG=warn
DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$MODEL_DB" PROCESSOR_TOPIC_PARTITIONS=6 "$REL/processor" create-topics
INGEST_PORT=$(free_port)
INGEST_LISTEN_ADDR="127.0.0.1:$INGEST_PORT" DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$MODEL_DB" \
    "$REL/ingest-api" >"$RUN_DIR/ingest.log" 2>&1 &
INGEST_PID=$!
PIDS+=("$INGEST_PID")
wait_for_http "http://127.0.0.1:$INGEST_PORT/readyz" "$INGEST_PID" "ingest-api" "$RUN_DIR/ingest.log"
URL="http://127.0.0.1:$INGEST_PORT"

say "ingest saturation: as fast as possible for ${SAT_SECONDS}s"
"$REL/devsim" load --url "$URL" --rate max --concurrency 32 --duration "${SAT_SECONDS}s" --devices 1000 --json "$RUN_DIR/saturation.json"
SAT=$(python3 -c "import json; print(int(json.load(open('$RUN_DIR/saturation.json'))['accepted_per_s']))")
for pct in 25 50 75; do
    rate=$((SAT * pct / 100)); [[ $rate -lt 1 ]] && rate=1
    say "ingest latency at ${pct}% of saturation: ${rate}/s for ${RATE_SECONDS}s"
    "$REL/devsim" load --url "$URL" --rate "${rate}/s" --duration "${RATE_SECONDS}s" --devices 1000 --json "$RUN_DIR/rate$pct.json"
done
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$INGEST_PID/status")

# The baseline: the same endpoint processing and writing the database inside the request.
BASE_PORT=$(free_port)
BASELINE_LISTEN_ADDR="127.0.0.1:$BASE_PORT" DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$BASE_DB" \
    "$REL/baseline" >"$RUN_DIR/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_for_http "http://127.0.0.1:$BASE_PORT/healthz" "$BASE_PID" "the baseline" "$RUN_DIR/baseline.log"
say "baseline saturation: as fast as possible for ${SAT_SECONDS}s"
"$REL/devsim" load --url "http://127.0.0.1:$BASE_PORT" --rate max --concurrency 32 --duration "${SAT_SECONDS}s" --devices 1000 --json "$RUN_DIR/base-saturation.report" || true
BASE_SAT=$(python3 -c "import json; print(max(1, int(json.load(open('$RUN_DIR/base-saturation.report'))['accepted_per_s'])))")
rate=$((SAT / 2 > 0 ? SAT / 2 : 1)); brate=$((BASE_SAT / 2 > 0 ? BASE_SAT / 2 : 1))
say "baseline at the pattern's 50% load (${rate}/s) and at its own 50% (${brate}/s)"
"$REL/devsim" load --url "http://127.0.0.1:$BASE_PORT" --rate "${rate}/s" --duration "${RATE_SECONDS}s" --devices 1000 --timeout 10s --json "$RUN_DIR/base-rate-same.report" || true
"$REL/devsim" load --url "http://127.0.0.1:$BASE_PORT" --rate "${brate}/s" --duration "${RATE_SECONDS}s" --devices 1000 --json "$RUN_DIR/base-rate-own.report" || true
stop_pids "$BASE_PID"

# The topic now holds a backlog: every accepted sync of the runs above.
BACKLOG=$(python3 -c "import json,glob; print(sum(json.load(open(f))['accepted'] for f in glob.glob('$RUN_DIR/*.json')))")
count_syncs() { psql -X -tA -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$1" -c "SELECT count(*) FROM sync_status" 2>/dev/null || echo 0; }
# Runs in this shell (not in $(…)), so the processors it starts are stopped by cleanup; sets CATCHUP_SECONDS.
catch_up() { # database, instances
    local db=$1 n=$2 group="bench-$1" start end i
    local url="postgres://postgres@$PG_HOST:$PG_PORT/$db"
    DATABASE_URL="$url" "$REL/processor" migrate >/dev/null
    start=$(date +%s.%N)
    for ((i = 0; i < n; i++)); do
        DATABASE_URL="$url" PROCESSOR_GROUP_ID="$group" PROCESSOR_OPS_ADDR="127.0.0.1:0" "$REL/processor" >"$RUN_DIR/processor-$db-$i.log" 2>&1 &
        PIDS+=($!)
        CATCHUP_PIDS+=($!)
    done
    while [[ $(count_syncs "$db") -lt $BACKLOG ]]; do sleep 0.5; done
    end=$(date +%s.%N)
    CATCHUP_SECONDS=$(python3 -c "print(round($end - $start, 2))")
}
CATCHUP_PIDS=()
say "processor catch-up of $BACKLOG syncs with one instance"
catch_up "$MODEL_DB" 1
ONE=$CATCHUP_SECONDS
stop_pids "${CATCHUP_PIDS[@]}"; CATCHUP_PIDS=()
say "processor catch-up of $BACKLOG syncs with two instances"
catch_up "$MODEL_DB2" 2
TWO=$CATCHUP_SECONDS
stop_pids "${CATCHUP_PIDS[@]}"; CATCHUP_PIDS=()
SIZES=$(psql -X -tA -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$MODEL_DB" -c \
    "SELECT sum(n_live_tup), sum(pg_total_relation_size(relid)) FROM pg_stat_user_tables")

say "end to end: freshness lag at 50% of saturation"
OPS_PORT=$(free_port)
DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$MODEL_DB" PROCESSOR_GROUP_ID="bench-$MODEL_DB" PROCESSOR_OPS_ADDR="127.0.0.1:$OPS_PORT" \
    "$REL/processor" >"$RUN_DIR/processor-e2e.log" 2>&1 &
PIDS+=($!)
wait_for_http "http://127.0.0.1:$OPS_PORT/readyz" "${PIDS[-1]}" "the processor" "$RUN_DIR/processor-e2e.log"
curl -s "http://127.0.0.1:$OPS_PORT/metrics" >"$RUN_DIR/metrics-before.txt"
"$REL/devsim" load --url "$URL" --rate "$((SAT / 2 > 0 ? SAT / 2 : 1))/s" --duration "${RATE_SECONDS}s" --devices 1000 --json "$RUN_DIR/e2e-load.json"
sleep 3
curl -s "http://127.0.0.1:$OPS_PORT/metrics" >"$RUN_DIR/metrics-after.txt"

say "writing docs/benchmarks.md"
python3 deploy/bench_report.py "$RUN_DIR" "$SAT" "$RSS_KB" "$BACKLOG" "$ONE" "$TWO" "$SIZES" >docs/benchmarks.md
echo "wrote docs/benchmarks.md"
