#!/usr/bin/env bash
# Builds Tandem's voice prompts from the phrase lists in sounds/phrases/.
#
#   sounds/generate.sh [--force | --check] [--jobs N] [--out DIR] [LANG...]
#
# Every line "name<TAB>text" of sounds/phrases/<lang>.tsv becomes
# <out>/<lang>/<name>.wav: espeak-ng speaks the text with the language's voice
# at a fixed speed and pitch, then sox trims the leading and trailing silence,
# resamples to 8 kHz and writes mono 16-bit PCM normalised to a -3 dBFS peak.
#
# Idempotent: <out>/<lang>/.manifest keeps, for each prompt, a hash of its text
# and of every setting below; a prompt whose hash is unchanged and whose WAV
# exists is skipped. --force rebuilds everything. WAVs whose name is no longer
# in the list are removed. With the same espeak-ng and sox versions the output
# is byte for byte the same on every run.
#
#   --force     rebuild every prompt
#   --check     write nothing; fail if a prompt is missing, out of date or unlisted
#   --jobs N    prompts built in parallel (default: number of cores)
#   --out DIR   where to write (default: the sounds/ directory of this script)
#   LANG...     only these languages (default: every sounds/phrases/*.tsv)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
phrases="$here/phrases"
out="$here"
force=0
check=0
jobs="$(nproc 2>/dev/null || echo 2)"
langs=()

# Voice of each language (espeak-ng -v). A language without an entry here uses
# its own code as the voice name.
declare -A voice=([en]=en-us [fr]=fr-fr [it]=it [es]=es)
speed=160             # words per minute (espeak-ng -s)
pitch=50              # 0-99 (espeak-ng -p)
rate=8000             # Hz
peak=-3               # dBFS after normalisation
# Trimming: cut from each end until 10 ms stay above -50 dBFS.
trim=(silence 1 0.01 -50d reverse silence 1 0.01 -50d reverse)
# Bump when the processing changes in a way the settings above do not show.
recipe=1

die() {
  echo "generate.sh: $*" >&2
  exit 1
}

usage() {
  sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --check) check=1 ;;
    --jobs)
      [ $# -ge 2 ] || die "--jobs needs a number"
      jobs="$2"
      shift
      ;;
    --jobs=*) jobs="${1#--jobs=}" ;;
    --out)
      [ $# -ge 2 ] || die "--out needs a directory"
      out="$2"
      shift
      ;;
    --out=*) out="${1#--out=}" ;;
    -h | --help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) langs+=("$1") ;;
  esac
  shift
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs wants a positive number, not '$jobs'"

# Tools, with the Debian package that provides each.
need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install it with 'apt-get install $2' (or run contrib/install-deps.sh)"
}
need sha256sum coreutils
if [ "$check" -eq 0 ]; then
  need espeak-ng espeak-ng
  need sox sox
fi

if [ ${#langs[@]} -eq 0 ]; then
  for f in "$phrases"/*.tsv; do
    [ -e "$f" ] || die "no phrase lists in $phrases"
    langs+=("$(basename "$f" .tsv)")
  done
fi

[ "$check" -eq 1 ] || mkdir -p "$out"
[ -d "$out" ] && out="$(cd "$out" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# One prompt: speech to a temporary file, then sox to the final place.
build_one() {
  local lang="$1" name="$2" text="$3" dest="$4" okfile="$5"
  local raw="$tmp/$lang/raw/$name.wav"
  mkdir -p "$(dirname "$dest")" "$(dirname "$raw")"
  if ! printf '%s' "$text" | espeak-ng -v "${voice[$lang]:-$lang}" -s "$speed" -p "$pitch" -w "$raw" --stdin; then
    echo "generate.sh: espeak-ng failed on $lang/$name" >&2
    return 1
  fi
  if ! sox -V1 -R -D "$raw" -r "$rate" -c 1 -b 16 -e signed-integer "$dest.part.wav" \
    "${trim[@]}" rate -v "$rate" norm "$peak"; then
    echo "generate.sh: sox failed on $lang/$name" >&2
    rm -f "$dest.part.wav"
    return 1
  fi
  if [ "$(stat -c %s "$dest.part.wav")" -le 44 ]; then
    echo "generate.sh: $lang/$name came out empty (text: $text)" >&2
    rm -f "$dest.part.wav"
    return 1
  fi
  mv -f "$dest.part.wav" "$dest"
  rm -f "$raw"
  : >"$okfile"
}

if [ "$check" -eq 0 ]; then
  echo "using $(espeak-ng --version | head -n1 | sed 's/ *Data at.*//') and $(sox --version 2>&1 | head -n1 | sed 's/^sox: *//')"
fi

failed=0
stale_total=0
total_built=0
total_kept=0
total_removed=0
start=$(date +%s)

for lang in "${langs[@]}"; do
  list="$phrases/$lang.tsv"
  [ -f "$list" ] || die "no phrase list for '$lang' ($list)"
  v="${voice[$lang]:-$lang}"
  [ "$check" -eq 1 ] || espeak-ng -v "$v" -q "" 2>/dev/null || die "espeak-ng has no voice '$v' for $lang"
  dir="$out/$lang"
  settings="recipe=$recipe voice=$v speed=$speed pitch=$pitch rate=$rate peak=$peak trim=${trim[*]}"

  # Previous hashes.
  declare -A old=()
  if [ -f "$dir/.manifest" ]; then
    while IFS=$'\t' read -r n h; do
      [ -n "$n" ] && [ "${n:0:1}" != "#" ] && old["$n"]="$h"
    done <"$dir/.manifest"
  fi

  # Read and check the list; each text goes to a file to be hashed with the settings.
  names=()
  declare -A text=() hash=()
  lineno=0
  mkdir -p "$tmp/$lang/text" "$tmp/$lang/ok"
  while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line="${line%$'\r'}"
    [ -z "$line" ] && continue
    [ "${line:0:1}" = "#" ] && continue
    [[ "$line" == *$'\t'* ]] || die "$list:$lineno: no tab between name and text"
    n="${line%%$'\t'*}"
    t="${line#*$'\t'}"
    [[ "$n" =~ ^[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*$ ]] ||
      die "$list:$lineno: bad prompt name '$n' (letters, digits, - and _, with / for folders)"
    [[ "$t" =~ [^[:space:]] ]] || die "$list:$lineno: empty text for '$n'"
    [ -z "${text[$n]+x}" ] || die "$list:$lineno: '$n' is listed twice"
    names+=("$n")
    text["$n"]="$t"
    if [[ "$n" == */* ]] && [ ! -d "$tmp/$lang/text/${n%/*}" ]; then
      mkdir -p "$tmp/$lang/text/${n%/*}" "$tmp/$lang/ok/${n%/*}"
    fi
    printf '%s\n%s' "$settings" "$t" >"$tmp/$lang/text/$n"
  done <"$list"
  [ ${#names[@]} -gt 0 ] || die "$list lists no prompt"
  while read -r h n; do
    hash["$n"]="${h:0:16}"
  done < <(cd "$tmp/$lang/text" && sha256sum -- "${names[@]}")

  # What has to be built, and which WAVs are no longer listed.
  todo=()
  kept=0
  for n in "${names[@]}"; do
    if [ "$force" -eq 0 ] && [ -s "$dir/$n.wav" ] && [ "${old[$n]:-}" = "${hash[$n]}" ]; then
      kept=$((kept + 1))
      : >"$tmp/$lang/ok/$n"
    else
      todo+=("$n")
    fi
  done
  extra=()
  if [ -d "$dir" ]; then
    while IFS= read -r -d '' f; do
      rel="${f#"$dir"/}"
      rel="${rel%.wav}"
      [ -n "${text[$rel]+x}" ] || extra+=("$f")
    done < <(find "$dir" -type f -name '*.wav' -print0)
  fi

  if [ "$check" -eq 1 ]; then
    for n in "${todo[@]}"; do echo "$lang: out of date: $n" >&2; done
    for f in "${extra[@]}"; do echo "$lang: not in the list: ${f#"$out"/}" >&2; done
    echo "$lang: ${#names[@]} prompts, ${#todo[@]} out of date, ${#extra[@]} not in the list"
    stale_total=$((stale_total + ${#todo[@]} + ${#extra[@]}))
    unset old text hash
    continue
  fi

  mkdir -p "$dir"
  running=0
  for n in "${todo[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    build_one "$lang" "$n" "${text[$n]}" "$dir/$n.wav" "$tmp/$lang/ok/$n" &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done

  for f in "${extra[@]}"; do rm -f "$f"; done
  find "$dir" -mindepth 1 -type d -empty -delete

  # New manifest: only prompts that are in place and current.
  {
    echo "# Written by sounds/generate.sh: prompt name, hash of its text and settings."
    for n in "${names[@]}"; do
      [ -e "$tmp/$lang/ok/$n" ] && printf '%s\t%s\n' "$n" "${hash[$n]}"
    done
  } >"$dir/.manifest.part"
  mv -f "$dir/.manifest.part" "$dir/.manifest"

  bad=0
  for n in "${todo[@]}"; do
    [ -e "$tmp/$lang/ok/$n" ] || bad=$((bad + 1))
  done
  [ "$bad" -eq 0 ] || failed=1
  echo "$lang: ${#names[@]} prompts, $((${#todo[@]} - bad)) built, $kept up to date, ${#extra[@]} removed, $bad failed"
  total_built=$((total_built + ${#todo[@]} - bad))
  total_kept=$((total_kept + kept))
  total_removed=$((total_removed + ${#extra[@]}))
  unset old text hash
done

if [ "$check" -eq 1 ]; then
  [ "$stale_total" -eq 0 ] || die "$stale_total prompts out of date: run sounds/generate.sh"
  echo "all prompts up to date"
  exit 0
fi
echo "done in $(($(date +%s) - start)) s: $total_built built, $total_kept up to date, $total_removed removed"
[ "$failed" -eq 0 ] || die "some prompts failed (see above)"
