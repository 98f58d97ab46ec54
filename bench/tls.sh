#!/usr/bin/env bash
# HTTPS: switchyard vs nginx vs HAProxy terminating TLS in front of the same
# backends, measured in one run, interleaved (A B C A B C ...), median of the
# rounds, with 1 and then 2 workers, for an ECDSA P-256 and an RSA-2048
# certificate. Installs what it needs from Debian's packages.
#
# Scenarios (64 connections, ~100 B responses):
#   keepalive  wrk over HTTPS, HTTP/1.1 keep-alive (one handshake per connection)
#   handshake  wrk with Connection: close: a full handshake per request (wrk
#              does not resume sessions)
#   h2         h2load, HTTP/2 over TLS, 10 streams per connection
# Per target and scenario: req/s, ratios to nginx and HAProxy, and the
# proxy's CPU seconds per 100k requests (from /proc). Configs: bench/configs/
# (nginx-tls.conf, haproxy-tls.cfg, switchyard-tls.lua).
#
# Usage: bench/tls.sh [rounds=3] [seconds=5] [scenario...]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROUNDS=${1:-3}
SECS=${2:-5}
shift $(( $# > 2 ? 2 : $# ))
SCENARIOS=("${@:-keepalive handshake h2}")
read -r -a SCENARIOS <<< "${SCENARIOS[*]}"
for tool in nginx haproxy h2load; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light haproxy nghttp2-client; }
done
setup
TICK=$(getconf CLK_TCK)
TOKEN=bench-tls-token-0123456789abcdef
TARGETS=(nginx haproxy switchyard)
declare -A PORT=([nginx]=19211 [haproxy]=19311 [switchyard]=19411)


# certificate NAME KEYSPEC...: a self-signed certificate for site1.example.
certificate() {
  local name=$1; shift
  openssl req -x509 -newkey "$@" -nodes -days 30 -subj /CN=site1.example \
    -addext subjectAltName=DNS:site1.example \
    -keyout "$TMP/$name.key" -out "$TMP/$name.crt" 2>"$TMP/openssl.log" || { cat "$TMP/openssl.log"; exit 1; }
  cat "$TMP/$name.crt" "$TMP/$name.key" > "$TMP/$name.pem"
}
certificate ecdsa ec -pkeyopt ec_paramgen_curve:P-256
certificate rsa rsa:2048

sed -e "s|__TMP__|$TMP|g" bench/configs/backend-nginx.conf > "$TMP/backend-nginx.conf"
nginx -c "$TMP/backend-nginx.conf" -g 'daemon off;' & PIDS+=($!)
declare -A RPS CPU
IDLE=${IDLE:-2000}
IDLE_TABLE=""

measure() { # scenario key port pid
  local scenario=$1 key=$2 port=$3 pid=$4 out requests rps before after
  before=$(cpu_of "$pid")
  case $scenario in
    keepalive|handshake)
      local args=(-t1 -c64 -d"${SECS}s" -H 'Host: site1.example')
      [ "$scenario" = handshake ] && args+=(-H 'Connection: close')
      out=$(wrk "${args[@]}" "https://127.0.0.1:$port/")
      requests=$(echo "$out" | awk '/requests in/ {print $1}')
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}') ;;
    h2)
      out=$(h2load -c64 -m10 -t1 -D "$SECS" --connect-to="127.0.0.1:$port" "https://site1.example:$port/")
      requests=$(echo "$out" | awk '/^requests:/ {print $8}')
      rps=$(echo "$out" | awk '/^finished in/ {gsub(",", "", $4); print $4}') ;;
  esac
  after=$(cpu_of "$pid")
  RPS[$key]+="$rps "
  CPU[$key]+="$(echo "($after - $before) / $TICK / ($requests + 1) * 100000" | bc -l) "
  echo "  $key: $rps req/s ($requests requests)"
}

for workers in 1 2; do
  for cert in ecdsa rsa; do
    sed -e "s|__TMP__|$TMP|g" -e "s|__WORKERS__|$workers|g" -e "s|__CERT__|$TMP/$cert.crt|g" \
      -e "s|__KEY__|$TMP/$cert.key|g" bench/configs/nginx-tls.conf > "$TMP/nginx-tls.conf"
    sed -e "s|__TMP__|$TMP|g" -e "s|__WORKERS__|$workers|g" -e "s|__PEM__|$TMP/$cert.pem|g" \
      bench/configs/haproxy-tls.cfg > "$TMP/haproxy-tls.cfg"
    nginx -c "$TMP/nginx-tls.conf" -g 'daemon off;' & NGINX_PID=$!
    haproxy -f "$TMP/haproxy-tls.cfg" -db & HAPROXY_PID=$!
    "$BIN" --config bench/configs/switchyard-tls.lua --workers "$workers" --admin-listen 127.0.0.1:19412 \
      --admin-token "$TOKEN" --database "sqlite://$TMP/tls-$workers-$cert.db" 2>"$TMP/switchyard.log" &
    SWITCHYARD_PID=$!
    PIDS+=("$NGINX_PID" "$HAPROXY_PID" "$SWITCHYARD_PID")
    declare -A PID=([nginx]=$NGINX_PID [haproxy]=$HAPROXY_PID [switchyard]=$SWITCHYARD_PID)
    for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:19412/healthz && break; sleep 0.1; done
    python3 -c 'import json, sys; print(json.dumps({"certificate": open(sys.argv[1]).read(), "private_key": open(sys.argv[2]).read()}))' \
      "$TMP/$cert.crt" "$TMP/$cert.key" |
      curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary @- http://127.0.0.1:19412/api/v1/certificates
    for target in "${TARGETS[@]}"; do
      for _ in $(seq 100); do
        curl -sk -o /dev/null --connect-to "site1.example:${PORT[$target]}:127.0.0.1:${PORT[$target]}" \
          "https://site1.example:${PORT[$target]}/" && break
        sleep 0.1
      done
    done
    if [ "$cert" = ecdsa ]; then
      # Idle TLS connections first, while every proxy is fresh.
      idle_args=()
      for target in "${TARGETS[@]}"; do idle_args+=("$target=${PORT[$target]}:${PID[$target]}"); done
      IDLE_TABLE+="$(python3 bench/idle-rss.py --tls "$IDLE" "${idle_args[@]}" | sed "s/^| \([a-z]\)/| $workers | \1/" | grep -v -e '| target |' -e '| --- |')"$'\n'
    fi
    for scenario in "${SCENARIOS[@]}"; do
      for round in $(seq "$ROUNDS"); do
        echo "workers $workers, $cert, $scenario, round $round"
        for target in "${TARGETS[@]}"; do
          measure "$scenario" "$scenario|$cert|$workers|$target" "${PORT[$target]}" "${PID[$target]}"
        done
      done
    done
    for target in "${TARGETS[@]}"; do kill "${PID[$target]}"; wait "${PID[$target]}" 2>/dev/null || true; done
  done
done

echo
echo "## $(date -u +%F) · $(nproc) cores · bench/tls.sh $ROUNDS $SECS · median of $ROUNDS rounds"
echo
echo "| scenario | certificate | workers | target | req/s | × nginx | × HAProxy | CPU s / 100k req |"
echo "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"
for scenario in "${SCENARIOS[@]}"; do
  for cert in ecdsa rsa; do
    for workers in 1 2; do
      n=$(echo "${RPS[$scenario|$cert|$workers|nginx]}" | median)
      h=$(echo "${RPS[$scenario|$cert|$workers|haproxy]}" | median)
      for target in "${TARGETS[@]}"; do
        key="$scenario|$cert|$workers|$target"
        r=$(echo "${RPS[$key]}" | median)
        printf '| %s | %s | %s | %s | %.0f | %.2f | %.2f | %.3f |\n' "$scenario" "$cert" "$workers" "$target" \
          "$r" "$(echo "$r / $n" | bc -l)" "$(echo "$r / $h" | bc -l)" "$(echo "${CPU[$key]}" | median)"
      done
    done
  done
done

echo
echo "### RSS with $IDLE idle HTTPS keep-alive connections (ECDSA, fresh processes)"
echo
echo "| workers | target | RSS before KiB | RSS with idle KiB | KiB per idle connection |"
echo "| --- | --- | ---: | ---: | ---: |"
printf '%s' "$IDLE_TABLE"
