#!/usr/bin/env bash
# Same-run cost of the access log: switchyard with the access log on
# (written to a file, as in production) and off, in front of the same
# backend, plus the backend direct. Interleaved rounds, medians, ratios.
# Metrics are always on (atomic counters), so "off" still counts them.
#
# Usage: bench/logging-overhead.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q
BIN=target/release/switchyard
TMP=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
run() { local name=$1 log=$2; shift 2; $BIN --database "sqlite://$TMP/$name.db" --admin-listen 127.0.0.1:0 "$@" 2>"$log" & PIDS+=($!); }
echo 'return { access_log = { enabled = false } }' > "$TMP/off.lua"
run demo /dev/null --demo --listen 127.0.0.1:18999 --workers 1
run logged "$TMP/access.log" --listen 127.0.0.1:18083 --backend 127.0.0.1:9001
run quiet /dev/null --listen 127.0.0.1:18084 --backend 127.0.0.1:9001 --config "$TMP/off.lua"
for port in 9001 18083 18084; do
  for _ in $(seq 100); do curl -s -o /dev/null -H 'Host: a.example' "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

declare -A results
names=(direct access-log-on access-log-off)
ports=(9001 18083 18084)
for round in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    rps=$(wrk -t1 -c64 -d"${SECS}s" -H 'Host: a.example' "http://127.0.0.1:${ports[$i]}/" | awk '/Requests\/sec/ {print $2}')
    echo "round $round ${names[$i]}: $rps req/s"
    results[${names[$i]}]+="$rps "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(echo "${results[access-log-off]}" | median)
direct=$(echo "${results[direct]}" | median)
echo "---- median of $ROUNDS rounds, wrk -t1 -c64 -d${SECS}s; $(wc -l < "$TMP/access.log") access-log lines written"
for name in "${names[@]}"; do
  m=$(echo "${results[$name]}" | median)
  printf '%-16s %10.0f req/s  %.3fx log-off  %.2fx direct\n' "$name" "$m" "$(echo "$m / $off" | bc -l)" "$(echo "$m / $direct" | bc -l)"
done
