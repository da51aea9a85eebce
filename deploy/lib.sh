# Shared shell functions for run-stack.sh and test-stack.sh. Source it; it defines, never runs.

NISSHI_VERSION=0.8.1
FITNESS_TOOLS_DIR=${FITNESS_TOOLS_DIR:-$HOME/.cache/fitness/tools}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/fitness/target}
export FITNESS_TOOLS_DIR CARGO_TARGET_DIR
NISSHI_BIN="$FITNESS_TOOLS_DIR/bin/nisshi"
DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_HOST=127.0.0.1
PG_PORT=${PG_PORT:-5432}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Installs nisshi (the embedded Kafka-compatible broker) once into the tools cache.
ensure_nisshi() {
    if [[ -x "$NISSHI_BIN" ]] && "$NISSHI_BIN" --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
        return 0
    fi
    command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup, then run this again"
    say "installing nisshi $NISSHI_VERSION into $FITNESS_TOOLS_DIR (once; a cold build takes 10-13 minutes)"
    # --ignore-rust-version: a dependency declares rustc 1.96 but builds on 1.95 (platform-facts.md).
    cargo install "nisshi@$NISSHI_VERSION" --locked --ignore-rust-version --no-default-features \
        --features dynostore,postgres --root "$FITNESS_TOOLS_DIR" \
        || die "installing nisshi failed; see the cargo output above, then run 'make tools' again"
}

# Makes sure PostgreSQL answers on $PG_HOST:$PG_PORT: the machine's server when it runs, else a
# private cluster under the tools cache when the binaries exist, else says how to install it.
ensure_postgres() {
    if pg_answers; then return 0; fi
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
        die "PostgreSQL is not answering on $PG_HOST:$PG_PORT and no server binaries were found; install them with 'apt-get install postgresql' (or start your server), then run this again"
    fi
    local data="$FITNESS_TOOLS_DIR/pgdata"
    if [[ ! -f "$data/PG_VERSION" ]]; then
        say "creating a private PostgreSQL cluster in $data"
        mkdir -p "$data"
        local owner=()
        if [[ $(id -u) == 0 ]]; then chown -R postgres: "$data"; owner=(runuser -u postgres --); fi
        "${owner[@]}" "$bindir/initdb" -D "$data" -U postgres --auth=trust >/dev/null || die "initdb failed"
    fi
    say "starting the private PostgreSQL cluster on port $PG_PORT"
    local owner=()
    [[ $(id -u) == 0 ]] && owner=(runuser -u postgres --)
    "${owner[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -o "-p $PG_PORT -k /tmp -c listen_addresses=$PG_HOST" -w start >/dev/null \
        || die "the private PostgreSQL cluster did not start; see $data/server.log"
}

# Headless Chromium (Debian's package) for the dashboard's browser test.
ensure_chromium() {
    if command -v chromium >/dev/null; then return 0; fi
    command -v apt-get >/dev/null || die "chromium is missing and apt-get is not available; install Chromium and set CHROMIUM_BIN"
    say "installing Debian's chromium for the dashboard test (once)"
    (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }) \
        || die "installing chromium failed; run 'apt-get update && apt-get install -y chromium' and try again"
}

pg_answers() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
    else
        (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
    fi
}

psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres -d postgres "$@"; }

# Creates a database if it does not exist.
ensure_database() {
    local name=$1
    if [[ -z $(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'") ]]; then
        psql_admin -c "CREATE DATABASE \"$name\"" || die "could not create database $name"
    fi
}

drop_database() { psql_admin -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true; }

# A free TCP port on loopback, chosen by the kernel.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until a port accepts connections, failing early if the process died.
wait_for_port() {
    local port=$1 pid=$2 what=$3 log=$4
    for _ in $(seq 1 300); do
        port_open "$port" && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited during start-up; its log: $log"$'\n'"$(tail -n 20 "$log" 2>/dev/null)"
        sleep 0.1
    done
    die "$what did not listen on port $port within 30 s; its log: $log"
}

# Waits until an HTTP endpoint answers 2xx.
wait_for_http() {
    local url=$1 pid=$2 what=$3 log=$4
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || die "$what exited during start-up; its log: $log"$'\n'"$(tail -n 20 "$log" 2>/dev/null)"
        sleep 0.1
    done
    die "$what did not answer $url within 60 s; its log: $log"
}

# Runs a command in the background with its output (stdout and stderr) in LOG; sets
# SPAWNED_PID to the command's own pid. With LOG_MAX_BYTES set, the output goes through
# deploy/rotate_log.py, which caps LOG at that size and keeps LOG_KEEP (default 3) rotated files.
# The rotator is a separate process in its own session: Ctrl-C does not reach it, and it exits
# when the command's output ends, so it neither outlives the command nor needs stopping.
spawn_logged() {
    local log=$1; shift
    if [[ -n ${LOG_MAX_BYTES:-} ]]; then
        "$@" > >(exec setsid python3 "$DEPLOY_DIR/rotate_log.py" "$log" --max-bytes "$LOG_MAX_BYTES" --keep "${LOG_KEEP:-3}") 2>&1 &
    else
        "$@" >"$log" 2>&1 &
    fi
    SPAWNED_PID=$!
}

# Starts the broker on loopback; storage is memory://nisshi/ or a postgres:// URL.
start_broker() {
    local port=$1 storage=$2 log=$3
    # The broker gets its own log filter, never the services' RUST_LOG: at info nisshi logs the
    # contents of every fetch response (gigabytes a minute while a consumer keeps up).
    spawn_logged "$log" ${BROKER_LAUNCHER:-} env RUST_LOG="${BROKER_RUST_LOG:-warn}" "$NISSHI_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$storage" \
        --group-initial-rebalance-delay 0s
    BROKER_PID=$SPAWNED_PID
    wait_for_port "$port" "$BROKER_PID" "the broker (nisshi)" "$log"
}

# Stops the given PIDs: TERM, a grace period, then KILL.
stop_pids() {
    local pids=() p
    for p in "$@"; do [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null && pids+=("$p"); done
    [[ ${#pids[@]} -eq 0 ]] && return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 100); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && return 0
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
}
