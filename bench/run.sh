#!/usr/bin/env bash
# switchyard vs nginx vs HAProxy vs the backend direct, measured in one run,
# interleaved (A B C D A B C D ...), median of the rounds, with 1 and then 2
# workers for every proxy. Installs what it needs from Debian's packages.
#
# Scenarios (wrk, 64 connections, 1 thread):
#   small    ~100 B responses, keep-alive
#   16k      16 KiB responses, keep-alive
#   newconn  a new connection per request (Connection: close)
#   hosts    1,000 distinct Host values, keep-alive
#   reload   reload URLs for 1,000 domains (key in the path), keep-alive
# Per target and scenario: req/s, wrk's p50/p99 (closed loop), and the
# proxy's CPU seconds per 100k requests (from /proc). Configs: bench/configs/.
#
# Also, per worker count:
#   rate     latency at a fixed RATE (default 20000 req/s, 64 connections,
#            open loop: examples/fixed_rate.rs), p50/p99/p99.9
#   idle     RSS with IDLE (default 9900) idle keep-alive connections, on
#            freshly started proxies (bench/idle-rss.py)
#
# BEFORE=path/to/old/switchyard adds that binary as the target
# "switchyard-before" (same config, next port), for before/after ratios
# from one run.
#
# Usage: bench/run.sh [rounds=3] [seconds=10] [scenario...]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
SCENARIOS=("${@:-small 16k newconn hosts reload}")
read -r -a SCENARIOS <<< "${SCENARIOS[*]}"
for tool in nginx haproxy; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light haproxy; }
done
setup
cargo build --release -q --example fixed_rate
RATE=${RATE:-20000}
IDLE=${IDLE:-9900}
TARGETS=(direct nginx haproxy switchyard)
[ -n "${BEFORE:-}" ] && TARGETS+=(switchyard-before)
TICK=$(getconf CLK_TCK)
head -c 16384 /dev/urandom > "$TMP/16k.bin"

# wrk's "1.23ms" / "456.00us" / "1.02s" as microseconds.
to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); m=1} else if (v ~ /ms$/) {sub(/ms$/,"",v); m=1000} else {sub(/s$/,"",v); m=1000000}; printf "%.0f", v*m}'; }

template() { sed -e "s|__TMP__|$TMP|g" -e "s|__WORKERS__|$2|g" "bench/configs/$1" > "$TMP/$1"; }


template backend-nginx.conf 1
nginx -c "$TMP/backend-nginx.conf" -g 'daemon off;' & PIDS+=($!); BACKEND_PID=$!
declare -A RPS P50 P99 CPU LAT
IDLE_TABLE=""

measure() { # scenario workers target port pid...
  local scenario=$1 workers=$2 target=$3 port=$4; shift 4
  local args=(-t1 -c64 -d"${SECS}s" --latency -H 'Host: site1.example')
  local path=/
  case $scenario in
    16k) path=/16k ;;
    newconn) args+=(-H 'Connection: close') ;;
    hosts) args+=(-s bench/wrk/hosts.lua) ;;
    reload) args+=(-s bench/wrk/reload.lua) ;;
  esac
  local before after out requests
  before=$(cpu_of "$@")
  out=$(wrk "${args[@]}" "http://127.0.0.1:$port$path")
  after=$(cpu_of "$@")
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local key="$scenario|$workers|$target"
  RPS[$key]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}') "
  P50[$key]+="$(echo "$out" | awk '$1 == "50%" {print $2}' | to_us) "
  P99[$key]+="$(echo "$out" | awk '$1 == "99%" {print $2}' | to_us) "
  CPU[$key]+="$(echo "($after - $before) / $TICK / $requests * 100000" | bc -l) "
  echo "  $key: $(echo "$out" | awk '/Requests\/sec/ {print $2}') req/s"
}

for workers in 1 2; do
  template nginx.conf "$workers"
  template haproxy.cfg "$workers"
  nginx -c "$TMP/nginx.conf" -g 'daemon off;' & NGINX_PID=$!
  haproxy -f "$TMP/haproxy.cfg" -db & HAPROXY_PID=$!
  run "bench-$workers" /dev/null --config bench/configs/switchyard.lua --workers "$workers"
  SWITCHYARD_PID=${PIDS[-1]}
  declare -A PORT=([direct]=19101 [nginx]=19201 [haproxy]=19301 [switchyard]=19401 [switchyard-before]=19402)
  declare -A PID=([direct]=$BACKEND_PID [nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID [switchyard]=$SWITCHYARD_PID)
  if [ -n "${BEFORE:-}" ]; then
    "$BEFORE" --config bench/configs/switchyard.lua --listen 127.0.0.1:19402 --workers "$workers" \
      --database "sqlite://$TMP/before-$workers.db" --admin-listen 127.0.0.1:0 2>/dev/null &
    PIDS+=($!); PID[switchyard-before]=$!
  fi
  PIDS+=("$NGINX_PID" "$HAPROXY_PID")
  wait_ready 19101 19201 19301 19401 ${BEFORE:+19402}
  # Idle connections first, while every proxy is fresh.
  idle_args=()
  for target in "${TARGETS[@]:1}"; do idle_args+=("$target=${PORT[$target]}:${PID[$target]}"); done
  IDLE_TABLE+="$(python3 bench/idle-rss.py "$IDLE" "${idle_args[@]}" | sed "s/^| \([a-z]\)/| $workers | \1/")"$'\n'
  for scenario in "${SCENARIOS[@]}"; do
    for round in $(seq "$ROUNDS"); do
      echo "workers $workers, $scenario, round $round"
      for target in "${TARGETS[@]}"; do
        measure "$scenario" "$workers" "$target" "${PORT[$target]}" "${PID[$target]}"
      done
    done
  done
  for round in $(seq "$ROUNDS"); do
    for target in "${TARGETS[@]}"; do
      out=$(target/release/examples/fixed_rate --url "http://127.0.0.1:${PORT[$target]}/" \
        --rate "$RATE" --connections 64 --seconds "$SECS" | tail -1)
      echo "  rate $workers $target: $out"
      LAT["$workers|$target"]+="$out"$'\n'
    done
  done
  for target in "${TARGETS[@]:1}"; do kill "${PID[$target]}"; wait "${PID[$target]}" 2>/dev/null || true; done
done

echo
echo "## $(date -u +%F) · $(nproc) cores · bench/run.sh $ROUNDS $SECS · median of $ROUNDS rounds"
echo
echo "| scenario | workers | target | req/s | × nginx | × HAProxy | p50 µs | p99 µs | CPU s / 100k req |"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for scenario in "${SCENARIOS[@]}"; do
  for workers in 1 2; do
    n=$(echo "${RPS[$scenario|$workers|nginx]}" | median)
    h=$(echo "${RPS[$scenario|$workers|haproxy]}" | median)
    for target in "${TARGETS[@]}"; do
      key="$scenario|$workers|$target"
      r=$(echo "${RPS[$key]}" | median)
      printf '| %s | %s | %s | %.0f | %.2f | %.2f | %s | %s | %.3f |\n' "$scenario" "$workers" "$target" "$r" \
        "$(echo "$r / $n" | bc -l)" "$(echo "$r / $h" | bc -l)" \
        "$(echo "${P50[$key]}" | median)" "$(echo "${P99[$key]}" | median)" \
        "$(echo "${CPU[$key]}" | median)"
    done
  done
done


echo
echo "### Latency at a fixed $RATE req/s (64 connections, open loop; median of $ROUNDS rounds per percentile)"
echo
echo "| workers | target | p50 µs | p99 µs | p99.9 µs | p99 × nginx |"
echo "| --- | --- | ---: | ---: | ---: | ---: |"
pct() { awk -v f="$1" '{for (i = 1; i <= NF; i++) if ($i == f) print $(i + 1)}' | median; }
for workers in 1 2; do
  n99=$(echo "${LAT[$workers|nginx]}" | pct p99)
  for target in "${TARGETS[@]}"; do
    lat=${LAT[$workers|$target]}
    p99=$(echo "$lat" | pct p99)
    printf '| %s | %s | %s | %s | %s | %.2f |\n' "$workers" "$target" "$(echo "$lat" | pct p50)" \
      "$p99" "$(echo "$lat" | pct p99.9)" "$(echo "$p99 / $n99" | bc -l)"
  done
done

echo
echo "### RSS with $IDLE idle keep-alive connections (fresh processes)"
echo
echo "| workers | target | RSS before KiB | RSS with idle KiB | KiB per idle connection |"
echo "| --- | --- | ---: | ---: | ---: |"
echo -n "$IDLE_TABLE" | grep -v -e '| target |' -e '| --- |'
