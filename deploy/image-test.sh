#!/usr/bin/env bash
# `make image-test`: runs the images `make images` built, with the container engine.
#
#   1. each image: runs as a non-root user (10001), with a read-only root file system, and its
#      binary's --help works; its size is reported;
#   2. the whole system from images: the broker (nisshi, memory storage) and PostgreSQL on the
#      host, the schema registry, the processor and ingest-api in containers, each read-only,
#      non-root, with a tmpfs /tmp. Every container's /healthz answers and its image HEALTHCHECK
#      passes; a standard sync posted to ingest-api's port is processed (GET /v1/syncs/{id} says
#      `processed`); `stop` (SIGTERM) ends each container with exit code 0.
#
# The containers share the host's network (--network host): the broker advertises 127.0.0.1, which
# only then is the same address inside and outside, and no bridge or port forwarding is needed.
# Everything it starts is stopped and its databases dropped, also when a check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source deploy/lib.sh
source deploy/containers.sh

START=$SECONDS
ensure_container_engine
ensure_nisshi
ensure_postgres
for service in "${SERVICES[@]}"; do
    "$ENGINE" image inspect "$(image_name "$service")" >/dev/null 2>&1 \
        || die "image $(image_name "$service") is missing; run 'make images' first"
done

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fitness-image-test.XXXXXX")
SUFFIX=$$
APP_DB="image_test_$SUFFIX" REGISTRY_DB="image_test_registry_$SUFFIX"
CONTAINERS=() BROKER_PID="" PASSED=0 FAILED=0

cleanup() {
    local status=$?
    trap '' INT TERM PIPE
    set +e
    local c
    for c in "${CONTAINERS[@]}"; do "$ENGINE" rm -f -t 5 "$c" >/dev/null 2>&1; done
    stop_pids "$BROKER_PID"
    drop_database "$APP_DB"
    drop_database "$REGISTRY_DB"
    if [[ $status -ne 0 ]]; then echo "image-test logs kept in $RUN_DIR" >&2; else rm -rf "$RUN_DIR"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASSED=$((PASSED + 1)); printf '  ok    %s\n' "$*"; }
not_ok() { FAILED=$((FAILED + 1)); printf '  FAIL  %s\n' "$*"; }
# check NAME CMD...: CMD must succeed.
check() { local name=$1; shift; if "$@" >"$RUN_DIR/check.log" 2>&1; then ok "$name"; else not_ok "$name"; sed 's/^/        /' "$RUN_DIR/check.log" | tail -n 20; fi; }

# The flags every container of this test runs with: what the charts' securityContext enforces.
HARDENED=(--read-only --tmpfs /tmp:rw,size=64m,mode=1777 --cap-drop ALL --security-opt no-new-privileges)

say "each image: user, read-only root, --help"
for service in "${SERVICES[@]}"; do
    image=$(image_name "$service")
    user=$("$ENGINE" image inspect --format '{{.Config.User}}' "$image")
    check "$service: image user is $user (numeric, not root)" test "$user" = "10001:10001"
    check "$service: runs as uid 10001 with a read-only root" \
        bash -c "[[ \$('$ENGINE' run --rm ${HARDENED[*]} --entrypoint /usr/bin/id '$image' -u) == 10001 ]]"
    check "$service: the root file system is read-only" \
        bash -c "! '$ENGINE' run --rm ${HARDENED[*]} --entrypoint /usr/bin/touch '$image' /usr/local/bin/x"
    check "$service: $service --help" bash -c "'$ENGINE' run --rm ${HARDENED[*]} '$image' --help | grep -qi usage"
done

say "the whole system from images"
BROKER_PORT=$(free_port) REGISTRY_PORT=$(free_port) INGEST_PORT=$(free_port) OPS_PORT=$(free_port)
ensure_database "$APP_DB"
ensure_database "$REGISTRY_DB"
start_broker "$BROKER_PORT" "memory://nisshi/" "$RUN_DIR/broker.log"
make_registry_credentials "$RUN_DIR/registry" "$CARGO_TARGET_DIR/release/schema-registry"
AUTH_TOKEN_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$APP_DB"
COMMON=(--network host -e RUST_LOG=info -e LOG_FORMAT=json
    -e KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$BROKER_PORT"
    -e SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
    -e DATABASE_URL="$DATABASE_URL")

registry=fitness-image-test-schema-registry-$SUFFIX
processor=fitness-image-test-processor-$SUFFIX
ingest=fitness-image-test-ingest-api-$SUFFIX
CONTAINERS=("$registry" "$processor" "$ingest")
# run_container NAME IMAGE-AND-ARGS...: starts a detached hardened container.
run_container() {
    local name=$1; shift
    "$ENGINE" run -d --name "$name" "${HARDENED[@]}" "$@" >/dev/null || die "starting container $name failed"
}

# wait_healthz NAME URL: waits for URL to answer 200 while the container runs.
wait_healthz() {
    local name=$1 url=$2
    for _ in $(seq 1 120); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        [[ $("$ENGINE" inspect --format '{{.State.Running}}' "$name") == true ]] || break
        sleep 0.5
    done
    "$ENGINE" logs "$name" 2>&1 | tail -n 30
    return 1
}

# The registry runs as 10001 and reads its credentials file, kept 0600 as a mounted Secret would be
# (fsGroup does that in the charts): give the file to 10001, inside podman's user namespace when
# the engine runs rootless.
if [[ $ENGINE == podman && $(id -u) != 0 ]]; then
    podman unshare chown 10001:10001 "$REGISTRY_AUTH_FILE"
else
    chown 10001:10001 "$REGISTRY_AUTH_FILE"
fi
run_container "$registry" \
    -v "$RUN_DIR/registry/registry-users.properties:/etc/schema-registry/users.properties:ro,Z" \
    -e SCHEMA_REGISTRY_LISTEN_ADDR="127.0.0.1:$REGISTRY_PORT" \
    -e SCHEMA_REGISTRY_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$REGISTRY_DB" \
    -e SCHEMA_REGISTRY_AUTH_FILE=/etc/schema-registry/users.properties \
    --network host "$(image_name schema-registry)"
check "schema-registry container: /healthz answers" wait_healthz "$registry" "http://127.0.0.1:$REGISTRY_PORT/healthz"

processor_image=$(image_name processor)
check "processor container: create-topics" "$ENGINE" run --rm "${HARDENED[@]}" "${COMMON[@]}" "$processor_image" create-topics
check "processor container: migrate" "$ENGINE" run --rm "${HARDENED[@]}" "${COMMON[@]}" "$processor_image" migrate
# processor=debug: the line per committed event, which carries the event's trace id, is debug.
run_container "$processor" "${COMMON[@]}" -e RUST_LOG=info,processor=debug \
    -e SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO="$REGISTRY_READER_USER_INFO" \
    -e PROCESSOR_OPS_ADDR="127.0.0.1:$OPS_PORT" "$processor_image" run
check "processor container: /healthz answers" wait_healthz "$processor" "http://127.0.0.1:$OPS_PORT/healthz"

ingest_image=$(image_name ingest-api)
run_container "$ingest" "${COMMON[@]}" \
    -e SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO="$REGISTRY_WRITER_USER_INFO" \
    -e AUTH_TOKEN_SECRET="$AUTH_TOKEN_SECRET" \
    -e INGEST_LISTEN_ADDR="127.0.0.1:$INGEST_PORT" "$ingest_image"
check "ingest-api container: /healthz answers" wait_healthz "$ingest" "http://127.0.0.1:$INGEST_PORT/healthz"
check "ingest-api container: /readyz answers (broker and registry reached)" \
    wait_healthz "$ingest" "http://127.0.0.1:$INGEST_PORT/readyz"

for c in "$registry" "$processor" "$ingest"; do
    check "${c%-"$SUFFIX"}: the image's HEALTHCHECK passes" "$ENGINE" healthcheck run "$c"
done

say "a standard sync through the ingest-api container"
cli() { "$ENGINE" run --rm "${HARDENED[@]}" -e AUTH_TOKEN_SECRET="$AUTH_TOKEN_SECRET" "$ingest_image" "$@"; }
DEVICE_TOKEN=$(cli token --device image-test-band --user image-test-user)
USER_TOKEN=$(cli token --user image-test-user)
cli example-sync >"$RUN_DIR/sync.json"
curl -sS -o "$RUN_DIR/accepted.json" -w '%{http_code}' -H "Authorization: Bearer $DEVICE_TOKEN" \
    -H 'Content-Type: application/json' -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' \
    --data-binary @"$RUN_DIR/sync.json" "http://127.0.0.1:$INGEST_PORT/v1/devices/image-test-band/syncs" >"$RUN_DIR/post.status" || true
check "POST /v1/devices/{id}/syncs is accepted (202)" test "$(cat "$RUN_DIR/post.status")" = 202
SYNC_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("sync_id",""))' "$RUN_DIR/accepted.json" 2>/dev/null || true)
TOKEN_PARAM=$(python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(open(sys.argv[1])).get("consistency_token","")))' "$RUN_DIR/accepted.json" 2>/dev/null || true)
sync_processed() {
    local status
    for _ in $(seq 1 20); do
        curl -sS -H "Authorization: Bearer $USER_TOKEN" \
            "http://127.0.0.1:$INGEST_PORT/v1/syncs/$SYNC_ID?consistency_token=$TOKEN_PARAM&wait=5000" >"$RUN_DIR/status.json" || true
        status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status",""))' "$RUN_DIR/status.json" 2>/dev/null || true)
        [[ $status == processed ]] && return 0
        [[ $status == failed ]] && break
        sleep 0.5
    done
    cat "$RUN_DIR/status.json"
    return 1
}
check "the sync is processed by the processor container (GET /v1/syncs/$SYNC_ID)" sync_processed
check "the processor container logs the sync's trace id" \
    bash -c "'$ENGINE' logs '$processor' 2>&1 | grep -q '0af7651916cd43dd8448eb211c80319c'"

say "stopping the containers (SIGTERM drains them)"
for c in "$ingest" "$processor" "$registry"; do
    "$ENGINE" stop -t 20 "$c" >/dev/null 2>&1 || true
    check "${c%-"$SUFFIX"}: exits 0 on SIGTERM" test "$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$c")" = 0
done
for c in "${CONTAINERS[@]}"; do "$ENGINE" logs "$c" >"$RUN_DIR/${c%-"$SUFFIX"}.log" 2>&1 || true; done

echo
echo "image sizes ($ENGINE):"
report_image_sizes
echo "took $((SECONDS - START))s"
echo "image-test: $PASSED passed, $FAILED failed"
((FAILED == 0))
