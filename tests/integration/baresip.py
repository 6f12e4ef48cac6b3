"""baresip softphones for the integration tests: each Phone is one baresip
with a config directory of its own in the test's temporary directory, free
ports, a WAV file as its microphone (the aufile module), a null speaker, and
the sndfile module recording what it decodes. It is driven over ctrl_tcp
(dial, hangup) and stopped at the end whatever happens; baresip's own `-t`
lifetime is the backstop if the test dies first.

`missing()` tells a test what is not installed, so it can skip with a message
rather than fail on a machine without baresip or sox."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from siptest import free_port  # noqa: E402

BARESIP = shutil.which("baresip")
SOX = shutil.which("sox")
MODULES = "/usr/lib/baresip/modules"


def missing(*modules):
    """What keeps the baresip tests from running here, or None: baresip, sox,
    or one of baresip's `modules` (by name, as "opus")."""
    if not BARESIP or not SOX or not os.path.isdir(MODULES):
        return "baresip or sox"
    for m in modules:
        if not os.path.isfile(os.path.join(MODULES, m + ".so")):
            return f"baresip's {m} module"
    return None


# Two phones registering over TLS with SRTP (added to the sample sip.conf and
# extensions.conf), for the softphone tests.
TLS_ENDPOINTS = """
[2001](office-phone)
secret = Tandem-2001-Over-TLS!
transport = tls
media_encryption = sdes
context = phones-tls

[2002](office-phone)
secret = Tandem-2002-Over-TLS!
transport = tls
media_encryption = sdes
context = phones-tls
"""
TLS_SECRETS = {"2001": "Tandem-2001-Over-TLS!", "2002": "Tandem-2002-Over-TLS!"}
TLS_DIALPLAN = """
[phones-tls]
exten => _200[12],1,Dial(SIP/${EXTEN},30)
"""


def wav_samples(path):
    """(rate, the first channel's 16-bit samples) of a WAV file; no samples
    when they are not 16-bit."""
    with wave.open(path) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        return rate, []
    return rate, [int.from_bytes(raw[i:i + 2], "little", signed=True) for i in range(0, len(raw) - 1, 2 * channels)]


def tone_wav(path, hz, rate=8000, channels=1, seconds=30):
    """A sine of `hz` at half scale as a 16-bit WAV: a phone's microphone.
    baresip's aufile wants the codec's own rate and channel count."""
    subprocess.run([SOX, "-n", "-r", str(rate), "-c", str(channels), "-b", "16", path,
                    "synth", str(seconds), "sine", str(hz), "vol", "0.5"], check=True, timeout=30)
    return path


def free_pair():
    """A port free for UDP and TCP whose next port is free for TCP too:
    baresip also listens (for TLS) on sip_listen's port + 1."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no free pair of ports")


class Phone:
    """One baresip registered with `account` (a baresip accounts line).

    `modules` are the codec and media-encryption modules it loads ("g711",
    "opus", "srtp"): a phone offers only the codecs it has. `cafile` is the
    CA it trusts for SIP over TLS; `lifetime` the seconds after which baresip
    quits on its own."""

    def __init__(self, workdir, name, account, source_wav, modules=("g711",), cafile=None, lifetime=60):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, "dump"))
        self.sip_port = free_pair()
        self.ctrl_port = free_port()
        while self.ctrl_port in (self.sip_port, self.sip_port + 1):
            self.ctrl_port = free_port()
        lines = ["poll_method epoll", "net_interface 127.0.0.1", f"sip_listen 127.0.0.1:{self.sip_port}",
                 f"audio_source aufile,{source_wav}", "audio_player alsa,null", "audio_alert alsa,null",
                 "audio_level no", "rtp_stats no", f"module_path {MODULES}"]
        lines += [f"module {m}.so" for m in modules]
        lines += ["module aufile.so", "module alsa.so", "module sndfile.so", "module_tmp account.so",
                  "module_app menu.so", "module_app ctrl_tcp.so", f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                  f"snd_path {os.path.join(self.dir, 'dump')}"]
        if cafile:
            lines.append(f"sip_cafile {cafile}")
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(account + "\n")
        # baresip asks for these when they are missing; empty ones keep it quiet.
        for extra in ("contacts", "current_contact", "uuid"):
            open(os.path.join(self.dir, extra), "a").close()
        self.log = open(os.path.join(self.dir, "baresip.log"), "w")
        self.proc = subprocess.Popen([BARESIP, "-f", self.dir, "-t", str(lifetime)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def command(self, command, params=""):
        """One ctrl_tcp command (a netstring of JSON); True when sent."""
        body = '{"command":"%s","params":"%s","token":"t"}' % (command, params)
        data = f"{len(body)}:{body},".encode()
        # ctrl_tcp listens a moment after baresip starts: retry until then.
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2) as s:
                    s.sendall(data)
                    try:
                        s.recv(4096)
                    except socket.timeout:
                        pass
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def output(self):
        """What baresip has printed so far."""
        if not self.log.closed:
            self.log.flush()
        with open(os.path.join(self.dir, "baresip.log"), errors="replace") as f:
            return f.read()

    def recordings(self, kind="dec"):
        """sndfile's recordings, oldest first: "dec" what the phone received
        and decoded, "enc" what it sent."""
        return sorted(glob.glob(os.path.join(self.dir, "dump", f"*{kind}*.wav")))

    def recording(self, index):
        """What the phone received in its index-th call (in time order), or None."""
        got = self.recordings("dec")
        return got[index] if len(got) > index else None

    def stop(self):
        """Ends baresip (TERM, then KILL after 5 s); safe to call again."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
