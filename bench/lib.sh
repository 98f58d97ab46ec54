# Shared by the wrk scripts in bench/ (source it after `cd` to the repo).

# setup: wrk installed, release binary built, a temp dir, cleanup on exit.
setup() {
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
  cargo build --release -q
  BIN=target/release/switchyard
  TMP=$(mktemp -d)
  PIDS=()
  trap 'kill "${PIDS[@]}" 2>/dev/null; rm -rf "$TMP"' EXIT
}

# run NAME LOGFILE ARGS...: a switchyard with its own database and a free
# admin port, in the background.
run() {
  local name=$1 log=$2
  shift 2
  "$BIN" --database "sqlite://$TMP/$name.db" --admin-listen 127.0.0.1:0 "$@" 2>"$log" &
  PIDS+=($!)
}

# cpu_of PID...: CPU ticks (user + system) of processes and their children.
cpu_of() {
  local total=0 pid
  for pid in "$@" $(for p in "$@"; do pgrep -P "$p" || true; done); do
    [ -r "/proc/$pid/stat" ] || continue
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat") ))
  done
  echo "$total"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# wait_ready PORT...: until each answers a GET (at most 10 s each).
wait_ready() {
  for port in "$@"; do
    for _ in $(seq 100); do
      curl -s -o /dev/null -H 'Host: a.example' "http://127.0.0.1:$port/" && break
      sleep 0.1
    done
  done
}

# compare ROUNDS SECONDS BASELINE NAME=PORT...: interleaved wrk rounds
# (A B C A B C ...), then each target's median and its ratio to BASELINE.
compare() {
  local rounds=$1 secs=$2 base=$3
  shift 3
  local -A results=()
  local names=() ports=() pair round i rps m b
  for pair in "$@"; do names+=("${pair%%=*}"); ports+=("${pair##*=}"); done
  for round in $(seq "$rounds"); do
    for i in "${!names[@]}"; do
      rps=$(wrk -t1 -c64 -d"${secs}s" -H 'Host: a.example' "http://127.0.0.1:${ports[$i]}/" | awk '/Requests\/sec/ {print $2}')
      echo "round $round ${names[$i]}: $rps req/s"
      results[${names[$i]}]+="$rps "
    done
  done
  b=$(echo "${results[$base]}" | median)
  echo "---- median of $rounds rounds, wrk -t1 -c64 -d${secs}s; ratios to $base (absolute numbers are noisy; compare ratios)"
  for name in "${names[@]}"; do
    m=$(echo "${results[$name]}" | median)
    printf '%-22s %10.0f req/s  %.3fx %s\n' "$name" "$m" "$(echo "$m / $b" | bc -l)" "$base"
  done
}
