#!/usr/bin/env bash
# Demo traffic for `make run`: one device posts a standard sync every INTERVAL seconds through
# the real endpoint. Usage: demo-feed.sh INGEST_BIN URL DEVICE_TOKEN [INTERVAL]
set -u
bin=$1 url=$2 token=$3 interval=${4:-5}
n=0
while true; do
    n=$((n + 1))
    "$bin" example-sync | curl -sS -o /dev/null -w "demo sync $n: HTTP %{http_code}\n" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        --data-binary @- "$url" || true
    sleep "$interval"
done
