"""The sample IVR of configs/extensions.conf (extension 500), called by a real
SIP peer: SIPp places the call (PCMA and telephone-event only) and the test
is the caller's ear and keypad on the RTP port SIPp's SDP names.

The ear recognises prompts exactly: a prompt is a WAV of the build's sounds/
folder, and a G.711 channel receives its A-law encoding frame for frame, so
"heard en/ivr-options" means its bytes arrived in order. That tells English
from French without doubt and says where the caller is in the menus, so keys
(RFC 4733 events) are pressed when the IVR is listening, however loaded the
machine. Checked:

- English: the language menu offers both languages, 1 gives English prompts
  only; 2 leads to the second level (sales/support); an invalid key plays
  `invalid`, silence `ivr-timeout`, both replay the menu; 1 routes to sales
  (the log names the phone dialled, which is not registered, so the caller
  hears that and is back in the main menu); three invalid keys there end the
  call with `ivr-max-attempts` and a BYE.
- French: 2 gives French prompts only; 1 leaves a message: after the beep
  the caller sends 2 s of a 440 Hz tone and '#'; the file is a WAV checked
  with sox (8 kHz, about 2 s, 440 Hz) and by a DFT here; it is played back to
  the caller (440 Hz, as long as the file), then the goodbye and a BYE.
- Operator: 0 in the main menu dials SIP/1001, here a SIPp phone that
  registers, answers and echoes RTP: the caller hears its own tone back
  through the bridge.

Skipped (with a message) without sipp, sox or the generated prompts."""
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
import wave

with warnings.catch_warnings():
    # G.711 both ways in a few lines; Python 3.11 (Debian 12) still has it.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import SIPP, goertzel, registered_uas, sipp_call  # noqa: E402

SOX = shutil.which("sox")
BUILD = os.environ.get("TANDEM_BUILD_DIR", "build")
SOUNDS = os.environ.get("TANDEM_SOUNDS_DIR", os.path.join(BUILD, "sounds"))
FRAME = 160  # 20 ms of A-law at 8 kHz
PT_PCMA, PT_EVENT = 8, 101
SILENCE = b"\xd5" * FRAME  # A-law of 0
TONE_HZ = 440


class Prompt:
    """A prompt file as the caller receives it: its A-law frames."""

    def __init__(self, lang, name):
        with wave.open(os.path.join(SOUNDS, lang, name + ".wav")) as w:
            assert w.getframerate() == 8000 and w.getsampwidth() == 2 and w.getnchannels() == 1
            pcm = w.readframes(w.getnframes())
        alaw = audioop.lin2alaw(pcm, 2)
        # Whole frames only: how the last partial one is padded is not the test's business.
        self.frames = [alaw[i:i + FRAME] for i in range(0, len(alaw) - FRAME + 1, FRAME)]
        self.name = f"{lang}/{name}"


class Caller:
    """The caller's RTP side: receives on one UDP port, keeps every packet, and
    sends one packet every 20 ms to wherever Tandem's RTP comes from: A-law
    silence, a tone, or RFC 4733 events for a key."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.received = []        # (pt, payload) in arrival order
        self.audio = bytearray()  # PCMA payloads of full frames, concatenated
        self.remote = None
        self.queue = []           # what to send next: ("key", d) or ("tone", seconds)
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._receive, daemon=True),
                        threading.Thread(target=self._send, daemon=True)]
        for th in self.threads:
            th.start()

    def _receive(self):
        self.sock.settimeout(0.1)
        while not self.stop_flag.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            pt = data[1] & 0x7F
            cc = data[0] & 0x0F
            payload = data[12 + 4 * cc:]
            with self.lock:
                self.remote = self.remote or addr
                self.received.append((pt, payload))
                if pt == PT_PCMA and len(payload) == FRAME:
                    self.audio += payload

    def _send(self):
        seq, ts, ssrc = 1000, 8000, 0x1234ABCD
        tick = time.monotonic()
        phase = 0
        pending = []  # packets (pt, marker, timestamp, payload) of the current action
        while not self.stop_flag.is_set():
            tick += 0.02
            delay = tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self.lock:
                remote = self.remote
                if not pending and self.queue:
                    what, arg = self.queue.pop(0)
                    if what == "key":
                        code = "0123456789*#".index(arg)
                        # 100 ms of key, then the end packet three times, one timestamp throughout.
                        for i in range(1, 6):
                            pending.append((PT_EVENT, i == 1, ts, struct.pack("!BBH", code, 10, i * FRAME)))
                        for _ in range(3):
                            pending.append((PT_EVENT, False, ts, struct.pack("!BBH", code, 0x80 | 10, 5 * FRAME)))
                        pending.append(("advance", 8 * FRAME))
                    else:
                        w = 2 * math.pi * TONE_HZ / 8000
                        for _ in range(int(arg * 50)):
                            pcm = b"".join(struct.pack("<h", int(8000 * math.sin(w * (phase + k))))
                                           for k in range(FRAME))
                            phase += FRAME
                            pending.append((PT_PCMA, False, None, audioop.lin2alaw(pcm, 2)))
            if remote is None:
                continue
            if pending and pending[0][0] == "advance":
                ts += pending.pop(0)[1]
            if pending:
                pt, marker, at, payload = pending.pop(0)
            else:
                pt, marker, at, payload = PT_PCMA, False, None, SILENCE
            stamp = ts if at is None else at
            header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, stamp & 0xFFFFFFFF, ssrc)
            seq += 1
            if at is None:
                ts += FRAME
            try:
                self.sock.sendto(header + payload, remote)
            except OSError:
                pass

    def press(self, digits):
        with self.lock:
            self.queue += [("key", d) for d in digits]

    def send_tone(self, seconds):
        with self.lock:
            self.queue.append(("tone", seconds))

    def idle(self):
        with self.lock:
            return not self.queue

    def frames(self):
        with self.lock:
            return bytes(self.audio)

    def find(self, prompt, start=0, need=None):
        """Frame index just after `prompt` heard from frame `start` on (the
        first `need` of its frames, default all), or None."""
        audio = self.frames()
        need = len(prompt.frames) if need is None else min(need, len(prompt.frames))
        first = prompt.frames[0]
        pos = start * FRAME
        while True:
            pos = audio.find(first, pos)
            if pos < 0:
                return None
            if pos % FRAME == 0:
                n = pos // FRAME
                if all(audio[(n + i) * FRAME:(n + i + 1) * FRAME] == prompt.frames[i] for i in range(need)):
                    return n + need
            pos += 1

    def wait(self, prompt, start=0, need=None, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            end = self.find(prompt, start, need)
            if end is not None:
                return end
            time.sleep(0.05)
        return None

    def close(self):
        self.stop_flag.set()
        for th in self.threads:
            th.join(timeout=2)
        self.sock.close()


def rms(alaw):
    pcm = audioop.alaw2lin(alaw, 2)
    return audioop.rms(pcm, 2) if pcm else 0


def is_tone(samples):
    """A loud 20 ms frame of TONE_HZ (not the 1 kHz beep, not a voice)."""
    if not samples or math.sqrt(sum(x * x for x in samples) / len(samples)) < 1000:
        return False
    return goertzel(samples, 8000, TONE_HZ) > 20 * max(goertzel(samples, 8000, 1000), goertzel(samples, 8000, 700))


def beep_frames(caller, start):
    """How many loud 1 kHz frames arrived from frame `start` on."""
    audio = caller.frames()
    count = 0
    for n in range(start, len(audio) // FRAME):
        pcm = pcm_samples(audioop.alaw2lin(audio[n * FRAME:(n + 1) * FRAME], 2))
        loud = math.sqrt(sum(x * x for x in pcm) / FRAME) > 1000
        if loud and goertzel(pcm, 8000, 1000) > 20 * goertzel(pcm, 8000, TONE_HZ):
            count += 1
    return count


def peak_frequency(samples, rate, lo=100, hi=2000, step=5):
    best = max(range(lo, hi + 1, step), key=lambda f: goertzel(samples, rate, f))
    return best


def pcm_samples(data):
    return [v for (v,) in struct.iter_unpack("<h", data)]


def diagnose(t, caller, found):
    """What the caller and Tandem saw, when the first prompt never came."""
    if found is not None:
        return ""
    with caller.lock:
        got = len(caller.received)
    return (f":\n{got} RTP packets received from {caller.remote}\n" + t.rx("core show channels")[1]
            + t.rx("sip show channels")[1] + t.rx("rtp show sessions")[1])


def start_call(t, caller, user="1001", timeout=150):
    return sipp_call("ivr_call", t.sip_port, "500", user=user, timeout=timeout, cwd=t.dir, background=True,
                     rtp_port=caller.port)


def end_call(proc, what, wait=20):
    try:
        out, _ = proc.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        check(False, f"{what}: SIPp still waiting for the BYE:\n{out[-2000:]}")
        return
    check(proc.returncode == 0, f"{what}: SIPp's call ends with Tandem's BYE, answered"
          + ("" if proc.returncode == 0 else ":\n" + out[-3000:]))


def english_menus(t, p):
    caller = Caller()
    proc = start_call(t, caller)
    try:
        lang_en = caller.wait(p["en/welcome"], timeout=20)
        check(lang_en is not None, "the language menu plays 'welcome' in English" + diagnose(t, caller, lang_en))
        if lang_en is None:
            return
        lang_fr = caller.wait(p["fr/welcome"], lang_en)
        check(lang_fr is not None, "then in French (Background's language argument)")
        with caller.lock:
            pts = {pt for pt, _ in caller.received}
            count = len(caller.received)
        check(pts == {PT_PCMA}, f"prompts arrive as PCMA, payload type 8 ({sorted(pts)})")
        check(count >= 40, f"{count} RTP packets of prompts so far")
        audio = caller.frames()
        check(rms(audio[:lang_fr * FRAME]) > 500, f"and they are not silence (RMS {rms(audio[:lang_fr * FRAME])})")

        caller.press("1")
        main = caller.wait(p["en/ivr-options"], lang_fr, need=10)
        check(main is not None, "1: the main menu in English")
        if main is None:
            return
        caller.press("2")
        dept = caller.wait(p["en/ivr-previous"], main)
        check(dept is not None, "2: the second level (its options end with 'to go back, press pound')")
        if dept is None:
            return
        check(caller.find(p["fr/ivr-options"]) is None and caller.find(p["fr/ivr-previous"]) is None,
              "no French prompt after choosing English")
        check(re.search(r"IVR main menu in en for 1001", t.log()) is not None, "the log shows the main menu in en")

        caller.press("9")
        bad = caller.wait(p["en/invalid"], dept)
        check(bad is not None, "an invalid key: 'That is not a valid choice'")
        again = bad and caller.wait(p["en/ivr-previous"], bad)
        check(again is not None, "and the second-level options again")
        if not again:
            return
        late = caller.wait(p["en/ivr-timeout"], again, timeout=15)
        check(late is not None, "silence: 'We did not receive your choice'")
        if late is None:
            return
        menu3 = caller.wait(p["en/dept-sales"], late, need=3)
        check(menu3 is not None, "and the options once more")
        caller.press("1")
        wait = caller.wait(p["en/pls-wait-connect-call"], menu3 or late)
        check(wait is not None, "1: 'Please wait while I connect your call'")
        check(t.wait_for(lambda: "IVR routes 1001 to SIP/1001" in t.log(), timeout=5),
              "the dialplan routes the caller to sales (SIP/1001)")
        unavail = wait and caller.wait(p["en/is-curntly-unavail"], wait)
        check(unavail is not None, "1001 is not registered: 'is not available at the moment'")
        if not unavail:
            return
        back = caller.wait(p["en/ivr-options"], unavail, need=10)
        check(back is not None, "and the caller is back in the main menu")
        if back is None:
            return
        at = back
        for i in range(3):
            caller.press("9")
            at = caller.wait(p["en/invalid"], at, timeout=20)
            if at is None:
                break
        check(at is not None, "three invalid keys in the main menu are each refused")
        end = at and caller.wait(p["en/ivr-max-attempts"], at)
        check(end is not None, "then 'too many invalid attempts'")
        check(end is not None and caller.wait(p["en/goodbye"], end) is not None, "and 'goodbye'")
        end_call(proc, "english")
        proc = None
        check(re.search(r"IVR gives up on 1001 after 3 tries", t.log()) is not None, "the log says why it hung up")
    finally:
        if proc is not None:
            proc.kill()
            proc.communicate()
        caller.close()


def french_message(t, p):
    caller = Caller()
    proc = start_call(t, caller)
    try:
        fr = caller.wait(p["fr/welcome"], timeout=20)
        check(fr is not None, "French: the language menu says 'Bienvenue'" + diagnose(t, caller, fr))
        if fr is None:
            return
        caller.press("2")
        main = caller.wait(p["fr/ivr-options"], fr, need=10)
        check(main is not None, "2: the main menu in French")
        if main is None:
            return
        caller.press("1")
        intro = caller.wait(p["fr/vm-intro"], main)
        check(intro is not None, "1: 'Veuillez laisser votre message après le bip sonore'")
        if intro is None:
            return
        check(caller.find(p["en/ivr-options"]) is None and caller.find(p["en/vm-intro"]) is None,
              "no English prompt after choosing French")
        # Record listens once its beep (1 kHz, 260 ms) has been sent.
        check(t.wait_for(lambda: beep_frames(caller, intro) >= 12, timeout=10), "the beep")
        time.sleep(0.1)
        caller.send_tone(2.0)
        caller.press("#")
        saved = caller.wait(p["fr/vm-msgsaved"], intro, timeout=20)
        check(saved is not None, "'#' ends the recording; it is played back, then 'Votre message a été enregistré'")
        check(saved is not None and caller.wait(p["fr/goodbye"], saved) is not None, "and 'Au revoir'")
        end_call(proc, "french")
        proc = None

        m = re.search(r"IVR recorded (\S+\.wav) \((\w+)\)", t.log())
        check(m is not None and m.group(2) == "DTMF", "the log names the message, ended by a key: "
              + (m.group(0) if m else "no line"))
        if not m:
            return
        path = m.group(1)
        check(path.startswith(t.path("spool", "ivr-messages") + "/msg-"), f"under spool/ivr-messages ({path})")
        check(os.path.isfile(path) and not os.path.exists(path + ".tmp"), "the file is there, no temporary left")
        if not os.path.isfile(path):
            return
        info = subprocess.run([SOX, "--i", path], capture_output=True, text=True).stdout
        check("Sample Rate    : 8000" in info and "Channels       : 1" in info, "sox: 8 kHz mono WAV")
        d = re.search(r"Duration\s+:\s+(\d+):(\d+):([\d.]+)", info)
        dur = float(d.group(3)) + 60 * int(d.group(2)) if d else 0
        check(1.7 <= dur <= 2.8, f"about the 2 s of tone sent ({dur:.2f} s)")
        stat = subprocess.run([SOX, path, "-n", "stat"], capture_output=True, text=True).stderr
        rough = re.search(r"Rough\s+frequency:\s+(\d+)", stat)
        check(rough and 400 <= int(rough.group(1)) <= 480,
              f"sox: roughly {TONE_HZ} Hz ({rough.group(1) if rough else '?'})")
        with wave.open(path) as w:
            samples = pcm_samples(w.readframes(w.getnframes()))
        frames = [samples[i:i + FRAME] for i in range(0, len(samples) - FRAME + 1, FRAME)]
        in_file = sum(1 for f in frames if is_tone(f)) * 0.02
        check(1.8 <= in_file <= 2.1, f"{in_file:.2f} s of it is the tone (the rest: silence before it)")
        loud = [i for i, f in enumerate(frames) if is_tone(f)]
        window = samples[loud[0] * FRAME:loud[0] * FRAME + 4000] if loud else []
        peak = peak_frequency(window, 8000) if window else 0
        check(abs(peak - TONE_HZ) <= 5, f"its dominant frequency is {peak} Hz (DFT over 0.5 s)")

        # What the caller heard between the prompt and "message saved": the beep, then its own tone.
        audio = caller.frames()
        end = caller.find(p["fr/vm-msgsaved"], intro) - len(p["fr/vm-msgsaved"].frames)
        heard_frames = [pcm_samples(audioop.alaw2lin(audio[n * FRAME:(n + 1) * FRAME], 2)) for n in range(intro, end)]
        heard = sum(1 for f in heard_frames if is_tone(f)) * 0.02
        check(abs(heard - in_file) <= 0.1, f"the message is played back: {heard:.2f} s of {TONE_HZ} Hz heard "
              f"for {in_file:.2f} s in the file")
    finally:
        if proc is not None:
            proc.kill()
            proc.communicate()
        caller.close()


def operator(t, p):
    """1002 calls; 0 in the main menu reaches the operator, 1001: a SIPp phone
    registered as 1001 that answers and echoes the audio back."""
    rc, out, uas = registered_uas(t.sip_port, "1001", "uas_answer", cwd=t.dir, echo=True, timeout=60)
    check(rc == 0, "operator: 1001 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    if rc != 0:
        uas.kill()
        uas.communicate()
        return
    caller = Caller()
    proc = start_call(t, caller, user="1002")
    try:
        start = caller.wait(p["en/welcome"], timeout=20)
        check(start is not None, "operator: the IVR answers 1002" + diagnose(t, caller, start))
        if start is None:
            return
        caller.press("1")
        main = caller.wait(p["en/ivr-options"], start, need=10)
        check(main is not None, "operator: 1, the main menu")
        if main is None:
            return
        caller.press("0")
        wait = caller.wait(p["en/pls-wait-connect-call"], main)
        check(wait is not None, "operator: 0, 'Please wait while I connect your call'")
        check(t.wait_for(lambda: "IVR routes 1002 to SIP/1001" in t.log(), timeout=5),
              "operator: the dialplan routes 1002 to SIP/1001")
        up = t.wait_for(lambda: t.channel_count() == 2, timeout=10)
        check(up, "operator: 1001 answers (2 channels)" + ("" if up else ":\n" + t.rx("core show channels")[1]))
        if not up:
            return
        caller.send_tone(1.0)

        def echoed():
            audio = caller.frames()
            frames = [pcm_samples(audioop.alaw2lin(audio[n * FRAME:(n + 1) * FRAME], 2))
                      for n in range(wait, len(audio) // FRAME)]
            return sum(1 for f in frames if is_tone(f)) >= 40

        check(t.wait_for(echoed, timeout=5, interval=0.2),
              f"operator: the caller hears its {TONE_HZ} Hz tone back from the operator's phone (0.8 s or more)")
        _, chans = t.rx("core show channels")
        name = re.search(r"^(SIP/1002-\S+)", chans, re.M)
        if name:
            t.rx(f"channel request hangup {name.group(1)}")
        end_call(proc, "operator")
        proc = None
        try:
            out, _ = uas.communicate(timeout=20)
            check(uas.returncode == 0, "operator: the operator's phone gets the BYE"
                  + ("" if uas.returncode == 0 else ":\n" + out[-2000:]))
        except subprocess.TimeoutExpired:
            check(False, "operator: the operator's phone gets the BYE (still waiting)")
    finally:
        if t.channel_count() != 0:
            t.rx("channel request hangup all")
        for pr in (proc, uas):
            if pr is not None and pr.poll() is None:
                pr.kill()
                pr.communicate()
        caller.close()


if not SIPP or not SOX:
    print("SKIP: sipp or sox is not installed (contrib/install-deps.sh installs them)")
    finish()
if not os.path.isfile(os.path.join(SOUNDS, "fr", "vm-intro.wav")):
    print(f"SKIP: no generated prompts in {SOUNDS} (build the 'sounds' target)")
    finish()

NAMES = ["welcome", "ivr-options", "ivr-previous", "invalid", "ivr-timeout", "dept-sales", "pls-wait-connect-call",
         "is-curntly-unavail", "ivr-max-attempts", "goodbye", "vm-intro", "vm-msgsaved"]
prompts = {f"{lang}/{n}": Prompt(lang, n) for lang in ("en", "fr") for n in NAMES}
check(all(prompts[f"en/{n}"].frames != prompts[f"fr/{n}"].frames for n in NAMES),
      "every prompt used differs between English and French")

def no_qualify(conf_dir):
    """The operator's SIPp phone follows a script: an OPTIONS from qualify
    would break it. Everything else is the sample configuration as shipped."""
    path = os.path.join(conf_dir, "sip.conf")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"(?m)^qualify = yes", "qualify = no", text))


t = Tandem(edit=no_qualify)
with t:
    status, out = t.rx("dialplan show 500@phones")
    check(status == 0 and "ivr-language" in out, "a phone reaches the IVR at 500:\n" + out)
    english_menus(t, prompts)
    t.wait_for(lambda: t.channel_count() == 0, timeout=5)
    french_message(t, prompts)
    t.wait_for(lambda: t.channel_count() == 0, timeout=5)
    operator(t, prompts)
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
finish()
