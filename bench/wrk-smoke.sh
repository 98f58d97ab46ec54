#!/usr/bin/env bash
# Quick same-run throughput check: a small-response backend direct, and
# through switchyard with one worker thread and with the default (one per
# core). Interleaved rounds (A B C A B C ...), median reported, plus ratios.
# The full comparison against nginx and HAProxy is bench/run.sh (issue 7).
#
# Usage: bench/wrk-smoke.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-10}
setup

# The backend: switchyard's own demo backends (hyper, ~60-byte answers) in a
# separate process with one worker thread; its proxy port is unused.
run demo /dev/null --demo --listen 127.0.0.1:18999 --workers 1
run one /dev/null --listen 127.0.0.1:18081 --backend 127.0.0.1:9001 --workers 1
run default /dev/null --listen 127.0.0.1:18082 --backend 127.0.0.1:9001
wait_ready 9001 18081 18082
compare "$ROUNDS" "$SECS" direct direct=9001 switchyard-1-worker=18081 switchyard-default=18082
