#!/usr/bin/env bash
# Builds Tandem's sample music on hold: <out>/moh/*.wav.
#
#   sounds/generate-moh.sh [--force] [--out DIR]
#
# Each piece is a short chord progression made by sox alone: every chord is
# a soft sine pad under a plucked arpeggio, two seconds long with gentle
# fades, and four chords loop smoothly. Written as 8 kHz mono 16-bit PCM WAV
# normalised to a -6 dBFS peak, the format the `default` class of
# configs/musiconhold.conf plays without any translation cost for G.711.
#
# Nothing is downloaded and nothing binary is committed: the recipe below is
# the source. sox runs in repeatable mode (-R), so the output is the same on
# every run with the same sox. Idempotent: <out>/moh/.manifest keeps a hash
# of the recipe; pieces are rebuilt only when it changes or a file is missing.
#
#   --force     rebuild every piece
#   --out DIR   where to write (default: the sounds/ directory of this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here"
force=0

die() {
  echo "generate-moh.sh: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --out)
      [ $# -ge 2 ] || die "--out needs a directory"
      out="$2"
      shift
      ;;
    --out=*) out="${1#--out=}" ;;
    -h | --help)
      sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

command -v sox >/dev/null 2>&1 || die "sox is missing: install it with 'apt-get install sox' (or run contrib/install-deps.sh)"

rate=8000
peak=-6
chord_seconds=2
# Piece name, then its chords (bass, then three notes of the chord).
pieces=(
  "progression-1|C3 C4 E4 G4|A2 A3 C4 E4|F2 F3 A3 C4|G2 G3 B3 D4"
  "progression-2|D3 D4 F#4 A4|B2 B3 D4 F#4|G2 G3 B3 D4|A2 A3 C#4 E4"
)
# Bump when the processing changes in a way the settings above do not show.
recipe=1

dir="$out/moh"
mkdir -p "$dir"
hash="$(printf '%s\n' "recipe=$recipe rate=$rate peak=$peak chord=$chord_seconds" "${pieces[@]}" | sha256sum | cut -c1-16)"
up_to_date=1
[ "$force" -eq 0 ] && [ -f "$dir/.manifest" ] && [ "$(cat "$dir/.manifest")" = "$hash" ] || up_to_date=0
for p in "${pieces[@]}"; do
  [ -s "$dir/${p%%|*}.wav" ] || up_to_date=0
done
if [ "$up_to_date" -eq 1 ]; then
  echo "moh: ${#pieces[@]} pieces up to date"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for p in "${pieces[@]}"; do
  IFS='|' read -r -a parts <<<"$p"
  name="${parts[0]}"
  chords=()
  for ((i = 1; i < ${#parts[@]}; i++)); do
    read -r bass n1 n2 n3 <<<"${parts[$i]}"
    pad="$tmp/$name-$i-pad.wav"
    pluck="$tmp/$name-$i-pluck.wav"
    chord="$tmp/$name-$i.wav"
    # The pad: four sines, faded in and out so chords join without clicks.
    sox -R -n -r "$rate" -c 1 -b 16 "$pad" synth "$chord_seconds" sine "$bass" sine "$n1" sine "$n2" sine "$n3" \
      remix - fade h 0.2 "$chord_seconds" 0.5 vol 0.5
    # The arpeggio: the chord's notes plucked one after another, the root an octave up last.
    sox -R -n -r "$rate" -c 1 -b 16 "$pluck" synth "$chord_seconds" pl "$n1" pl "$n2" pl "$n3" pl "${n1%?}$((${n1: -1} + 1))" \
      delay 0 .12 .24 .36 remix - fade 0 "$chord_seconds" .4
    sox -R -m "$pad" "$pluck" "$chord"
    chords+=("$chord")
  done
  sox -R "${chords[@]}" -r "$rate" -c 1 -b 16 -e signed-integer "$dir/$name.part.wav" norm "$peak"
  mv -f "$dir/$name.part.wav" "$dir/$name.wav"
done
echo "$hash" >"$dir/.manifest"
echo "moh: ${#pieces[@]} pieces built in $dir"
