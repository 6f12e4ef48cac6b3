"""Linphone softphones for the integration tests: each Phone is one linphonec
(Debian package linphone-cli) with a linphonerc and a HOME of its own in the
test's temporary directory, a free SIP port, RTP ports in a range the test
picks, and no sound card: in linphonec's file mode a WAV file is its
microphone (`play`) and what it decodes goes to another WAV (`record`).

It is driven through its standard input, one console command a line
(linphonecsh would share one socket per user between every linphonec, which
parallel tests cannot afford). linphonec does not quit when its input closes,
so coreutils' `timeout` bounds its life in case the test dies first; `stop()`
ends it whatever happens.

`missing()` tells a test what is not installed, so it can skip with a message
rather than fail on a machine without linphonec."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from siptest import free_port  # noqa: E402

LINPHONEC = shutil.which("linphonec")
TIMEOUT = shutil.which("timeout")


def missing():
    """What keeps the linphone tests from running here, or None."""
    if not LINPHONEC or not TIMEOUT:
        return "linphonec (Debian package linphone-cli)"
    return None


def free_udp_range(count=20):
    """The first port of `count` consecutive UDP ports free on 127.0.0.1: the
    phone's RTP range (linphone picks its RTP and RTCP ports inside it)."""
    for _ in range(50):
        base = free_port()
        if base % 2:
            base += 1
        if base + count > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                socks.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                socks[-1].bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} free UDP ports in a row")


class Phone:
    """One linphonec registered as `user` with `password` to Tandem at
    127.0.0.1:`server_port`.

    `transport` is "udp" or "tls" (then `cafile` is the CA it trusts and
    `srtp` asks for SDES SRTP, mandatory). `source_wav` is what it sends in a
    call, `record_wav` where it writes what it receives. `auto_answer` answers
    incoming calls by itself. `settings` adds linphonerc lines by section
    ({"net": ["key=value"]}). `lifetime` is the seconds after which it is
    killed whatever happens."""

    def __init__(self, workdir, name, user, password, server_port, source_wav, record_wav,
                 transport="udp", cafile=None, srtp=False, auto_answer=False, settings=None, lifetime=90):
        self.dir = os.path.join(workdir, name)
        os.makedirs(os.path.join(self.dir, ".local", "share", "linphone"))
        self.user = user
        self.record_wav = record_wav
        self.sip_port = free_port()
        rtp = free_udp_range()
        sip = [f"sip_port={self.sip_port if transport == 'udp' else 0}", "sip_tcp_port=0",
               f"sip_tls_port={self.sip_port if transport == 'tls' else 0}", "default_proxy=0",
               "register_only_when_network_is_up=0", "auto_send_ringing=1", "inc_timeout=60",
               f"media_encryption={'srtp' if srtp else 'none'}",
               f"media_encryption_mandatory={1 if srtp else 0}"]
        if cafile:
            sip += [f"root_ca={cafile}", "verify_server_certs=1", "verify_server_cn=1"]
        proxy = f"<sip:127.0.0.1:{server_port};transport={transport}>"
        # A phone's own RTP range (as `rtpstart`/`rtpend` do for Tandem):
        # parallel tests never share a port.
        sections = {
            "sip": sip,
            "rtp": [f"audio_rtp_port={rtp}-{rtp + 19}", "video_rtp_port=0"],
            "net": ["firewall_policy=0"],
            "video": ["enabled=0", "capture=0", "display=0", "automatically_initiate=0", "automatically_accept=0"],
            "proxy_0": [f"reg_proxy={proxy}", f"reg_route={proxy}", f"reg_identity=sip:{user}@127.0.0.1",
                        "reg_expires=600", "reg_sendregister=1"],
            "auth_info_0": [f"username={user}", f"passwd={password}", "realm=tandem"],
        }
        for section, lines in (settings or {}).items():
            sections.setdefault(section, []).extend(lines)
        text = "".join(f"[{name}]\n" + "".join(line + "\n" for line in lines) for name, lines in sections.items())
        self.rc = os.path.join(self.dir, "linphonerc")
        with open(self.rc, "w") as f:
            f.write(text)
        self.log = open(os.path.join(self.dir, "linphonec.log"), "w")
        argv = [TIMEOUT, "-s", "KILL", str(lifetime), LINPHONEC, "-c", self.rc, "-d", "6",
                "-l", os.path.join(self.dir, "debug.log")]
        if auto_answer:
            argv.append("-a")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "HOME": self.dir}, text=True, start_new_session=True)
        self.command("soundcard use files")
        self.command(f"play {source_wav}")
        self.command(f"record {record_wav}")

    def command(self, line):
        """One console command; True when linphonec took it."""
        if self.proc.poll() is not None:
            return False
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def output(self):
        """What linphonec has printed so far."""
        if not self.log.closed:
            self.log.flush()
        with open(os.path.join(self.dir, "linphonec.log"), errors="replace") as f:
            return f.read()

    def debug_log(self):
        """linphone's own log (-d 6): every SIP message it sent and received."""
        try:
            with open(os.path.join(self.dir, "debug.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_output(self, pattern, timeout=20, since=0):
        """Polls linphonec's output (from offset `since`) for the regular
        expression `pattern`; the match or None after `timeout` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.output()[since:])
            if m:
                return m
            if self.proc.poll() is not None:
                return None
            time.sleep(0.2)
        return None

    def stop(self):
        """Ends linphonec (`quit`, then TERM, then KILL); safe to call again."""
        if self.proc.poll() is None:
            self.command("quit")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(self.proc.pid, sig)
                        self.proc.wait(timeout=5)
                        break
                    except (subprocess.TimeoutExpired, ProcessLookupError):
                        continue
        if self.proc.poll() is None:
            self.proc.wait()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if not self.log.closed:
            self.log.close()
