#!/usr/bin/env bash
# Runs the benchmarks and prints their figures (not a pass/fail test).
#   tests/bench/run.sh [build-dir]
# BENCH_SIP=1 adds the SIP benchmark (SIPp against a real tandem, ~10 minutes).
set -euo pipefail
build=${1:-build}
"$build/bin/bench_dialplan" 100000 200
echo
"$build/bin/bench_channels" 10000 10
echo
"$build/bin/bench_rtp_relay" 100 500 1000 2000
echo; "$build/bin/bench_media"  # ~1 minute; BENCH_MEDIA_* variables scale it (tests/bench/README.md)
if [ "${BENCH_SIP:-0}" = 1 ]; then
    echo
    python3 "$(dirname "$0")/sip/run.py" --build "$build"
fi
