#!/usr/bin/env bash
# Quick same-run throughput check: a small-response backend direct, and
# through switchyard with one worker thread and with the default (one per
# core). Interleaved rounds (A B C A B C ...), median reported, plus ratios.
# The full comparison against nginx and HAProxy is bench/run.sh (issue 7).
#
# Usage: bench/wrk-smoke.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q
BIN=target/release/switchyard

# The backend: switchyard's own demo backends (hyper, ~60-byte answers) in a
# separate process with one worker thread; its proxy port is unused.
# Each process gets its own database and an admin listener on a free port.
TMP=$(mktemp -d)
run() { local name=$1; shift; $BIN --database "sqlite://$TMP/$name.db" --admin-listen 127.0.0.1:0 "$@" 2>/dev/null & PIDS+=($!); }
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
run demo --demo --listen 127.0.0.1:18999 --workers 1
run one --listen 127.0.0.1:18081 --backend 127.0.0.1:9001 --workers 1
run default --listen 127.0.0.1:18082 --backend 127.0.0.1:9001
for port in 9001 18081 18082; do
  for _ in $(seq 100); do curl -s -o /dev/null -H 'Host: a.example' "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

declare -A results
names=(direct switchyard-1-worker switchyard-default)
ports=(9001 18081 18082)
for round in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    rps=$(wrk -t1 -c64 -d"${SECS}s" -H 'Host: a.example' "http://127.0.0.1:${ports[$i]}/" | awk '/Requests\/sec/ {print $2}')
    echo "round $round ${names[$i]}: $rps req/s"
    results[${names[$i]}]+="$rps "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
direct=$(echo "${results[direct]}" | median)
echo "---- median of $ROUNDS rounds, wrk -t1 -c64 -d${SECS}s (absolute numbers are noisy; compare ratios)"
for name in "${names[@]}"; do
  m=$(echo "${results[$name]}" | median)
  printf '%-22s %10.0f req/s  %.2fx direct\n' "$name" "$m" "$(echo "$m / $direct" | bc -l)"
done
