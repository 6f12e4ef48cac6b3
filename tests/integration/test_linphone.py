"""Real softphones of two makes: a Linphone console phone (linphonec) and a
baresip register with Tandem and call each other through Dial(), both ways.
Each sends a tone from a WAV file (linphonec 440 Hz, baresip 1000 Hz) and
records what it receives; each recording must carry the other phone's tone,
so the audio is relayed both ways. Linphone offers what baresip does not
(Opus, Speex, G.729 and three telephone-events, rtcp-xr, a +sip.instance in
its Contact), and puts the call on hold and back with re-INVITEs (sendonly,
then sendrecv) before hanging up. Once over UDP with plain RTP, once over TLS
with SRTP (SDES).

Each phone gets its own directory in a temporary directory, free ports, a
bounded lifetime, and is stopped at the end whatever happens. Skipped (with a
message) when linphonec, baresip or sox is not installed."""
import math
import os
import re
import shutil
import sys
import tempfile
import time
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

import baresip  # noqa: E402
import linphone  # noqa: E402
from harness import Tandem, check, finish  # noqa: E402
from siptest import SECRETS, append_file, edits, free_port, goertzel, self_signed_cert, use_port  # noqa: E402

LINPHONE_HZ = 440
BARESIP_HZ = 1000

def analyse(path, want_hz, other_hz, tail=False):
    """(rms, power at want_hz / power at other_hz) over two seconds of the
    recording: from half a second in (jitter buffer, start of the call), or
    the last two seconds when `tail`."""
    try:
        rate, samples = baresip.wav_samples(path)
    except (OSError, EOFError, wave.Error):
        return 0.0, 0.0
    window = samples[-2 * rate:] if tail else samples[rate // 2:rate // 2 + 2 * rate]
    if len(window) < rate:
        return 0.0, 0.0
    rms = math.sqrt(sum(x * x for x in window) / len(window))
    return rms, goertzel(window, rate, want_hz) / (goertzel(window, rate, other_hz) or 1e-9)


def heard(label, what, path, want_hz, other_hz, tail=False):
    """Checks that the recording at `path` is loud and carries `want_hz`."""
    rms, ratio = analyse(path, want_hz, other_hz, tail)
    check(rms > 500 and ratio > 20, f"{label}: {what} ({path and os.path.basename(path)}: RMS {rms:.0f}, "
          f"{want_hz}/{other_hz} Hz power ratio {ratio:.1f})")


def sip_trace(phone):
    """The request and status lines linphone sent and received: what a
    failure message shows."""
    return "\n".join(re.findall(r"(?m)^(?:[A-Z]+ sips?:\S+ SIP/2\.0|SIP/2\.0 \d{3} .*)$", phone.debug_log()))


def scenario(t, label, workdir, users, secrets, server_port, transport, cafile=None, srtp=False):
    """linphonec (users[0]) calls baresip (users[1]), holds and resumes, hangs
    up; then baresip calls linphonec, which answers by itself."""
    tone_l = os.path.join(workdir, f"tone-{LINPHONE_HZ}.wav")
    tone_b = os.path.join(workdir, f"tone-{BARESIP_HZ}.wav")
    lin_user, bs_user = users
    phones = []
    try:
        uri = f"<sip:{bs_user}@127.0.0.1:{server_port}" + (";transport=tls>" if transport == "tls" else ">")
        account = (f"{uri};auth_pass={secrets[bs_user]};regint=600;answermode=auto;audio_codecs=pcmu"
                   + (";mediaenc=srtp-mand" if srtp else ""))
        b = baresip.Phone(workdir, f"{label}-baresip", account, tone_b, ("g711", "srtp"), cafile, lifetime=120)
        phones.append(b)
        first_rec = os.path.join(workdir, f"{label}-linphone-1.wav")
        a = linphone.Phone(workdir, f"{label}-linphone", lin_user, secrets[lin_user], server_port, tone_l, first_rec,
                           transport=transport, cafile=cafile, srtp=srtp, auto_answer=True, lifetime=120)
        phones.append(a)

        def registrations():
            return t.rx("sip show registrations")[1]

        registered = t.wait_for(lambda: all(re.search(rf"(?m)^{u}\s", registrations()) for u in users),
                                timeout=30, interval=0.3)
        check(registered, f"{label}: linphonec and baresip register:\n" + registrations()
              + ("" if registered else sip_trace(a) + "\n" + a.output()[-2000:] + b.output()[-2000:]))
        if not registered:
            return
        check("Linphonec/" in registrations(), f"{label}: the registration shows linphone's User-Agent")

        # linphonec calls baresip.
        domain = f"127.0.0.1:{server_port}" + (";transport=tls" if transport == "tls" else "")
        a.command(f"call sip:{bs_user}@{domain}")
        up = t.wait_for(lambda: t.channel_count() == 2, timeout=30, interval=0.2)
        media = up and a.wait_output(r"Media streams established", timeout=20)
        check(bool(media), f"{label}: linphonec's call to baresip is up through Dial, media flowing"
              + ("" if media else "\n" + sip_trace(a) + "\n" + a.output()[-2500:] + "\n" + b.output()[-2500:]
                 + "\n" + t.log()[-3000:]))
        if not media:
            return
        time.sleep(3)
        # Hold and resume: two re-INVITEs (sendonly, then sendrecv again).
        mark = len(a.output())
        a.command("pause")
        held = a.wait_output(r"is now paused", timeout=20, since=mark)
        check(bool(held), f"{label}: Tandem accepts linphone's re-INVITE to hold (sendonly)"
              + ("" if held else "\n" + sip_trace(a) + "\n" + a.output()[mark:]))
        time.sleep(1)
        mark = len(a.output())
        a.command("resume")
        resumed = a.wait_output(r"Media streams established", timeout=20, since=mark)
        check(bool(resumed), f"{label}: and the one to resume (sendrecv)"
              + ("" if resumed else "\n" + sip_trace(a) + "\n" + a.output()[mark:]))
        time.sleep(3.5)
        check(t.channel_count() == 2, f"{label}: the call is still up after hold and resume")
        mark = len(a.output())
        a.command("terminate")
        down = t.wait_for(lambda: t.channel_count() == 0, timeout=20, interval=0.2)
        check(down, f"{label}: linphonec's hang-up clears every channel")
        a.wait_output(r"ended", timeout=10, since=mark)
        # baresip may start a new recording when the hold changes its stream.
        first_call = b.recordings("dec")
        check(len(first_call) >= 1, f"{label}: baresip recorded the call")
        if first_call:
            heard(label, "baresip hears linphone's tone", first_call[0], LINPHONE_HZ, BARESIP_HZ)
            heard(label, "and still after hold and resume", first_call[-1], LINPHONE_HZ, BARESIP_HZ, tail=True)
        heard(label, "linphone hears baresip's tone", first_rec, BARESIP_HZ, LINPHONE_HZ)

        # baresip calls linphonec, which answers by itself (-a).
        second_rec = os.path.join(workdir, f"{label}-linphone-2.wav")
        a.command(f"record {second_rec}")
        mark = len(a.output())
        check(b.command("dial", f"sip:{lin_user}@{domain}"), f"{label}: baresip's dial command sent")
        up = t.wait_for(lambda: t.channel_count() == 2, timeout=30, interval=0.2)
        media = up and a.wait_output(r"Media streams established", timeout=20, since=mark)
        check(bool(media), f"{label}: baresip's call to linphonec is up, linphonec answered by itself"
              + ("" if media else "\n" + sip_trace(a) + "\n" + a.output()[mark:] + "\n" + b.output()[-2500:]
                 + "\n" + t.log()[-3000:]))
        if not media:
            return
        time.sleep(4)
        b.command("hangup")
        down = t.wait_for(lambda: t.channel_count() == 0, timeout=20, interval=0.2)
        check(down, f"{label}: baresip's hang-up clears every channel")
        a.wait_output(r"ended", timeout=10, since=mark)
        for p in phones:
            p.stop()
        heard(label, "linphone, answering, hears baresip's tone", second_rec, BARESIP_HZ, LINPHONE_HZ)
        got = [r for r in b.recordings("dec") if r not in first_call]
        check(len(got) >= 1, f"{label}: baresip recorded its call")
        if got:
            heard(label, "baresip hears the answering linphone's tone", got[0], LINPHONE_HZ, BARESIP_HZ)
        if srtp:
            trace = a.debug_log()
            check(re.search(r"(?m)^m=audio \d+ RTP/SAVP", trace) and "a=crypto:" in trace,
                  f"{label}: linphone and Tandem negotiated SRTP (RTP/SAVP with a=crypto)")
        check(t.proc.poll() is None and not re.search(r"AddressSanitizer|runtime error:|Assertion", t.log()),
              f"{label}: Tandem is still running, with no sanitizer report or failed assertion in its log")
    finally:
        for p in phones:
            p.stop()


if linphone.missing() or baresip.missing():
    print(f"SKIP: {linphone.missing() or baresip.missing()} is not installed (contrib/install-deps.sh installs it)")
    finish()

workdir = tempfile.mkdtemp(prefix="tandem-linphone-")
try:
    baresip.tone_wav(os.path.join(workdir, f"tone-{LINPHONE_HZ}.wav"), LINPHONE_HZ)
    baresip.tone_wav(os.path.join(workdir, f"tone-{BARESIP_HZ}.wav"), BARESIP_HZ)
    # linphone's TLS (mbedTLS 2) matches the host only against DNS names of
    # the subjectAltName, never an IP entry: the address is in both.
    cert, key = self_signed_cert(workdir)
    port, tls_port = free_port(), free_port()
    t = Tandem(edit=edits(use_port(port, tlsenable="yes", tlsbindport=tls_port, tlscertfile=cert,
                                   tlsprivatekey=key, qualify="no"),
                          append_file("sip.conf", baresip.TLS_ENDPOINTS),
                          append_file("extensions.conf", baresip.TLS_DIALPLAN)))
    with t:
        scenario(t, "udp", workdir, ("1001", "1002"), SECRETS, port, "udp")
        scenario(t, "tls-srtp", workdir, ("2001", "2002"), baresip.TLS_SECRETS, tls_port, "tls", cafile=cert, srtp=True)
finally:
    if os.environ.get("TANDEM_KEEP_TMP"):
        print("kept", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
finish()
