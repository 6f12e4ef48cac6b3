"""Voice prompts: the phrase lists agree across languages and every WAV is usable.

Checks sounds/phrases/<lang>.tsv (well formed, same names in every language as
in English, the building blocks for numbers, dates and spelling present), then
the WAVs: 8 kHz mono 16-bit PCM, one per listed name and nothing else, not
silent, peak-normalised, at most MAX_SECONDS long.

The WAVs checked are, in this order: $TANDEM_SOUNDS_DIR if set; the ones in the
source tree (sounds/<lang>/) if they were generated there; otherwise
sounds/generate.sh writes them under the build directory (it skips prompts that
are already up to date) and those are checked.
"""
import os
import re
import shutil
import subprocess
import sys
import wave
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, check, finish  # noqa: E402

LANGUAGES = ["en", "fr", "it", "es"]
MAX_SECONDS = 12.0
MIN_SECONDS = 0.05
RMS_FLOOR = 0.01  # about -40 dBFS; speech here sits near -20 dBFS
PEAK_DBFS = -3.0
PEAK_TOLERANCE_DB = 0.5
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9_-]*)*$")

sounds = os.path.join(SRC, "sounds")
generate = os.path.join(sounds, "generate.sh")


def read_list(path):
    """Returns ({name: text}, [problems])."""
    entries, problems = {}, []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line or line.startswith("#"):
                continue
            if "\t" not in line:
                problems.append(f"line {lineno}: no tab")
                continue
            name, text = line.split("\t", 1)
            if not NAME_RE.match(name):
                problems.append(f"line {lineno}: bad name {name!r}")
            if not text.strip():
                problems.append(f"line {lineno}: empty text for {name}")
            if name in entries:
                problems.append(f"line {lineno}: {name} listed twice")
            entries[name] = text
    return entries, problems


def short(items, n=8):
    items = sorted(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# --- the phrase lists ------------------------------------------------------
lists = {}
for lang in LANGUAGES:
    path = os.path.join(sounds, "phrases", f"{lang}.tsv")
    if not os.path.exists(path):
        check(False, f"{lang}: {path} exists")
        continue
    entries, problems = read_list(path)
    lists[lang] = entries
    check(not problems, f"{lang}.tsv is well formed ({len(entries)} prompts)" + (": " + "; ".join(problems[:5]) if problems else ""))

others = sorted(os.path.basename(p)[:-4] for p in os.listdir(os.path.join(sounds, "phrases")) if p.endswith(".tsv"))
for lang in others:
    if lang not in lists:
        entries, problems = read_list(os.path.join(sounds, "phrases", f"{lang}.tsv"))
        lists[lang] = entries
        check(not problems, f"{lang}.tsv is well formed ({len(entries)} prompts)")

english = set(lists.get("en", {}))
for lang, entries in sorted(lists.items()):
    if lang == "en":
        continue
    missing = english - set(entries)
    extra = set(entries) - english
    check(not missing, f"{lang} has every prompt English has" + (f" (missing: {short(missing)})" if missing else ""))
    check(not extra, f"English has every prompt {lang} has" + (f" (only in {lang}: {short(extra)})" if extra else ""))

required = [
    "hello", "goodbye", "welcome", "please-try-again", "invalid", "auth-thankyou", "auth-incorrect",
    "pbx-invalid", "pbx-transfer", "ivr-options", "agent-pass",
    "vm-intro", "vm-youhave", "vm-messages", "vm-login", "vm-password", "vm-incorrect", "vm-goodbye",
    "vm-unavailable", "vm-busy", "vm-temp", "vm-name", "vm-rec-unv", "vm-rec-busy", "vm-rec-name",
    "vm-rec-temp", "vm-msgsaved", "vm-deleted", "vm-first", "vm-last", "vm-next", "vm-repeat",
    "vm-delete", "vm-options", "vm-mailboxfull",
    "conf-onlyperson", "conf-waitforleader", "conf-getpin", "conf-invalidpin", "conf-kicked",
    "conf-muted", "conf-unmuted",
    "queue-thereare", "queue-callswaiting", "queue-holdtime", "queue-minutes", "queue-youarenext",
    "queue-thankyou", "queue-periodic-announce",
    "followme/call-from", "followme/pls-hold-while-try", "followme/status", "followme/sorry",
    "followme/options",
    "campon-busy", "nightsvc-on", "nightsvc-off", "office-closed",
    "digits/hundred", "digits/thousand", "digits/million", "digits/et", "digits/80", "digits/cent",
    "digits/mille", "digits/1F", "digits/cento", "digits/mila", "digits/cien", "digits/y",
    "digits/oclock", "digits/a-m", "digits/p-m", "digits/hours", "digits/minutes", "digits/seconds",
]
required += [f"digits/{n}" for n in range(0, 21)] + [f"digits/{n}" for n in range(30, 100, 10)]
required += [f"digits/{n}" for n in range(100, 1000, 100)]
required += [f"digits/day-{n}" for n in range(7)] + [f"digits/mon-{n}" for n in range(12)]
required += [f"digits/h-{n}" for n in range(1, 32)]
required += [f"letters/{c}" for c in "abcdefghijklmnopqrstuvwxyz"]
absent = [n for n in required if n not in english]
check(not absent, f"English has the {len(required)} prompts the features and say-number need" + (f" (missing: {short(absent)})" if absent else ""))
phrases = [n for n in english if not n.startswith(("digits/", "letters/"))]
check(len(phrases) >= 150, f"at least 150 phrases besides digits and letters ({len(phrases)})")

# --- where the WAVs are ----------------------------------------------------
if os.environ.get("TANDEM_SOUNDS_DIR"):
    wavdir = os.environ["TANDEM_SOUNDS_DIR"]
    print(f"checking the prompts in {wavdir} (TANDEM_SOUNDS_DIR)")
elif os.path.exists(os.path.join(sounds, "en", ".manifest")):
    wavdir = sounds
    print(f"checking the prompts in the source tree ({wavdir})")
else:
    wavdir = os.path.join(os.environ.get("TANDEM_BUILD_DIR", os.getcwd()), "sounds")
    print(f"generating the prompts into {wavdir}")
    r = subprocess.run(["bash", generate, "--out", wavdir], capture_output=True, text=True, timeout=250)
    tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-6:])
    print(tail)
    check(r.returncode == 0, "sounds/generate.sh builds the prompts")

r = subprocess.run(["bash", generate, "--check", "--out", wavdir], capture_output=True, text=True, timeout=60)
check(r.returncode == 0, "every WAV is up to date with its phrase list (generate.sh --check)" + ("" if r.returncode == 0 else ":\n" + (r.stdout + r.stderr)[-1500:]))

# --- every WAV -------------------------------------------------------------
have_sox = shutil.which("sox") is not None
if not have_sox:
    print("sox not found: levels are measured in Python instead")


def levels(path):
    """(RMS, peak), both as fractions of full scale."""
    if have_sox:
        r = subprocess.run(["sox", path, "-n", "stat"], capture_output=True, text=True, timeout=30)
        rms = re.search(r"RMS\s+amplitude:\s+([0-9.]+)", r.stderr)
        mx = re.search(r"Maximum amplitude:\s+(-?[0-9.]+)", r.stderr)
        mn = re.search(r"Minimum amplitude:\s+(-?[0-9.]+)", r.stderr)
        if not (rms and mx and mn):
            return 0.0, 0.0
        return float(rms.group(1)), max(abs(float(mx.group(1))), abs(float(mn.group(1))))
    import array

    with wave.open(path) as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder != "little":
        samples.byteswap()
    if not samples:
        return 0.0, 0.0
    rms = (sum(s * s for s in samples) / len(samples)) ** 0.5 / 32768
    return rms, max(abs(s) for s in samples) / 32768


def inspect(lang, name):
    path = os.path.join(wavdir, lang, name + ".wav")
    if not os.path.exists(path):
        return name, None
    try:
        with wave.open(path) as w:
            fmt = (w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getcomptype())
            seconds = w.getnframes() / w.getframerate()
    except (wave.Error, EOFError) as e:
        return name, {"error": str(e)}
    rms, peak = levels(path)
    return name, {"fmt": fmt, "seconds": seconds, "rms": rms, "peak": peak}


total_files = 0
total_bytes = 0
with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
    for lang, entries in sorted(lists.items()):
        results = dict(pool.map(lambda n: inspect(lang, n), sorted(entries)))
        missing = [n for n, r in results.items() if r is None]
        broken = [f"{n} ({r['error']})" for n, r in results.items() if r and "error" in r]
        good = {n: r for n, r in results.items() if r and "error" not in r}
        check(not missing, f"{lang}: a WAV for each of the {len(entries)} prompts" + (f" (missing: {short(missing)})" if missing else ""))
        check(not broken, f"{lang}: every WAV opens" + (f" ({short(broken, 4)})" if broken else ""))

        wrong = [f"{n} {r['fmt']}" for n, r in good.items() if r["fmt"] != (1, 8000, 2, "NONE")]
        check(not wrong, f"{lang}: every WAV is 8 kHz mono 16-bit PCM" + (f" (not: {short(wrong, 4)})" if wrong else ""))

        if good:
            longest = max(good, key=lambda n: good[n]["seconds"])
            too_long = [f"{n} {r['seconds']:.1f} s" for n, r in good.items() if r["seconds"] > MAX_SECONDS]
            too_short = [f"{n} {r['seconds']:.3f} s" for n, r in good.items() if r["seconds"] < MIN_SECONDS]
            check(not too_long, f"{lang}: no WAV longer than {MAX_SECONDS:.0f} s (longest: {longest}, {good[longest]['seconds']:.1f} s)" + (f" (too long: {short(too_long, 4)})" if too_long else ""))
            check(not too_short, f"{lang}: no empty WAV" + (f" ({short(too_short, 4)})" if too_short else ""))

            quietest = min(good, key=lambda n: good[n]["rms"])
            silent = [f"{n} RMS {r['rms']:.4f}" for n, r in good.items() if r["rms"] < RMS_FLOOR]
            check(not silent, f"{lang}: no silent WAV (RMS floor {RMS_FLOOR}; quietest: {quietest}, {good[quietest]['rms']:.3f})" + (f" (silent: {short(silent, 4)})" if silent else ""))

            target = 10 ** (PEAK_DBFS / 20)
            lo, hi = target * 10 ** (-PEAK_TOLERANCE_DB / 20), target * 10 ** (PEAK_TOLERANCE_DB / 20)
            off = [f"{n} {r['peak']:.3f}" for n, r in good.items() if not lo <= r["peak"] <= hi]
            check(not off, f"{lang}: every WAV peaks at {PEAK_DBFS:g} dBFS (±{PEAK_TOLERANCE_DB} dB)" + (f" (off: {short(off, 4)})" if off else ""))

        listed = {os.path.join(wavdir, lang, n + ".wav") for n in entries}
        stray = []
        for root, _, files in os.walk(os.path.join(wavdir, lang)):
            for f in files:
                p = os.path.join(root, f)
                if f.endswith(".wav") and p not in listed:
                    stray.append(os.path.relpath(p, wavdir))
        check(not stray, f"{lang}: no WAV without a phrase" + (f" ({short(stray)})" if stray else ""))

        total_files += len(good)
        total_bytes += sum(os.path.getsize(os.path.join(wavdir, lang, n + ".wav")) for n in good)

print(f"{total_files} WAVs, {total_bytes / 1e6:.1f} MB")
finish()
