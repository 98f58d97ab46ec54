#!/usr/bin/env bash
# Build the fuzz targets and run each for SECONDS (default 60), one after
# the other; print per target its executions and whether it crashed.
# Exit 1 if any target crashed (its input is left in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Environment:
#   SWITCHYARD_FUZZ_TARGET_DIR  build directory, kept between runs
#                               (default ~/.cache/switchyard-fuzz)
#   CARGO_BUILD_JOBS            cargo build jobs (cargo reads it itself)
# cargo-fuzz needs nightly flags; the stable toolchain takes them with
# RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(routing_key lua_config admin_json framing)

export RUSTC_BOOTSTRAP=1
target_dir=${SWITCHYARD_FUZZ_TARGET_DIR:-$HOME/.cache/switchyard-fuzz}
build=(cargo fuzz build --release --debug-assertions --target-dir "$target_dir")

command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz is missing: cargo install --locked cargo-fuzz" >&2
  exit 2
}

start=$(date +%s)
# `cargo fuzz build` takes one target or all; build all when several.
if [ ${#targets[@]} -eq 1 ]; then
  "${build[@]}" "${targets[0]}"
else
  "${build[@]}"
fi
echo "build: $(($(date +%s) - start)) s"

triple=$(rustc -vV | sed -n 's/^host: //p')
failed=0
printf '%-12s %8s %12s  %s\n' target seconds executions result
for target in "${targets[@]}"; do
  corpus=corpus/$target
  mkdir -p "$corpus" "artifacts/$target"
  log=$(mktemp)
  status=0
  # New inputs go to corpus/ (ignored by git); seeds/ and regressions/
  # (past crash inputs, rerun first) are only read.
  inputs=("seeds/$target")
  [ -d "regressions/$target" ] && inputs+=("regressions/$target")
  "$target_dir/$triple/release/$target" "$corpus" "${inputs[@]}" \
    -dict="dicts/$target.dict" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="artifacts/$target/" \
    >"$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    failed=1
    crash=$(grep -o "artifacts/$target/[a-z-]*-[0-9a-f]*" "$log" | tail -n 1 || true)
    result="CRASH ${crash:-(exit $status)}"
    grep -m 5 -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | sed 's/^/    /' >&2 || true
  fi
  printf '%-12s %8s %12s  %s\n' "$target" "$seconds" "${executions:-?}" "$result"
  rm -f "$log"
done
exit "$failed"
