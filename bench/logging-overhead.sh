#!/usr/bin/env bash
# Same-run cost of the access log: switchyard with the access log on
# (written to a file, as in production) and off, in front of the same
# backend, plus the backend direct. Interleaved rounds, medians, ratios.
# Metrics are always on (atomic counters), so "off" still counts them.
#
# Usage: bench/logging-overhead.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-10}
setup
echo 'return { access_log = { enabled = false } }' > "$TMP/off.lua"
run demo /dev/null --demo --listen 127.0.0.1:18999 --workers 1
run logged "$TMP/access.log" --listen 127.0.0.1:18083 --backend 127.0.0.1:9001
run quiet /dev/null --listen 127.0.0.1:18084 --backend 127.0.0.1:9001 --config "$TMP/off.lua"
wait_ready 9001 18083 18084
compare "$ROUNDS" "$SECS" access-log-off direct=9001 access-log-on=18083 access-log-off=18084
echo "$(wc -l < "$TMP/access.log") access-log lines written"
