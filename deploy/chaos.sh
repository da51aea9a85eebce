#!/usr/bin/env bash
# `make chaos`: the chaos suite of issue 14 against a private stack (broker with PostgreSQL
# storage as `make run` has it, registry, ingest-api, processor, on ports of its own and databases
# it creates and drops). deploy/chaos.py runs the phases and checks the model; see its docstring.
#
#   deploy/chaos.sh            full form: release binaries; writes docs/reliability.md and .json
#   deploy/chaos.sh --short    short form for `make test`: debug binaries, every phase once with
#                              small counts; writes its report into the run directory only
#   deploy/chaos.sh --soak 30m soak (`make chaos SOAK=30m`): half the load, no faults, RSS and open
#                              files of each service over time; writes the soak section of the docs
#
# Exit status: 0 when nothing was lost or double counted and the DLQ holds exactly the poison
# records (recovery times are reported, not enforced); 1 when one of those failed; 2 when the
# suite itself could not run. Knobs (environment): CHAOS_RATE, CHAOS_DEVICES, CHAOS_FAULT_SECONDS,
# CHAOS_PROCESSOR_KILLS, CHAOS_INGEST_KILLS, CHAOS_STORM_CYCLES, CHAOS_POISON_SETS,
# CHAOS_LOG_RECORDS, CHAOS_LOG_LIMIT_MB, CHAOS_DRAIN_TIMEOUT_S, CHAOS_SOAK_RATE, CHAOS_SEED.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh

FORM=full SOAK=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --short) FORM=short ;;
        --soak) SOAK=${2:?--soak needs a duration such as 30m}; shift ;;
        *) die "unknown option $1; usage: deploy/chaos.sh [--short | --soak DURATION]" ;;
    esac
    shift
done
[[ -z $SOAK || $SOAK =~ ^[0-9]+(\.[0-9]+)?[smh]?$ ]] || die "SOAK=$SOAK: give a duration such as 90s, 30m or 1h"

# Figures of each form: the issue's for the full one, small counts for CI.
if [[ $FORM == short ]]; then
    DEFAULTS=(CHAOS_RATE=20 CHAOS_FAULT_SECONDS=10 CHAOS_PROCESSOR_KILLS=1 CHAOS_INGEST_KILLS=1 CHAOS_STORM_CYCLES=1
        CHAOS_POISON_SETS=1 CHAOS_LOG_RECORDS=10000 CHAOS_LOG_LIMIT_MB=5 CHAOS_DRAIN_TIMEOUT_S=60)
    PROFILE=debug
else
    DEFAULTS=(CHAOS_RATE=100 CHAOS_FAULT_SECONDS=10 CHAOS_PROCESSOR_KILLS=20 CHAOS_INGEST_KILLS=5 CHAOS_STORM_CYCLES=10
        CHAOS_POISON_SETS=3 CHAOS_LOG_RECORDS=10000 CHAOS_LOG_LIMIT_MB=5 CHAOS_DRAIN_TIMEOUT_S=180)
    PROFILE=release
fi
OVERRIDES=()
for knob in "${DEFAULTS[@]}" CHAOS_DEVICES=100 CHAOS_SEED=1; do
    name=${knob%%=*} default=${knob#*=}
    if [[ -n ${!name:-} && ${!name} != "$default" ]]; then OVERRIDES+=("$name=${!name}"); fi
    export "$name=${!name:-$default}"
done
[[ $CHAOS_RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "CHAOS_RATE=$CHAOS_RATE: give syncs per second"
if [[ -n $SOAK ]]; then
    CHAOS_COMMAND="make chaos SOAK=$SOAK"
elif [[ $FORM == short ]]; then
    CHAOS_COMMAND="deploy/chaos.sh --short"
else
    CHAOS_COMMAND="make chaos"
fi
[[ ${#OVERRIDES[@]} -gt 0 ]] && CHAOS_COMMAND="${OVERRIDES[*]} $CHAOS_COMMAND"
export CHAOS_COMMAND NISSHI_VERSION

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fitness-chaos.XXXXXX")
export CHAOS_RUN_DIR=$RUN_DIR
export CHAOS_MODEL_DB="chaos_model_$$" CHAOS_REGISTRY_DB="chaos_registry_$$" CHAOS_BROKER_DB="chaos_broker_$$"
ORCHESTRATOR_PID=""

# Everything the orchestrator started is listed in $RUN_DIR/pids; it stops them itself, and this
# stops whatever is left if it could not (killed, crashed). Only pids still running one of the
# stack's programs are touched.
cleanup() {
    local status=$?
    trap '' INT TERM PIPE
    set +e
    if [[ -n $ORCHESTRATOR_PID ]] && kill -0 "$ORCHESTRATOR_PID" 2>/dev/null; then
        kill -TERM "$ORCHESTRATOR_PID"
        for _ in $(seq 1 300); do kill -0 "$ORCHESTRATOR_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    local pid left=()
    if [[ -f $RUN_DIR/pids ]]; then
        while read -r pid; do
            if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'nisshi|schema-registry|processor|ingest-api|devsim|start_broker'; then
                left+=("$pid")
            fi
        done <"$RUN_DIR/pids"
    fi
    [[ ${#left[@]} -gt 0 ]] && stop_pids "${left[@]}"
    for db in "$CHAOS_MODEL_DB" "$CHAOS_REGISTRY_DB" "$CHAOS_BROKER_DB"; do drop_database "$db"; done
    if [[ $status -eq 0 && $FORM == full ]]; then
        rm -rf "$RUN_DIR"
    else
        echo "chaos: logs, ledgers and the report are in $RUN_DIR" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_nisshi
ensure_postgres
command -v psql >/dev/null || die "psql is missing; install the PostgreSQL client (apt-get install postgresql-client)"

say "building the $PROFILE binaries and the chaos Kafka tool"
CARGO_PROFILE=()
[[ $PROFILE == release ]] && CARGO_PROFILE=(--release)
cargo build "${CARGO_PROFILE[@]}" --locked -p ingest-api -p processor -p schema-registry -p devsim --bins
cargo build "${CARGO_PROFILE[@]}" --locked -p testkit --example chaos_kafka
export CHAOS_BIN_DIR="$CARGO_TARGET_DIR/$PROFILE"
export CHAOS_KAFKA_TOOL="$CARGO_TARGET_DIR/$PROFILE/examples/chaos_kafka"

for db in "$CHAOS_MODEL_DB" "$CHAOS_REGISTRY_DB" "$CHAOS_BROKER_DB"; do ensure_database "$db"; done
for name in BROKER REGISTRY REGISTRY_PROXY PG_PROXY INGEST OPS1 OPS2 OPS3; do
    export "CHAOS_${name}_PORT=$(free_port)"
done
export PG_HOST PG_PORT
# The chaos registry is authenticated like production; its own users, in the run directory.
make_registry_credentials "$RUN_DIR/registry" "$CHAOS_BIN_DIR/schema-registry"
export CHAOS_REGISTRY_AUTH_FILE="$REGISTRY_AUTH_FILE" SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO="$REGISTRY_WRITER_USER_INFO"
AUTH_TOKEN_SECRET="chaos-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
export AUTH_TOKEN_SECRET
# As `make run`: services at info, the broker at BROKER_RUST_LOG (default warn), every log through
# the rotator. The logs phase checks that this stays small.
# The loads spread CHAOS_RATE syncs/s (and the logs phase as many as it can) over CHAOS_DEVICES
# devices, one user each, with retries: 1/s and more per device, the default POST limits' pace.
# Chaos measures recovery from faults, not throttling: limits far above the load (the limiter
# still runs).
export INGEST_RATE_LIMIT_DEVICE_PER_SECOND=${INGEST_RATE_LIMIT_DEVICE_PER_SECOND:-100000}
export INGEST_RATE_LIMIT_DEVICE_BURST=${INGEST_RATE_LIMIT_DEVICE_BURST:-100000}
export INGEST_RATE_LIMIT_USER_PER_SECOND=${INGEST_RATE_LIMIT_USER_PER_SECOND:-100000}
export INGEST_RATE_LIMIT_USER_BURST=${INGEST_RATE_LIMIT_USER_BURST:-100000}
export RUST_LOG=${RUST_LOG:-info} LOG_MAX_BYTES=${LOG_MAX_BYTES:-10000000} LOG_KEEP=${LOG_KEEP:-3}

if [[ $FORM == full ]]; then
    export CHAOS_JSON_OUT=docs/reliability.json CHAOS_MD_OUT=docs/reliability.md
else
    export CHAOS_JSON_OUT="$RUN_DIR/reliability.json"
fi
ORCH_ARGS=()
[[ $FORM == short ]] && ORCH_ARGS+=(--short)
[[ -n $SOAK ]] && ORCH_ARGS+=(--soak "$SOAK")
[[ $FORM == short ]] && python3 deploy/rotate_log_test.py

say "chaos ($CHAOS_COMMAND): logs in $RUN_DIR/logs"
python3 deploy/chaos.py "${ORCH_ARGS[@]}" &
ORCHESTRATOR_PID=$!
status=0
wait "$ORCHESTRATOR_PID" || status=$?
ORCHESTRATOR_PID=""
exit "$status"
