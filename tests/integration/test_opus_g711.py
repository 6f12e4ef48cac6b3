"""An Opus phone talks to a G.711 phone through Tandem's translator.

Two baresip softphones register: 3001 offers only Opus (48 kHz), 3002 only
PCMU; sip.conf allows them just that (allow=opus, allow=ulaw), so Dial()
bridges an Opus leg to a µ-law leg and the media must be decoded and
re-encoded (Opus 48 kHz -> slin48 -> slin8 -> µ-law and back), not relayed.
3001 sends a 440 Hz tone, 3002 a 1000 Hz tone, both from WAV files (baresip's
aufile source); each records what it receives (sndfile module). A DFT over
each recording must find the other side's frequency within a few hertz, and
the audio must be loud. `sip show channels` must show one Opus and one µ-law
leg, and the bridge must never have relayed RTP (its debug log line); a
control call between two µ-law phones (3002 to 3003) shows that same line,
so the check can fail.

Each baresip gets its own config directory in a temporary directory, free
ports and a `-t` lifetime as a backstop, and is stopped at the end whatever
happens. Skipped (with a message) when baresip, its opus module or sox is
missing."""
import math
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from baresip import Phone, missing, tone_wav  # noqa: E402
from harness import Tandem, check, finish  # noqa: E402
from siptest import append_file, edits, free_port, goertzel, use_port  # noqa: E402

OPUS_HZ = 440    # what the Opus phone sends
ULAW_HZ = 1000   # what the µ-law phone sends

ENDPOINTS = """
[3001](office-phone)
secret = Tandem-3001-Opus-Only!
disallow = all
allow = opus
context = codec-test

[3002](office-phone)
secret = Tandem-3002-Ulaw-Only!
disallow = all
allow = ulaw
context = codec-test

[3003](office-phone)
secret = Tandem-3003-Ulaw-Only!
disallow = all
allow = ulaw
context = codec-test
"""
SECRETS = {"3001": "Tandem-3001-Opus-Only!", "3002": "Tandem-3002-Ulaw-Only!", "3003": "Tandem-3003-Ulaw-Only!"}
DIALPLAN = """
[codec-test]
exten => _300[123],1,Dial(SIP/${EXTEN},30)
"""


def analyse(path):
    """(rate, rms, dominant frequency, profile) of a recording, over the
    loudest 0.5 s window at least 0.5 s in (after the jitter buffer fills). On
    a loaded machine a phone may start sending a second late, so the window is
    searched rather than fixed. A DFT from 100 to 2000 Hz in 2 Hz steps; 48 kHz
    is averaged down to 8 kHz first. `profile` is the RMS of each 0.5 s, for
    the failure message."""
    with wave.open(path) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        return rate, 0.0, 0, "sample width %d" % width
    samples = [v for (v,) in struct.iter_unpack("<h", raw)][::channels]
    step = rate // 8000 if rate % 8000 == 0 else 1
    if step > 1:
        samples = [sum(samples[i:i + step]) / step for i in range(0, len(samples) - step + 1, step)]
    srate = rate // step
    half = srate // 2

    def rms_of(chunk):
        return math.sqrt(sum(x * x for x in chunk) / len(chunk)) if chunk else 0.0

    profile = " ".join("%.0f" % rms_of(samples[i:i + half]) for i in range(0, len(samples), half))
    starts = range(half, len(samples) - half + 1, srate // 4)
    if not starts:
        return rate, 0.0, 0, "%.2f s: %s" % (len(samples) / srate, profile)
    start = max(starts, key=lambda i: rms_of(samples[i:i + half]))
    window = samples[start:start + half]
    rms = rms_of(window)
    best = max(range(100, 2001, 2), key=lambda f: goertzel(window, srate, f))
    return rate, rms, best, "%.2f s, RMS per 0.5 s: %s" % (len(samples) / srate, profile)


def dial(t, caller, callee, port, what):
    """caller dials callee's number; True once both channels are up."""
    check(caller.command("dial", f"sip:{callee}@127.0.0.1:{port}"), f"{what}: dial command sent")
    up = t.wait_for(lambda: t.channel_count() == 2, timeout=15, interval=0.2)
    check(up, f"{what}: the call is up through Dial (2 channels)"
          + ("" if up else "\n" + caller.output()[-2500:] + "\n" + t.log()[-3000:]))
    return up


def hang_up(t, caller, what):
    # A hangup typed while baresip is still taking in the 200 OK becomes a
    # CANCEL that comes too late, and the call stays up; a phone's user would
    # press the key again, and so does the test.
    caller.command("hangup")
    cleared = t.wait_for(lambda: t.channel_count() == 0, timeout=5, interval=0.2)
    if not cleared:
        caller.command("hangup")
        cleared = t.wait_for(lambda: t.channel_count() == 0, timeout=10, interval=0.2)
    check(cleared, f"{what}: the caller's hangup clears both channels"
          + ("" if cleared else "\n" + t.rx("core show channels")[1] + caller.output()[-2500:]
             + "\n" + t.log()[-3000:]))


def call(t, workdir, port):
    tone_opus = os.path.join(workdir, f"tone-{OPUS_HZ}-48k.wav")
    tone_ulaw = os.path.join(workdir, f"tone-{ULAW_HZ}-8k.wav")
    account = "<sip:{u}@127.0.0.1:{p}>;auth_pass={s};regint=600;answermode=auto;audio_codecs={c}"
    phones = []
    try:
        b = Phone(workdir, "ulaw-callee", account.format(u="3002", p=port, s=SECRETS["3002"], c="pcmu"),
                  tone_ulaw, ["g711"], lifetime=90)
        phones.append(b)
        a = Phone(workdir, "opus-caller", account.format(u="3001", p=port, s=SECRETS["3001"], c="opus/48000/2"),
                  tone_opus, ["opus"], lifetime=90)
        phones.append(a)
        c = Phone(workdir, "ulaw-other", account.format(u="3003", p=port, s=SECRETS["3003"], c="pcmu"),
                  tone_ulaw, ["g711"], lifetime=90)
        phones.append(c)
        users = ("3001", "3002", "3003")
        registered = t.wait_for(lambda: all(u in t.rx("sip show registrations")[1] for u in users),
                                timeout=15, interval=0.3)
        check(registered, "three baresip phones register:\n" + t.rx("sip show registrations")[1]
              + ("" if registered else a.output()[-2000:] + b.output()[-2000:] + c.output()[-2000:]))
        if not registered or not dial(t, a, "3002", port, "Opus to µ-law"):
            return
        time.sleep(4)
        _, sip_channels = t.rx("sip show channels")
        _, channels = t.rx("core show channels")
        hang_up(t, a, "Opus to µ-law")
        time.sleep(0.5)
        relayed = "relaying RTP" in t.log()

        legs = [line for line in sip_channels.splitlines() if line.startswith("SIP/300")]
        check(len(legs) == 2 and any(re.search(r"\sopus\s", line) for line in legs)
              and any(re.search(r"\sulaw\s", line) for line in legs),
              "sip show channels: one leg in Opus, one in µ-law:\n" + sip_channels + channels)
        check(not relayed, "the bridge never relayed RTP: the translator carried the audio")

        # The control: two µ-law phones, where the same log does show the relay.
        if dial(t, b, "3003", port, "µ-law to µ-law"):
            check(t.wait_for(lambda: "relaying RTP" in t.log(), timeout=5),
                  "control: a µ-law to µ-law call is relayed, and the log says so")
            hang_up(t, b, "µ-law to µ-law")
        for p in phones:
            p.stop()

        for phone, hz, what in ((b, OPUS_HZ, "the µ-law phone hears the Opus phone"),
                                (a, ULAW_HZ, "the Opus phone hears the µ-law phone")):
            rec = phone.recording(0)
            check(rec is not None, f"{what}: it recorded what it received"
                  + ("" if rec else "\n" + phone.output()[-2500:]))
            if not rec:
                continue
            rate, rms, peak, profile = analyse(rec)
            check(rms > 500, f"{what}: not silence (RMS {rms:.0f}, recorded at {rate} Hz; {profile})"
                  + ("" if rms > 500 else "\n" + t.log()[-4000:]))
            check(abs(peak - hz) <= 4, f"{what}: dominant frequency {peak} Hz, sent {hz} Hz")
    finally:
        for p in phones:
            p.stop()


if missing("opus"):
    print(f"SKIP: {missing('opus')} is not installed (contrib/install-deps.sh installs them)")
    finish()

workdir = tempfile.mkdtemp(prefix="tandem-opus-")
try:
    # baresip's aufile wants the codec's rate and channels: Opus is 48 kHz stereo.
    tone_wav(os.path.join(workdir, f"tone-{OPUS_HZ}-48k.wav"), OPUS_HZ, rate=48000, channels=2)
    tone_wav(os.path.join(workdir, f"tone-{ULAW_HZ}-8k.wav"), ULAW_HZ)
    port = free_port()
    t = Tandem(edit=edits(use_port(port, qualify="no"), append_file("sip.conf", ENDPOINTS),
                          append_file("extensions.conf", DIALPLAN)))
    with t:
        # The bridge says at debug level when it relays RTP instead of translating.
        status, out = t.rx("logger set level debug")
        check(status == 0, "logger set level debug: " + out.strip())
        call(t, workdir, port)
finally:
    if os.environ.get("TANDEM_KEEP_TMP"):
        print("kept", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
finish()
