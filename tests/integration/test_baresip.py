"""Real softphones: two baresip instances register with Tandem, 1001 calls
1002 through Dial(SIP/1002), 1002 answers by itself, and the tone 1001 sends
(440 Hz from a WAV made with sox, through baresip's aufile source) must come
out of 1002's recording (baresip's sndfile module) loud and at 440 Hz. Once
over UDP with plain RTP, once over TLS with SRTP (SDES).

Each baresip gets its own config directory in a temporary directory, free
ports, a `-t` lifetime as a backstop, and is stopped at the end whatever
happens. Skipped (with a message) when baresip or sox is not installed."""
import math
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from baresip import TLS_DIALPLAN, TLS_ENDPOINTS, TLS_SECRETS, Phone, missing, tone_wav, wav_samples  # noqa: E402
from harness import Tandem, check, finish  # noqa: E402
from siptest import SECRETS, append_file, edits, free_port, goertzel, self_signed_cert, use_port  # noqa: E402

TONE_HZ = 440
OTHER_HZ = 1000

def analyse(path):
    """(rms, power at TONE_HZ / power at OTHER_HZ) of the recording's loud part."""
    rate, samples = wav_samples(path)
    # Leave out the first half second (jitter buffer, start of the call).
    loud = samples[rate // 2:]
    if not loud:
        return 0.0, 0.0
    rms = math.sqrt(sum(x * x for x in loud) / len(loud))
    window = loud[: rate * 2]
    tone = goertzel(window, rate, TONE_HZ)
    other = goertzel(window, rate, OTHER_HZ) or 1e-9
    return rms, tone / other


def call_test(t, label, workdir, accounts, server_port, dial_user, cafile=None):
    """A registers, B registers, A dials B, a few seconds of tone, A hangs up."""
    tone_a = os.path.join(workdir, f"tone-{TONE_HZ}.wav")
    tone_b = os.path.join(workdir, f"tone-{OTHER_HZ}.wav")
    phones = []
    try:
        b = Phone(workdir, f"{label}-callee", accounts[1], tone_b, ("g711", "srtp"), cafile)
        phones.append(b)
        a = Phone(workdir, f"{label}-caller", accounts[0], tone_a, ("g711", "srtp"), cafile)
        phones.append(a)
        users = [re.search(r"sip:(\d+)@", acc).group(1) for acc in accounts]
        registered = t.wait_for(lambda: all(u in t.rx("sip show registrations")[1] for u in users), timeout=15, interval=0.3)
        check(registered, f"{label}: both baresip phones register:\n" + t.rx("sip show registrations")[1]
              + ("" if registered else a.output()[-2000:] + b.output()[-2000:]))
        if not registered:
            return
        check(a.command("dial", f"sip:{dial_user}@127.0.0.1:{server_port}"), f"{label}: dial command sent")
        up = t.wait_for(lambda: t.channel_count() == 2, timeout=15, interval=0.2)
        check(up, f"{label}: the call is up through Dial (2 channels)"
              + ("" if up else "\n" + a.output()[-2500:] + "\n" + b.output()[-2500:] + "\n" + t.log()[-3000:]))
        if not up:
            return
        time.sleep(4)
        _, chans = t.rx("core show channels")
        a.command("hangup")
        down = t.wait_for(lambda: t.channel_count() == 0, timeout=15, interval=0.2)
        check(down, f"{label}: hangup from the caller clears every channel:\n" + chans)
        time.sleep(0.5)
        for p in phones:
            p.stop()
        got = b.recordings("dec")
        check(len(got) >= 1, f"{label}: the callee recorded what it received: {os.listdir(os.path.join(b.dir, 'dump'))}"
              + ("" if got else "\n" + b.output()[-2500:]))
        if got:
            rms, ratio = analyse(got[-1])
            check(rms > 500, f"{label}: the received audio is not silent (RMS {rms:.0f})")
            check(ratio > 20, f"{label}: it is the caller's {TONE_HZ} Hz tone ({TONE_HZ}/{OTHER_HZ} Hz power ratio "
                  f"{ratio:.1f})")
        if "srtp" in label:
            text = b.output() + a.output()
            check("RTP/SAVP" in text or "srtp" in text.lower(), f"{label}: baresip negotiated SRTP")
    finally:
        for p in phones:
            p.stop()


if missing():
    print(f"SKIP: {missing()} is not installed (contrib/install-deps.sh installs them)")
    finish()

workdir = tempfile.mkdtemp(prefix="tandem-baresip-")
try:
    for hz in (TONE_HZ, OTHER_HZ):
        tone_wav(os.path.join(workdir, f"tone-{hz}.wav"), hz)
    cert, key = self_signed_cert(workdir)
    port, tls_port = free_port(), free_port()
    t = Tandem(edit=edits(use_port(port, tlsenable="yes", tlsbindport=tls_port, tlscertfile=cert,
                                   tlsprivatekey=key, qualify="no"),
                          append_file("sip.conf", TLS_ENDPOINTS),
                          append_file("extensions.conf", TLS_DIALPLAN)))
    with t:
        udp = [f"<sip:{u}@127.0.0.1:{port}>;auth_pass={SECRETS[u]};regint=600;answermode=auto;audio_codecs=pcmu"
               for u in ("1001", "1002")]
        call_test(t, "udp", workdir, udp, port, "1002")
        tls = [f"<sip:{u}@127.0.0.1:{tls_port};transport=tls>;auth_pass={TLS_SECRETS[u]};regint=600;"
               f"answermode=auto;audio_codecs=pcmu;mediaenc=srtp-mand" for u in ("2001", "2002")]
        call_test(t, "tls-srtp", workdir, tls, tls_port, "2002", cafile=cert)
finally:
    if os.environ.get("TANDEM_KEEP_TMP"):
        print("kept", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
finish()
