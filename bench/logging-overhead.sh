#!/usr/bin/env bash
# Same-run cost of the access log and the per-request telemetry:
# switchyard with the access log on (written to a file, as in production)
# and off, in front of the same backend, plus the backend direct.
# Interleaved rounds, medians, ratios. Metrics are always on (atomic
# counters), so "off" still counts them.
#
# BEFORE=path/to/old/switchyard adds that binary with the log on and off
# ("before-on", "before-off"): the ratios on/before-on and off/before-off
# are what newer access-log fields and metrics cost (or save).
#
# Usage: [BEFORE=...] bench/logging-overhead.sh [rounds] [seconds]
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
TARGETS=(direct=9001 access-log-on=18083 access-log-off=18084)
PORTS=(9001 18083 18084)
if [ -n "${BEFORE:-}" ]; then
  BIN=$BEFORE run before-logged "$TMP/before-access.log" --listen 127.0.0.1:18085 --backend 127.0.0.1:9001
  BIN=$BEFORE run before-quiet /dev/null --listen 127.0.0.1:18086 --backend 127.0.0.1:9001 --config "$TMP/off.lua"
  TARGETS+=(before-on=18085 before-off=18086)
  PORTS+=(18085 18086)
fi
wait_ready "${PORTS[@]}"
compare "$ROUNDS" "$SECS" access-log-off "${TARGETS[@]}"
echo "$(wc -l < "$TMP/access.log") access-log lines written"
[ -n "${BEFORE:-}" ] && echo "$(wc -l < "$TMP/before-access.log") access-log lines written (before)"
echo "one access-log line now: $(tail -n 1 "$TMP/access.log" | cut -c1-400)"
