#!/usr/bin/env bash
# Runs the benchmarks and prints their figures (not a pass/fail test).
#   tests/bench/run.sh [build-dir]
set -euo pipefail
build=${1:-build}
"$build/bin/bench_dialplan" 100000 200
echo
"$build/bin/bench_channels" 10000 10
echo
"$build/bin/bench_rtp_relay" 100 500 1000 2000
