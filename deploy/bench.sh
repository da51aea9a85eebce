#!/usr/bin/env bash
# `make bench`: micro benchmarks (criterion) and system benchmarks against a private stack of
# release builds (broker with memory storage, registry, PostgreSQL, ingest-api, processor), then
# writes docs/benchmarks.md (for people) and docs/benchmarks.json (for tools), each naming the
# command that produced it. Every figure is measured; none is typed in.
#
#   1. micro benchmarks (criterion);
#   2. ingest on topic device-synced: saturation (with the CPU of ingest-api, the broker and
#      devsim per sync, and ingest-api's RSS), latency at 25/50/75% of it; ingest-api's RSS after
#      20 abusive requests (deploy/abuse.py: gzip bombs, violation floods); the in-request
#      baseline at the same loads;
#   3. a backlog on a topic of its own (device-synced-backlog, 6 partitions, and its .dlq), filled
#      through a second ingest-api by `devsim run --backfill-only`: BENCH_BACKLOG_USERS users'
#      15-minute syncs over BENCH_BACKLOG_DAYS days, with the simulator's resends, overlapping
#      re-syncs, late batches and chest straps (1000 × 1.05 days ≈ 100,800 syncs);
#   4. catch-up of that backlog by one processor, then by two, each on a fresh database and
#      consumer group: wall time, CPU of the processors, PostgreSQL and the broker (/proc), peak
#      RSS, the processors' /metrics (statements, cache, events); table sizes after the first;
#   5. end-to-end freshness: the one-instance database's processor again, alongside `devsim load`
#      at 50% of ingest saturation through the backlog topic's ingest-api, with 1000 live event
#      streams open (`devsim watch`: delivery from commit to client);
#   5b. `processor rebuild` of the whole topic into a new database, and `processor recompute` of
#      every user of the one-instance database after its rows are marked as an older version;
#   6. deploy/bench_report.py renders both documents from what the steps left in RUN_DIR, and
#      deploy/capacity.py the capacity model (docs/capacity.md) from docs/benchmarks.json.
#
# Knobs (environment, defaults in KNOBS below): BENCH_SATURATION_SECONDS, BENCH_RATE_SECONDS (run
# lengths of the ingest runs), BENCH_BACKLOG_USERS, BENCH_BACKLOG_DAYS (the backlog; fewer for a
# quick iteration), BENCH_CATCHUP_TIMEOUT (seconds a catch-up may take), BENCH_E2E_DRAIN_TIMEOUT
# (seconds the processor gets to apply the end-to-end load once it is sent). PROCESSOR_* and
# INGEST_* tuning variables reach the services; the report's command line names every knob that
# differs from its default and every such variable.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

KNOBS=(BENCH_SATURATION_SECONDS=10 BENCH_RATE_SECONDS=10 BENCH_BACKLOG_USERS=1000 BENCH_BACKLOG_DAYS=1.05
    BENCH_CATCHUP_TIMEOUT=1800 BENCH_E2E_DRAIN_TIMEOUT=120)
# Set per command below: values from the caller's environment would point the services elsewhere.
unset PROCESSOR_TOPIC PROCESSOR_DLQ_TOPIC PROCESSOR_GROUP_ID PROCESSOR_OPS_ADDR PROCESSOR_TOPIC_PARTITIONS \
    INGEST_TOPIC INGEST_LISTEN_ADDR BASELINE_LISTEN_ADDR DATABASE_URL
OVERRIDES=()
for knob in "${KNOBS[@]}"; do
    name=${knob%%=*} default=${knob#*=}
    if [[ -n ${!name:-} && ${!name} != "$default" ]]; then OVERRIDES+=("$name=$(printf '%q' "${!name}")"); fi
    printf -v "$name" '%s' "${!name:-$default}"
    export "${name?}"
done
# Tuning the services read (cache budget, batch sizes, pools…): passed on, and named in the report.
SERVICE_ENV=()
while IFS= read -r name; do
    SERVICE_ENV+=("$name=$(printf '%q' "${!name}")")
done < <(compgen -e | grep -E '^(PROCESSOR|INGEST)_' | sort || true)
BENCH_COMMAND=$(printf '%s ' "${OVERRIDES[@]}" "${SERVICE_ENV[@]}" make bench)
BENCH_COMMAND=${BENCH_COMMAND% }

is_uint() { [[ $1 =~ ^[0-9]+$ && $1 -gt 0 ]]; }
is_uint "$BENCH_SATURATION_SECONDS" || die "BENCH_SATURATION_SECONDS=$BENCH_SATURATION_SECONDS: give whole seconds"
is_uint "$BENCH_RATE_SECONDS" || die "BENCH_RATE_SECONDS=$BENCH_RATE_SECONDS: give whole seconds"
is_uint "$BENCH_CATCHUP_TIMEOUT" || die "BENCH_CATCHUP_TIMEOUT=$BENCH_CATCHUP_TIMEOUT: give whole seconds"
is_uint "$BENCH_E2E_DRAIN_TIMEOUT" || die "BENCH_E2E_DRAIN_TIMEOUT=$BENCH_E2E_DRAIN_TIMEOUT: give whole seconds"
if ! is_uint "$BENCH_BACKLOG_USERS" || [[ $BENCH_BACKLOG_USERS -gt 100000 ]]; then
    die "BENCH_BACKLOG_USERS=$BENCH_BACKLOG_USERS: give 1 to 100000 users"
fi
[[ $BENCH_BACKLOG_DAYS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_BACKLOG_DAYS=$BENCH_BACKLOG_DAYS: give a number of days, e.g. 1.05"
SAT_SECONDS=$BENCH_SATURATION_SECONDS
RATE_SECONDS=$BENCH_RATE_SECONDS
BACKLOG_TOPIC=device-synced-backlog
BACKLOG_PARTITIONS=6

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

# Facts for bench_report.py, one key=value a line.
fact() { printf '%s=%s\n' "$1" "$2" >>"$RUN_DIR/facts.txt"; }
report() { python3 deploy/bench_report.py "$@"; }
pg_url() { echo "postgres://postgres@$PG_HOST:$PG_PORT/$1"; }
psql_db() { local db=$1; shift; psql -X -q -tA -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$db" "$@"; }
fact command "$BENCH_COMMAND"
fact environment "${SERVICE_ENV[*]}"
fact nisshi_version "$NISSHI_VERSION"
fact saturation_seconds "$SAT_SECONDS"
fact rate_seconds "$RATE_SECONDS"
fact backlog_users "$BENCH_BACKLOG_USERS"
fact backlog_days "$BENCH_BACKLOG_DAYS"
fact backlog_topic "$BACKLOG_TOPIC"
fact backlog_partitions "$BACKLOG_PARTITIONS"
fact cache_budget_mb "${PROCESSOR_CACHE_BUDGET_MB:-512}"
fact batch_max_wait_ms "${PROCESSOR_BATCH_MAX_WAIT_MS:-10}"
fact batch_max_events "${PROCESSOR_BATCH_MAX_EVENTS:-2000}"
say "benchmark: $BENCH_COMMAND (logs in $RUN_DIR)"

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
REBUILD_DB="bench_rebuild_$$"
for db in "$REG_DB" "$MODEL_DB" "$MODEL_DB2" "$BASE_DB" "$REBUILD_DB"; do ensure_database "$db"; DBS+=("$db"); done
REG_PORT=$(free_port)
# Authenticated, as in production: argon2 runs once per client, then the verified-credentials cache.
make_registry_credentials "$RUN_DIR/registry" "$REL/schema-registry"
SCHEMA_REGISTRY_LISTEN_ADDR="127.0.0.1:$REG_PORT" SCHEMA_REGISTRY_DATABASE_URL=$(pg_url "$REG_DB") \
    SCHEMA_REGISTRY_AUTH_FILE="$REGISTRY_AUTH_FILE" RUST_LOG=warn "$REL/schema-registry" >"$RUN_DIR/registry.log" 2>&1 &
PIDS+=("$!")
wait_for_http "http://127.0.0.1:$REG_PORT/healthz" "${PIDS[-1]}" "the registry" "$RUN_DIR/registry.log"

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT" SCHEMA_REGISTRY_URL="http://127.0.0.1:$REG_PORT"
export SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO="$REGISTRY_WRITER_USER_INFO"
AUTH_TOKEN_SECRET="bench-secret-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export AUTH_TOKEN_SECRET
export RUST_LOG=warn
DATABASE_URL=$(pg_url "$MODEL_DB") PROCESSOR_TOPIC_PARTITIONS=6 "$REL/processor" create-topics
DATABASE_URL=$(pg_url "$MODEL_DB") PROCESSOR_TOPIC_PARTITIONS=$BACKLOG_PARTITIONS \
    PROCESSOR_TOPIC=$BACKLOG_TOPIC PROCESSOR_DLQ_TOPIC=$BACKLOG_TOPIC.dlq "$REL/processor" create-topics

# Starts an ingest-api on a free port publishing to the given topic; sets STARTED_PID and STARTED_URL.
# Its POST limits are far above the load (unless set by the caller): devsim load spreads
# saturation (tens of thousands of syncs/s) over 1000 devices and users, and the backlog's
# `devsim run` sends each user's history back to back, tens of syncs/s per device where the
# defaults allow a phone's 1/s. The limiter still runs, so its cost is in the figures.
start_ingest() { # topic log
    local port
    port=$(free_port)
    INGEST_TOPIC=$1 INGEST_LISTEN_ADDR="127.0.0.1:$port" DATABASE_URL=$(pg_url "$MODEL_DB") \
        INGEST_RATE_LIMIT_DEVICE_PER_SECOND=${INGEST_RATE_LIMIT_DEVICE_PER_SECOND:-1000000} \
        INGEST_RATE_LIMIT_DEVICE_BURST=${INGEST_RATE_LIMIT_DEVICE_BURST:-1000000} \
        INGEST_RATE_LIMIT_USER_PER_SECOND=${INGEST_RATE_LIMIT_USER_PER_SECOND:-1000000} \
        INGEST_RATE_LIMIT_USER_BURST=${INGEST_RATE_LIMIT_USER_BURST:-1000000} \
        "$REL/ingest-api" >"$2" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_for_http "http://127.0.0.1:$port/readyz" "$STARTED_PID" "ingest-api ($1)" "$2"
    STARTED_URL="http://127.0.0.1:$port"
}

# ---------------------------------------------------------------------------------------------
# Ingest: saturation and latency, then the in-request baseline.
start_ingest device-synced "$RUN_DIR/ingest.log"
INGEST_PID=$STARTED_PID URL=$STARTED_URL

say "ingest saturation: as fast as possible for ${SAT_SECONDS}s"
# CPU of ingest-api and the broker around the run (utime + stime from /proc/PID/stat, CLK_TCK in
# the snapshot), with the machine's busy time; their VmRSS and VmHWM at the end. devsim reports
# its own CPU per request in its JSON (while sending, from /proc/self/stat); `times` in the
# subshell adds its whole-process CPU, set-up included, as a cross-check.
report snapshot "$RUN_DIR/saturation-start.json" "$MODEL_DB" "ingest=$INGEST_PID" "broker=$BROKER_PID"
( "$REL/devsim" load --url "$URL" --rate max --concurrency 32 --duration "${SAT_SECONDS}s" --devices 1000 \
    --json "$RUN_DIR/saturation.json"; status=$?; times >"$RUN_DIR/saturation-devsim-times.txt"; exit $status )
report snapshot "$RUN_DIR/saturation-end.json" "$MODEL_DB" "ingest=$INGEST_PID" "broker=$BROKER_PID"
SAT=$(python3 -c "import json; print(int(json.load(open('$RUN_DIR/saturation.json'))['accepted_per_s']))")
fact saturation "$SAT"
for pct in 25 50 75; do
    rate=$((SAT * pct / 100)); [[ $rate -lt 1 ]] && rate=1
    say "ingest latency at ${pct}% of saturation: ${rate}/s for ${RATE_SECONDS}s"
    "$REL/devsim" load --url "$URL" --rate "${rate}/s" --duration "${RATE_SECONDS}s" --devices 1000 --json "$RUN_DIR/rate$pct.json"
done
fact ingest_rss_kb "$(awk '/VmHWM/ {print $2}' "/proc/$INGEST_PID/status")"

# Abuse: 10 gzip bombs (about 1 MB inflating to 1 GiB) and 10 violation floods (an array of empty
# samples just under the body limit, gzipped), each with a valid device token; then ingest-api's
# memory. deploy/abuse.py writes each answer's status and time.
say "ingest abuse: 10 gzip bombs and 10 violation floods"
ABUSE_TOKEN=$("$REL/ingest-api" token --device abuse-band --user abuse-user --ttl-hours 1)
python3 deploy/abuse.py "$URL" abuse-band "$ABUSE_TOKEN" --bombs 10 --floods 10 \
    --limit "${INGEST_MAX_BODY_BYTES:-2097152}" --json "$RUN_DIR/abuse.json" \
    || say "warning: deploy/abuse.py failed; the report says what it has"
if kill -0 "$INGEST_PID" 2>/dev/null; then
    fact ingest_alive_after_abuse 1
else
    say "warning: ingest-api exited during the abuse requests; its log: $RUN_DIR/ingest.log"
    fact ingest_alive_after_abuse 0
fi
report snapshot "$RUN_DIR/abuse-end.json" "$MODEL_DB" "ingest=$INGEST_PID"

# The baseline: the same endpoint processing and writing the database inside the request.
BASE_PORT=$(free_port)
BASELINE_LISTEN_ADDR="127.0.0.1:$BASE_PORT" DATABASE_URL=$(pg_url "$BASE_DB") \
    "$REL/baseline" >"$RUN_DIR/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_for_http "http://127.0.0.1:$BASE_PORT/healthz" "$BASE_PID" "the baseline" "$RUN_DIR/baseline.log"
say "baseline saturation: as fast as possible for ${SAT_SECONDS}s"
"$REL/devsim" load --url "http://127.0.0.1:$BASE_PORT" --rate max --concurrency 32 --duration "${SAT_SECONDS}s" --devices 1000 --json "$RUN_DIR/base-saturation.report" || true
BASE_SAT=$(python3 -c "import json; print(max(1, int(json.load(open('$RUN_DIR/base-saturation.report'))['accepted_per_s'])))" 2>/dev/null || echo 1)
rate=$((SAT / 2 > 0 ? SAT / 2 : 1)); brate=$((BASE_SAT / 2 > 0 ? BASE_SAT / 2 : 1))
say "baseline at the pattern's 50% load (${rate}/s) and at its own 50% (${brate}/s)"
"$REL/devsim" load --url "http://127.0.0.1:$BASE_PORT" --rate "${rate}/s" --duration "${RATE_SECONDS}s" --devices 1000 --timeout 10s --json "$RUN_DIR/base-rate-same.report" || true
"$REL/devsim" load --url "http://127.0.0.1:$BASE_PORT" --rate "${brate}/s" --duration "${RATE_SECONDS}s" --devices 1000 --json "$RUN_DIR/base-rate-own.report" || true
stop_pids "$BASE_PID" "$INGEST_PID" # nothing reads device-synced below: an idle service less

# ---------------------------------------------------------------------------------------------
# The backlog, on its own topic so that the catch-up does not depend on the ingest runs above.
start_ingest "$BACKLOG_TOPIC" "$RUN_DIR/ingest-backlog.log"
BACKLOG_URL=$STARTED_URL
say "backlog: devsim run --users $BENCH_BACKLOG_USERS --backfill-days $BENCH_BACKLOG_DAYS --backfill-only into $BACKLOG_TOPIC"
"$REL/devsim" run --url "$BACKLOG_URL" --users "$BENCH_BACKLOG_USERS" --backfill-days "$BENCH_BACKLOG_DAYS" --backfill-only \
    --concurrency 32 --progress-every 10s --json "$RUN_DIR/backlog.json" >"$RUN_DIR/backlog.stdout" \
    || die "devsim run failed filling the backlog; logs in $RUN_DIR (ingest-backlog.log, backlog.stdout)"
# The number of records is read from the broker: the high watermark minus the log start of each
# partition (Kafka ListOffsets, spoken by bench_report.py). Not from devsim's 202s: a 503 after a
# delivery timeout or a lost answer may still have left a record, so they bound it only from below;
# they are used only if the broker cannot be asked, and only when every answer was a 202 (then
# each record is one 202: the producer is idempotent, the topic fresh).
report offsets "$KAFKA_BOOTSTRAP_SERVERS" "$BACKLOG_TOPIC" "$BACKLOG_PARTITIONS" 0 "$RUN_DIR/backlog.json" \
    >"$RUN_DIR/backlog-offsets.json" || die "could not count the records of $BACKLOG_TOPIC (see above); logs in $RUN_DIR"
BACKLOG=$(python3 -c "import json; print(json.load(open('$RUN_DIR/backlog-offsets.json'))['records'])")
[[ $BACKLOG -gt 0 ]] || die "the backlog topic $BACKLOG_TOPIC is empty after the devsim run; see $RUN_DIR/backlog.stdout"
say "backlog: $BACKLOG records in $BACKLOG_TOPIC"

# Catch-up progress from PostgreSQL: one psql session re-running the query of
# `bench_report.py watch-sql` every 0.1 s (\watch), so that polling does not fork a backend per
# poll inside the PostgreSQL CPU being measured. Sets WATCH_PID.
start_watch() { # database offsets-json dir
    report watch-sql "$BACKLOG_TOPIC" "$2" >"$3/watch.sql"
    printf '\\watch 0.1\n' >>"$3/watch.sql"
    psql -X -tA -h "$PG_HOST" -p "$PG_PORT" -U postgres -d "$1" -f "$3/watch.sql" >"$3/watch.out" 2>"$3/watch.err" &
    WATCH_PID=$!
    PIDS+=("$WATCH_PID")
    for _ in $(seq 1 100); do [[ -s "$3/watch.out" ]] && return 0; sleep 0.1; done
    die "the progress query did not answer; see $3/watch.err"
}

# Waits until every partition is applied (0) or the timeout passes (1), saying how far it got
# every 10 s. Dies when the watcher or one of the given processors exits. Sets APPLIED.
# "Applied": partition_watermarks.committed_offset (the highest offset applied) has reached the
# partition's last offset. The processor raises it in the transaction that commits the records'
# effects (crates/processor/src/apply.rs), dead-lettered records included, so this is the moment
# the last effect is visible, whichever instance applied it; sync_status counts would not do (a
# resend of a sync id adds a record but no row).
wait_applied() { # dir timeout-seconds target pid...
    local dir=$1 timeout=$2 target=$3 line behind=1 started=$SECONDS said=$SECONDS p
    shift 3
    APPLIED=0
    while :; do
        line=$(tail -n 1 "$dir/watch.out" 2>/dev/null || true)
        if [[ $line =~ ^([0-9]+)\ ([0-9]+)$ ]]; then APPLIED=${BASH_REMATCH[1]} behind=${BASH_REMATCH[2]}; fi
        if [[ $behind == 0 ]]; then return 0; fi
        kill -0 "$WATCH_PID" 2>/dev/null || die "the progress query stopped: $(cat "$dir/watch.err")"
        for p in "$@"; do
            kill -0 "$p" 2>/dev/null || die "a processor exited during the run; logs: $dir/processor-*.log"$'\n'"$(tail -n 20 "$dir"/processor-*.log)"
        done
        if ((SECONDS - started >= timeout)); then return 1; fi
        if ((SECONDS - said >= 10)); then
            say "  $APPLIED of $target records applied after $((SECONDS - started)) s"
            said=$SECONDS
        fi
        sleep 0.1
    done
}

# Applies the backlog into a fresh database with N processors of one consumer group and
# measures it. Runs in this shell (not in $(…)), so that cleanup stops what it starts.
catch_up() { # label database instances
    local db=$2 n=$3 dir="$RUN_DIR/catchup-$1" i
    local -a pids=() ports=() roles=()
    mkdir -p "$dir"
    DATABASE_URL=$(pg_url "$db") "$REL/processor" migrate >/dev/null
    start_watch "$db" "$RUN_DIR/backlog-offsets.json" "$dir"
    report snapshot "$dir/start.json" "$db" "broker=$BROKER_PID"
    for ((i = 0; i < n; i++)); do
        ports+=("$(free_port)")
        DATABASE_URL=$(pg_url "$db") PROCESSOR_TOPIC=$BACKLOG_TOPIC PROCESSOR_DLQ_TOPIC=$BACKLOG_TOPIC.dlq \
            PROCESSOR_GROUP_ID="bench-$db" PROCESSOR_OPS_ADDR="127.0.0.1:${ports[i]}" \
            "$REL/processor" >"$dir/processor-$i.log" 2>&1 &
        pids+=("$!")
        PIDS+=("$!")
        roles+=("processor=$!")
    done
    wait_applied "$dir" "$BENCH_CATCHUP_TIMEOUT" "$BACKLOG" "${pids[@]}" \
        || die "$n processor(s) applied $APPLIED of $BACKLOG records in ${BENCH_CATCHUP_TIMEOUT}s (BENCH_CATCHUP_TIMEOUT); logs in $dir"
    report snapshot "$dir/end.json" "$db" "broker=$BROKER_PID" "${roles[@]}"
    for ((i = 0; i < n; i++)); do
        curl -fsS "http://127.0.0.1:${ports[i]}/metrics" >"$dir/metrics-$i.txt" \
            || say "warning: no metrics from processor $i (see $dir/processor-$i.log)"
    done
    stop_pids "$WATCH_PID"
    stop_pids "${pids[@]}"
}

say "processor catch-up of $BACKLOG records with one instance"
catch_up 1 "$MODEL_DB" 1
# Sizes before anything else writes to it. pg_total_relation_size: table, indexes and TOAST.
psql_db "$MODEL_DB" -F '|' -c "SELECT s.relname, pg_total_relation_size(s.relid), pg_relation_size(s.relid),
        pg_indexes_size(s.relid), coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0)
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid ORDER BY 2 DESC" >"$RUN_DIR/catchup-1/tables.txt"
psql_db "$MODEL_DB" -F '|' >"$RUN_DIR/catchup-1/rows.txt" <<'SQL'
SELECT format('SELECT %L, count(*) FROM %I.%I', relname, schemaname, relname) FROM pg_stat_user_tables \gexec
SQL
say "processor catch-up of $BACKLOG records with two instances"
catch_up 2 "$MODEL_DB2" 2

# ---------------------------------------------------------------------------------------------
# End to end: the one-instance database's processor (caught up) while ingest takes 50% of its
# saturation on the backlog topic; the freshness histogram's change over the load.
E2E_DIR="$RUN_DIR/e2e"
mkdir -p "$E2E_DIR"
E2E_RATE=$((SAT / 2 > 0 ? SAT / 2 : 1))
say "end to end: freshness at 50% of ingest saturation (${E2E_RATE}/s for ${RATE_SECONDS}s) with one processor"
OPS_PORT=$(free_port)
DATABASE_URL=$(pg_url "$MODEL_DB") PROCESSOR_TOPIC=$BACKLOG_TOPIC PROCESSOR_DLQ_TOPIC=$BACKLOG_TOPIC.dlq \
    PROCESSOR_GROUP_ID="bench-$MODEL_DB" PROCESSOR_OPS_ADDR="127.0.0.1:$OPS_PORT" \
    "$REL/processor" >"$E2E_DIR/processor-0.log" 2>&1 &
E2E_PID=$!
PIDS+=("$E2E_PID")
wait_for_http "http://127.0.0.1:$OPS_PORT/readyz" "$E2E_PID" "the processor" "$E2E_DIR/processor-0.log"
# Settled: the group's committed offsets are at the end of every partition (librdkafka reports the
# lag every 5 s), so no record of the backlog is redelivered into the histogram during the load.
for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$OPS_PORT/metrics" >"$E2E_DIR/metrics-settle.txt" 2>/dev/null || true
    read -r reported behind < <(awk -v t="topic=\"$BACKLOG_TOPIC\"" \
        'index($0, "processor_consumer_lag{") == 1 && index($0, t) { n++; if ($NF != 0) b++ } END { print n + 0, b + 0 }' \
        "$E2E_DIR/metrics-settle.txt")
    if [[ $reported -ge $BACKLOG_PARTITIONS && $behind == 0 ]]; then break; fi
    sleep 0.5
done
[[ $reported -ge $BACKLOG_PARTITIONS && $behind == 0 ]] || say "warning: the processor's consumer lag did not settle to 0 within 30 s"
curl -fsS "http://127.0.0.1:$OPS_PORT/metrics" >"$E2E_DIR/metrics-before.txt"
# Live updates: a stream open for each of the load's 1000 users while it runs, timing each sync's
# event from the processor's transaction to its arrival (`devsim watch`, sse.delivery_p99_ms).
"$REL/devsim" watch --url "$BACKLOG_URL" --load-users 1000 --duration "$((RATE_SECONDS + 15))s" \
    --json "$E2E_DIR/watch.json" >"$E2E_DIR/watch.stdout" 2>"$E2E_DIR/watch.log" &
WATCH_STREAMS_PID=$!
PIDS+=("$WATCH_STREAMS_PID")
for _ in $(seq 1 100); do grep -q "streams open" "$E2E_DIR/watch.log" 2>/dev/null && break; sleep 0.1; done
grep -q "streams open" "$E2E_DIR/watch.log" || say "warning: devsim watch did not open its streams within 10 s (see $E2E_DIR/watch.log)"
"$REL/devsim" load --url "$BACKLOG_URL" --rate "${E2E_RATE}/s" --duration "${RATE_SECONDS}s" --devices 1000 --json "$E2E_DIR/e2e-load.json"
LOAD_END=$(date +%s.%N)
report offsets "$KAFKA_BOOTSTRAP_SERVERS" "$BACKLOG_TOPIC" "$BACKLOG_PARTITIONS" "$BACKLOG" "$E2E_DIR/e2e-load.json" \
    >"$E2E_DIR/offsets.json" || die "could not count the records of $BACKLOG_TOPIC after the load (see above)"
E2E_RECORDS=$(python3 -c "import json; print(json.load(open('$E2E_DIR/offsets.json'))['records'])")
start_watch "$MODEL_DB" "$E2E_DIR/offsets.json" "$E2E_DIR"
if wait_applied "$E2E_DIR" "$BENCH_E2E_DRAIN_TIMEOUT" "$E2E_RECORDS" "$E2E_PID"; then
    fact e2e_caught_up 1
else
    say "warning: the processor had applied $APPLIED of $E2E_RECORDS records ${BENCH_E2E_DRAIN_TIMEOUT}s after the load (BENCH_E2E_DRAIN_TIMEOUT)"
    fact e2e_caught_up 0
fi
fact e2e_drain_s "$(awk -v a="$LOAD_END" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
fact e2e_rate "$E2E_RATE"
curl -fsS "http://127.0.0.1:$OPS_PORT/metrics" >"$E2E_DIR/metrics-after.txt"
stop_pids "$WATCH_PID" "$E2E_PID"
wait "$WATCH_STREAMS_PID" || say "warning: devsim watch failed (see $E2E_DIR/watch.log)"

# ---------------------------------------------------------------------------------------------
# Rebuild from the log: every record of the backlog topic (the backlog and the end-to-end load)
# into a new database, with `processor rebuild`; its own CPU from time(1), PostgreSQL's between
# snapshots.
RB_DIR="$RUN_DIR/rebuild"
mkdir -p "$RB_DIR"
say "rebuild: processor rebuild of $BACKLOG_TOPIC into a new database"
report snapshot "$RB_DIR/start.json" "$REBUILD_DB" "broker=$BROKER_PID"
PROCESSOR_TOPIC=$BACKLOG_TOPIC PROCESSOR_DLQ_TOPIC=$BACKLOG_TOPIC.dlq \
    /usr/bin/time -f '%e %U %S' -o "$RB_DIR/time.txt" \
    "$REL/processor" rebuild --database "$(pg_url "$REBUILD_DB")" --group "bench-rebuild-$$" \
    >"$RB_DIR/out.txt" 2>"$RB_DIR/processor.log" || die "processor rebuild failed; see $RB_DIR/processor.log"
report snapshot "$RB_DIR/end.json" "$REBUILD_DB" "broker=$BROKER_PID"
cat "$RB_DIR/out.txt"

# Recompute: every row of the one-instance database marked as an older model version, then
# `processor recompute` brings them back (recompute.user_days_per_s).
RC_DIR="$RUN_DIR/recompute"
mkdir -p "$RC_DIR"
say "recompute: processor recompute of every user of the one-instance database"
psql_db "$MODEL_DB" -c "UPDATE daily_metrics SET model_version = model_version - 1" \
    -c "UPDATE rolling_metrics SET model_version = model_version - 1" -c "VACUUM ANALYZE daily_metrics, rolling_metrics"
report snapshot "$RC_DIR/start.json" "$MODEL_DB" "broker=$BROKER_PID"
DATABASE_URL=$(pg_url "$MODEL_DB") PROCESSOR_TOPIC=$BACKLOG_TOPIC /usr/bin/time -f '%e %U %S' -o "$RC_DIR/time.txt" \
    "$REL/processor" recompute >"$RC_DIR/out.txt" 2>"$RC_DIR/processor.log" || die "processor recompute failed; see $RC_DIR/processor.log"
report snapshot "$RC_DIR/end.json" "$MODEL_DB" "broker=$BROKER_PID"
cat "$RC_DIR/out.txt"

say "writing docs/benchmarks.md and docs/benchmarks.json"
report render "$RUN_DIR" docs/benchmarks.md docs/benchmarks.json
echo "wrote docs/benchmarks.md and docs/benchmarks.json ($BENCH_COMMAND)"
say "writing docs/capacity.md from docs/benchmarks.json"
python3 deploy/capacity.py docs/benchmarks.json >docs/capacity.md
echo "wrote docs/capacity.md"
