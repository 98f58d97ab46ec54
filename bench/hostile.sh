#!/usr/bin/env bash
# Hostile clients against a release switchyard (see bench/hostile.py and
# bench/HOSTILE.md). Raises the fd limit to the hard limit (the script
# holds 10,000 connections; the proxy gets the same limit, since switchyard
# does not raise its own), installs nginx-light (the backend) if missing,
# builds the release binary, and runs every attack.
#
# Usage: bench/hostile.sh [--out bench/HOSTILE.md] [--rounds N] [--only NAME,...]
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "the fd hard limit is $(ulimit -n); the 10k-idle attack needs about 12,000" >&2
fi
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light; }
cargo build --release -q
HOSTILE_WRAPPER=bench/hostile.sh exec python3 bench/hostile.py "$@"
