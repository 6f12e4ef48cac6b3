"""Helpers for the chan_sip integration tests: free ports, a sip.conf for the
test, SIPp runs (calling, registering, and phones that register and then
answer), the PBX's RTP sessions, a tone detector, a tiny raw SIP sender, and
a phone on one TCP or TLS connection.

Everything stays on 127.0.0.1 and every call is bounded in time.
"""
import hashlib
import math
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SIPP = shutil.which("sipp")

SECRETS = {"1001": "Tandem-1001-Loopback!", "1002": "Tandem-1002-Loopback!"}


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port")


def unique_call_ids():
    """SIPp arguments for Call-IDs no other SIPp run repeats. SIPp builds them
    (and its branches and tags) from its process id; on a busy machine a pid
    comes back within the 32 s the PBX keeps a finished transaction, and the
    new INVITE was taken for a retransmission of the old one."""
    return ["-cid_str", f"%u-{uuid.uuid4().hex[:12]}-%p@%s"]


def free_media_port():
    """A port X free for UDP with X+1 to X+3 free too, for SIPp's -mp X: it
    binds X and X+1 for audio RTP and RTCP, X+2 and X+3 for video. With
    free_port() alone the video ports could belong to someone else, and SIPp
    would fail to start."""
    for _ in range(50):
        port = free_port()
        if port + 3 > 65535:
            continue
        socks = []
        try:
            for p in range(port + 1, port + 4):
                socks.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                socks[-1].bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no four free ports in a row")


def use_port(port, **general):
    """An edit= hook for harness.Tandem: listen on `port` and set other
    [general] options of the sample sip.conf (replaced where the sample sets
    them, added otherwise)."""
    general = {"bindport": port, **general}

    def edit(conf_dir):
        path = os.path.join(conf_dir, "sip.conf")
        with open(path) as f:
            text = f.read()
        for key, value in general.items():
            text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
            if n == 0:
                text = text.replace("[general]\n", f"[general]\n{key} = {value}\n", 1)
        with open(path, "w") as f:
            f.write(text)

    return edit


def sipp(scenario, port, user, password=None, expires=3600, contact_user=None, local_port=None,
         transport="u1", timeout=10, cwd=None, background=False):
    """Runs one SIPp call of tests/integration/sipp/<scenario>.xml against
    127.0.0.1:port. Returns (exit status, output), or the Popen object when
    `background`."""
    if password is None:
        password = SECRETS.get(user, "no-password-given")
    cmd = [SIPP, f"127.0.0.1:{port}", "-sf", os.path.join(HERE, scenario + ".xml"), "-m", "1",
           "-s", user, "-au", user, "-ap", password,
           "-key", "expires", str(expires), "-key", "contact_user", contact_user or user,
           "-i", "127.0.0.1", "-p", str(local_port or free_port()), "-t", transport,
           "-timeout", f"{timeout}s", "-timeout_error", "-nostdin", *unique_call_ids()]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 20, cwd=cwd)
        return r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        return -1, f"sipp did not finish: {e}"


def sipp_call(scenario, port, exten, user="1001", password=None, local_port=None, media_port=None,
              timeout=15, cwd=None, background=False, **keys):
    """Runs one SIPp call of tests/integration/sipp/<scenario>.xml from `user`
    (authenticating with its secret) to extension `exten` on 127.0.0.1:port.
    `hold_ms` is how long the scenarios' <pause/> lasts; other keyword
    arguments become scenario keys. pcap files the scenario plays are taken
    from `cwd` (see link_pcaps). Returns
    (exit status, output), or the Popen object when `background`."""
    if password is None:
        password = SECRETS.get(user, "no-password-given")
    hold_ms = keys.pop("hold_ms", 300)
    keys = {"caller": user, **{k: str(v) for k, v in keys.items()}}
    cmd = [SIPP, f"127.0.0.1:{port}", "-sf", os.path.join(HERE, scenario + ".xml"), "-m", "1",
           "-s", exten, "-au", user, "-ap", password,
           "-i", "127.0.0.1", "-p", str(local_port or free_port()), "-t", "u1",
           "-mp", str(media_port or free_media_port()),
           "-d", str(hold_ms), "-timeout", f"{timeout}s", "-timeout_error", "-nostdin", "-trace_err",
           *unique_call_ids()]
    for k, v in keys.items():
        cmd += ["-key", k, v]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 20, cwd=cwd)
        out = r.stdout + r.stderr
        for name in os.listdir(cwd or "."):
            if name.startswith(scenario) and name.endswith("_errors.log"):
                with open(os.path.join(cwd or ".", name), errors="replace") as f:
                    out += "\n" + f.read()[-3000:]
                os.remove(os.path.join(cwd or ".", name))
        return r.returncode, out
    except subprocess.TimeoutExpired as e:
        return -1, f"sipp did not finish: {e}"


def sipp_uas(scenario, port, cwd=None, echo=False, timeout=30, trace_err=False, trace=None, **keys):
    """Starts SIPp answering one call on 127.0.0.1:port, following
    tests/integration/sipp/<scenario>.xml, in the background; returns the
    Popen object (see sipp_result), its `port` set, once SIPp listens.
    `echo` sends the caller's RTP back; `trace` is a file where SIPp writes
    every message it sends and receives (read with `received`); keyword
    arguments become scenario keys."""
    cmd = [SIPP, "-sf", os.path.join(HERE, scenario + ".xml"), "-i", "127.0.0.1", "-p", str(port),
           "-mp", str(free_media_port()), "-m", "1", "-timeout", f"{timeout}s", "-timeout_error", "-nostdin"]
    if echo:
        cmd.append("-rtp_echo")
    if trace_err:
        cmd.append("-trace_err")
    if trace:
        cmd += ["-trace_msg", "-message_file", trace]
    for k, v in keys.items():
        cmd += ["-key", k, str(v)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    proc.port = port
    proc.trace = trace
    return wait_listening(proc, port)


def received(proc, method):
    """The first `method` request a SIPp started with a message trace
    (`proc.trace`) received, as text ("" if none)."""
    try:
        with open(proc.trace, errors="replace") as f:
            text = f.read()
    except (OSError, TypeError):
        return ""
    m = re.search(rf"message received \[\d+\] bytes :\s*\n\n?({method} [^\n]*\n(?:[^\n]+\n)*)", text)
    return m.group(1) if m else ""


def wait_listening(proc, port, transport="udp", timeout=5):
    """Waits (at most `timeout` s) until the process `proc` started binds
    `port`, and returns it: a request the PBX sends before SIPp listens meets
    a closed port (the call fails as CONGESTION) and SIPp then waits in vain."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not port_taken(port, transport):
        time.sleep(0.02)
    return proc


def port_taken(port, transport="udp"):
    """True when a socket of `transport` ("udp" or "tcp") is bound to `port`.
    Read from /proc rather than tried with a bind, which could take the port
    from under SIPp."""
    try:
        with open(f"/proc/net/{transport}") as f:
            return any(line.split()[1].endswith(f":{port:04X}") for line in f.readlines()[1:])
    except OSError:
        # No /proc: a moment is what SIPp needs.
        time.sleep(0.3)
        return True


def registered_uas(server_port, user, scenario, cwd=None, **uas_options):
    """A phone the PBX can call: `user` registers with the PBX on
    127.0.0.1:server_port from a port of its own, and a SIPp (sipp_uas with
    `uas_options`) then answers there following <scenario>. Returns
    (the registration's exit status, its output, the answering Popen), the
    SIPp started either way so a test that goes on after a failed
    registration still has a process to end."""
    uas_port = free_port()
    rc, out = sipp("register", server_port, user, local_port=uas_port, cwd=cwd)
    return rc, out, sipp_uas(scenario, uas_port, cwd=cwd, **uas_options)


def sipp_result(proc, timeout=40):
    """Waits for a background SIPp: (exit status, output). One still running
    after `timeout` seconds is killed, and its status tells so."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def link_pcaps(directory, source="/usr/share/sip-tester"):
    """Links SIPp's sample RTP recordings (PCMA audio, RFC 4733 digits) into
    `directory`, where the scenarios that play them look."""
    for name in os.listdir(source):
        if name.endswith(".pcap") and not os.path.exists(os.path.join(directory, name)):
            os.symlink(os.path.join(source, name), os.path.join(directory, name))


def append_file(name, text):
    """An edit= hook that appends `text` to the configuration file `name`."""

    def edit(conf_dir):
        with open(os.path.join(conf_dir, name), "a") as f:
            f.write(text)

    return edit


def edits(*hooks):
    """Several edit= hooks as one."""

    def edit(conf_dir):
        for h in hooks:
            h(conf_dir)

    return edit


def phones_context(context):
    """An edit= hook: the sample phones (1001 and 1002, of the [office-phone]
    template) enter the dialplan at `context` instead of [phones]."""

    def edit(conf_dir):
        path = os.path.join(conf_dir, "sip.conf")
        with open(path) as f:
            text = f.read()
        text = re.sub(r"(?m)^context = phones .*$", f"context = {context}", text)
        with open(path, "w") as f:
            f.write(text)

    return edit


def endpoint_options(name, **options):
    """An edit= hook that sets `options` in endpoint [name] of sip.conf
    (lines added after its section header; a key the section sets already
    is set twice)."""

    def edit(conf_dir):
        path = os.path.join(conf_dir, "sip.conf")
        with open(path) as f:
            text = f.read()
        lines = "".join(f"\n{k} = {v}" for k, v in options.items())
        text, n = re.subn(rf"(?m)^(\[{re.escape(name)}\](\(.*\))?)$", lambda m: m.group(1) + lines, text, count=1)
        if n == 0:
            raise ValueError(f"sip.conf has no endpoint [{name}]")
        with open(path, "w") as f:
            f.write(text)

    return edit


def rtp_sessions(t):
    """The PBX's RTP sessions (`rtp show sessions`) by channel name: a list of
    (packets sent, packets received), one per session of the channel."""
    _, out = t.rx("rtp show sessions")
    found = {}
    for line in out.splitlines():
        m = re.match(r"(SIP/\S+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if m:
            found.setdefault(m.group(1), []).append((int(m.group(3)), int(m.group(4))))
    return found


def rtp_flowing(t, *channels, packets=10):
    """True when each of `channels` (name prefixes, as "SIP/1001") is one
    channel with an RTP session that sent and received more than `packets`
    packets."""
    s = rtp_sessions(t)
    legs = [v for prefix in channels for k, v in s.items() if k.startswith(prefix)]
    return len(legs) == len(channels) and all(any(o > packets and i > packets for o, i in v) for v in legs)


def goertzel(samples, rate, freq):
    """The power of `freq` in `samples` (PCM at `rate`): how tests tell which
    tone a phone received."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def request(method, port, user="1001", extra_headers="", body="", call_id=None, cseq=1, local_port=0):
    """A well-formed request as bytes (tests break it on purpose afterwards)."""
    call_id = call_id or uuid.uuid4().hex
    lines = [
        f"{method} sip:127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port or 5999};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
        f"From: <sip:{user}@127.0.0.1>;tag={uuid.uuid4().hex[:8]}",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:{user}@127.0.0.1:{local_port or 5999}>",
        "Max-Forwards: 70",
    ]
    if extra_headers:
        lines += [l.rstrip("\r") for l in extra_headers.strip().split("\n")]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class UdpPeer:
    """A UDP socket on 127.0.0.1 that sends raw datagrams and collects answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def send(self, data, port):
        self.sock.sendto(data, ("127.0.0.1", port))

    def answers(self, wait=1.0):
        """Every datagram that arrives within `wait` seconds, as text."""
        out = []
        deadline = time.time() + wait
        while True:
            left = deadline - time.time()
            if left <= 0:
                return out
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65536)
                out.append(data.decode(errors="replace"))
            except socket.timeout:
                return out

    def close(self):
        self.sock.close()


def status_of(message):
    m = re.match(r"SIP/2\.0 (\d{3})", message)
    return int(m.group(1)) if m else None


class Phone:
    """A minimal phone behind a pretend NAT: registers (digest MD5, qop=auth)
    from a UDP socket on 127.0.0.1 while its Contact names an address nobody
    can reach, and answers every OPTIONS with 200 OK from a thread. Only a
    registrar that sends to where the REGISTER came from (nat=force_rport)
    reaches it."""

    def __init__(self, user, password, server_port, contact="sip:{user}@10.255.255.1:5999"):
        import hashlib
        import queue
        import threading
        self._md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
        self.user, self.password, self.server = user, password, server_port
        self.contact = contact.format(user=user)
        self.peer = UdpPeer()
        self.port = self.peer.port
        self.options = []          # Request-URIs of the OPTIONS received
        self._responses = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        self.peer.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, addr = self.peer.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0"):
                self._responses.put(text)
            else:
                self._request(text, addr)

    def _request(self, text, addr):
        """A request from the PBX; a subclass answers more than OPTIONS."""
        if text.startswith("OPTIONS "):
            self.options.append(text.split(" ")[1])
            self._reply(text, addr, to_tag="phone")

    def _reply(self, request, addr, status="200 OK", extra="", body="", to_tag=None):
        """Answers `request` to `addr`: its Via, From, To (with `to_tag` when it
        has none), Call-ID and CSeq, then `extra` header lines and `body`."""
        head = request.split("\r\n\r\n")[0].split("\r\n")
        keep = [l for l in head[1:] if l.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
        if to_tag:
            keep = [l + f";tag={to_tag}" if l.lower().startswith("to:") and "tag=" not in l else l for l in keep]
        lines = "\r\n".join(keep) + ("\r\n" + extra if extra else "")
        msg = f"SIP/2.0 {status}\r\n{lines}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        self.peer.sock.sendto(msg.encode(), addr)

    def _response(self, wait=2.0):
        import queue
        try:
            return self._responses.get(timeout=wait)
        except queue.Empty:
            return ""

    def register(self, expires=3600):
        """REGISTER, answer the challenge; returns the final status (None if no answer)."""
        call_id = uuid.uuid4().hex
        contact = f"Contact: <{self.contact}>\nExpires: {expires}\nUser-Agent: Python phone"

        def send(cseq, extra):
            msg = request("REGISTER", self.server, user=self.user, call_id=call_id, cseq=cseq,
                          local_port=self.port, extra_headers=contact + extra)
            msg = msg.replace(f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\n".encode(), b"")
            self.peer.send(msg, self.server)
            return self._response()

        first = send(1, "")
        if status_of(first) != 401:
            return status_of(first)
        realm = re.search(r'realm="([^"]+)"', first).group(1)
        nonce = re.search(r'nonce="([^"]+)"', first).group(1)
        uri = f"sip:127.0.0.1:{self.server}"
        ha1 = self._md5(f"{self.user}:{realm}:{self.password}")
        ha2 = self._md5(f"REGISTER:{uri}")
        cnonce, nc = uuid.uuid4().hex[:8], "00000001"
        response = self._md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        auth = (f'\nAuthorization: Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={nc}')
        return status_of(send(2, auth))

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.peer.close()


def self_signed_cert(directory):
    """A certificate and key (PEM) for 127.0.0.1, valid for a day: the
    address is both an IP and a DNS name of the subjectAltName (some phones
    match only DNS names). Returns (cert, key)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def digest_md5(user, password, realm, nonce, method, uri):
    """An Authorization header (qop=auth) answering a challenge."""
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    cnonce, nc = uuid.uuid4().hex[:8], "00000001"
    response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={nc}\r\n')


class StreamPhone:
    """A phone on one TCP or TLS connection to 127.0.0.1:`port` (from
    `source`, an address of the loopback network): sends raw SIP, reads whole
    messages, registers with digest, and tells when the PBX closed the
    connection."""

    def __init__(self, port, tls=False, source="127.0.0.1", timeout=5):
        self.tls = tls
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            raw = ctx.wrap_socket(raw)
        self.sock = raw
        self.source = source
        self.local = self.sock.getsockname()[1]
        self.buf = b""

    @property
    def proto(self):
        return "TLS" if self.tls else "TCP"

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def read(self, wait=3.0):
        """One SIP message (headers and body), or "" after `wait` seconds."""
        deadline = time.time() + wait
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                length = int(m.group(1)) if m else 0
                if len(rest) >= length:
                    self.buf = rest[length:]
                    return (head + sep + rest[:length]).decode(errors="replace")
            left = deadline - time.time()
            if left <= 0:
                return ""
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLError, OSError):
                return ""
            if not data:
                return ""
            self.buf += data

    def closed_by_peer(self, wait=0.2):
        """True once the PBX has closed the connection (end of stream or reset)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ssl.SSLWantReadError:
            return False
        except (ssl.SSLError, OSError):
            return True
        if not data:
            return True
        self.buf += data
        return False

    def request(self, method, server_port, user, cseq=1, call_id=None, extra=""):
        uri = f"sip:127.0.0.1:{server_port};transport={self.proto.lower()}"
        self.send(f"{method} {uri} SIP/2.0\r\n"
                  f"Via: SIP/2.0/{self.proto} {self.source}:{self.local};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
                  f"From: <sip:{user}@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
                  f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id or uuid.uuid4().hex}\r\nCSeq: {cseq} {method}\r\n"
                  f"Contact: <sip:{user}@{self.source}:{self.local};transport={self.proto.lower()}>\r\n"
                  f"Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n")
        return uri

    def register(self, user, password, server_port):
        """REGISTER on this connection, answering the challenge; the final status."""
        call_id = uuid.uuid4().hex
        uri = self.request("REGISTER", server_port, user, 1, call_id, "Expires: 600\r\n")
        first = self.read()
        if status_of(first) != 401:
            return status_of(first)
        realm = re.search(r'realm="([^"]+)"', first).group(1)
        nonce = re.search(r'nonce="([^"]+)"', first).group(1)
        auth = digest_md5(user, password, realm, nonce, "REGISTER", uri)
        self.request("REGISTER", server_port, user, 2, call_id, "Expires: 600\r\n" + auth)
        return status_of(self.read())

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
