"""A real tandem process for integration tests.

Copies configs/ into a fresh temporary directory, points every directory of
tandem.conf into it, starts `tandem -f`, and drives it with `tandem -rx`.
Everything is bounded in time and the process is always stopped.
"""
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("TANDEM_BIN", "build/bin/tandem")
SRC = os.environ.get("TANDEM_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULE_DIR = os.environ.get("TANDEM_MODULE_DIR", "")

failures = 0

# RTP ports for the PBXs under test: slots of RTP_SLOT ports below the
# ephemeral range (where free_port() and the phones' media ports come from).
RTP_FIRST, RTP_SLOT, RTP_SLOTS = 10000, 1000, 22


def free_port():
    """A UDP and TCP port nobody on 127.0.0.1 uses right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def rtp_slot():
    """(first port, lock file) of an RTP range no other running test holds.

    Parallel tests must not share RTP ports: when one test's call ends, its
    peer may go on sending to the port for a moment, and another PBX that
    took the port would learn that stream as its own caller's. A slot is held
    by an flock on its file until released (or the process exits). None when
    every slot is taken; the PBX then keeps rtp.conf's range."""
    start = os.getpid() % RTP_SLOTS
    for i in range(RTP_SLOTS):
        slot = (start + i) % RTP_SLOTS
        f = open(os.path.join(tempfile.gettempdir(), f"tandem-it-rtp-{slot}.lock"), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return RTP_FIRST + slot * RTP_SLOT, f
        except OSError:
            f.close()
    return None


def check(cond, what):
    global failures
    if cond:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}")


def finish():
    print(f"{'FAILED' if failures else 'PASSED'} ({failures} failures)")
    sys.exit(1 if failures else 0)


class Tandem:
    def __init__(self, extra_modules_conf=None, edit=None):
        self.dir = tempfile.mkdtemp(prefix="tandem-it-")
        self.conf = os.path.join(self.dir, "etc")
        shutil.copytree(os.path.join(SRC, "configs"), self.conf)
        with open(os.path.join(self.conf, "tandem.conf")) as f:
            text = f.read()
        text = re.sub(r"(?m)^run => .*$", f"run => {self.dir}/run", text)
        text = re.sub(r"(?m)^spool => .*$", f"spool => {self.dir}/spool", text)
        text = re.sub(r"(?m)^db => .*$", f"db => {self.dir}/lib", text)
        text = re.sub(r"(?m)^log => .*$", f"log => {self.dir}/log", text)
        text = re.sub(r"(?m)^loops = .*$", "loops = 2", text)
        if MODULE_DIR:
            text = re.sub(r"(?m)^; modules =.*$", f"modules => {MODULE_DIR}", text)
        with open(os.path.join(self.conf, "tandem.conf"), "w") as f:
            f.write(text)
        # Tests run in parallel: each PBX gets its own SIP port.
        self.sip_port = free_port()
        sip_conf = os.path.join(self.conf, "sip.conf")
        if os.path.exists(sip_conf):
            with open(sip_conf) as f:
                text = f.read()
            text = re.sub(r"(?m)^bindport\s*=.*$", f"bindport = {self.sip_port}", text)
            # And its own TLS port, when the file enables TLS.
            self.tls_port = free_port()
            text = re.sub(r"(?m)^tlsbindport\s*=.*$", f"tlsbindport = {self.tls_port}", text)
            with open(sip_conf, "w") as f:
                f.write(text)
        # And its own RTP ports.
        first, self.rtp_lock = rtp_slot() or (None, None)
        rtp_conf = os.path.join(self.conf, "rtp.conf")
        if first and os.path.exists(rtp_conf):
            with open(rtp_conf) as f:
                text = f.read()
            text = re.sub(r"(?m)^rtpstart\s*=.*$", f"rtpstart = {first}", text)
            text = re.sub(r"(?m)^rtpend\s*=.*$", f"rtpend = {first + RTP_SLOT - 1}", text)
            with open(rtp_conf, "w") as f:
                f.write(text)
        if edit:
            edit(self.conf)
        self.proc = None

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def start(self, timeout=20):
        self.out = open(self.path("stdout.log"), "w")
        self.proc = subprocess.Popen([BIN, "-f", "-C", self.conf], stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tandem exited at start ({self.proc.returncode}):\n" + self.log())
            if os.path.exists(self.path("run", "tandem.ctl")):
                status, _ = self.rx("core show version")
                if status == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError("tandem did not come up:\n" + self.log())

    def log(self):
        try:
            with open(self.path("stdout.log")) as f:
                return f.read()
        except OSError:
            return ""

    def rx(self, command, timeout=60):
        r = subprocess.run([BIN, "-C", self.conf, "-rx", command], capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def wait_for(self, predicate, timeout=10, interval=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return False

    def channel_count(self):
        _, out = self.rx("core show channels count")
        m = re.search(r"(\d+) active channel", out)
        return int(m.group(1)) if m else -1

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        self.stop()
        if self.rtp_lock:
            self.rtp_lock.close()
            self.rtp_lock = None
        # A sanitizer build (-DTANDEM_SANITIZE=ON) reports on Tandem's
        # stderr, leaks at exit included: any report fails the test.
        log = self.log()
        m = re.search(r"^(==\d+==ERROR: \w+Sanitizer|.*: runtime error: )", log, re.M)
        check(m is None, "no sanitizer report" + ("" if m is None else ":\n" + log[m.start():m.start() + 4000]))
        if os.environ.get("TANDEM_KEEP_TMP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            print(self.log())
        self.cleanup()
