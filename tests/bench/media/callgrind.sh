#!/usr/bin/env bash
# Tandem's overhead on Opus <-> G.711 as instruction counts (valgrind's
# callgrind): the same passes bench_media times, counted instead of timed, so
# the figure does not depend on the machine's load. Prints instructions per
# 20 ms frame through Tandem's TranslationPath and through libopus, SpeexDSP
# and SpanDSP called directly, and their ratio.
#   tests/bench/media/callgrind.sh [build-dir]      (a minute or two)
# BENCH_MEDIA_SECONDS (default 4) and BENCH_MEDIA_PASSES (default 2) scale it.
set -euo pipefail
build=${1:-build}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passes=${BENCH_MEDIA_PASSES:-2}
BENCH_MEDIA_SECONDS=${BENCH_MEDIA_SECONDS:-4} BENCH_MEDIA_PASSES=$passes \
    valgrind --tool=callgrind --callgrind-out-file="$work/out" \
    --toggle-collect='*opus_to_g711_path_pass*' --toggle-collect='*opus_to_g711_direct_pass*' \
    --toggle-collect='*g711_to_opus_path_pass*' --toggle-collect='*g711_to_opus_direct_pass*' \
    "$build/bin/bench_media" --callgrind >"$work/log" 2>&1 || {
    cat "$work/log"
    exit 1
}
summary=$(grep '^callgrind passes' "$work/log")
echo "$summary"
# "callgrind passes: 2 x (200 opus frames, 200 ulaw frames); chain / chain"
opus_frames=$(sed -E 's/.*\(([0-9]+) opus frames.*/\1/' <<<"$summary")
ulaw_frames=$(sed -E 's/.*, ([0-9]+) ulaw frames.*/\1/' <<<"$summary")
callgrind_annotate --inclusive=yes "$work/out" >"$work/annotate"

# Inclusive instruction count of one pass function (the first column).
count() {
    grep -E "::$1\(" "$work/annotate" | head -1 | awk '{gsub(",", "", $1); print $1}'
}
report() {
    local label=$1 path=$2 direct=$3 frames=$4
    local p d
    p=$(count "$path")
    d=$(count "$direct")
    if [ -z "$p" ] || [ -z "$d" ]; then
        echo "$label: pass functions not found in the profile"
        return
    fi
    awk -v l="$label" -v p="$p" -v d="$d" -v n="$((frames * passes))" 'BEGIN {
        printf "%-14s Tandem path %10.0f  direct %10.0f  instructions per 20 ms frame: %+.0f, overhead %+.2f %%\n",
               l, p / n, d / n, (p - d) / n, (p / d - 1) * 100 }'
}
report "opus -> ulaw" opus_to_g711_path_pass opus_to_g711_direct_pass "$opus_frames"
report "ulaw -> opus" g711_to_opus_path_pass g711_to_opus_direct_pass "$ulaw_frames"
