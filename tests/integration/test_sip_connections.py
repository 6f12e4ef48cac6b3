"""TCP and TLS connections that never authenticate are closed
(tcpauthtimeout, tcpauthlimit), the way a phone or an attacker meets them:
silent connections, one holding half a request, one sending OPTIONS every
second, a TLS connection that only did the handshake, all closed after the
deadline; a phone that registered on its connection keeps it and is still
answered on it; a gateway known by its address keeps its silent connection;
connections beyond the limit are closed at once, the newest first;
`sip show status` counts them; and a banned address cannot even connect to
the TLS port."""
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import (SECRETS, StreamPhone, append_file, edits, free_port, self_signed_cert,  # noqa: E402
                     status_of, use_port)

TIMEOUT, LIMIT = 3, 12
# A gateway known by its address: its connections count as authenticated.
GATEWAY = """
[gateway]
type = peer
host = 127.0.0.2
insecure = invite
context = phones
"""
TLS_SECRET = "Tandem-1003-Over-TLS!"
TLS_ENDPOINT = f"""
[1003]
type = friend
host = dynamic
secret = {TLS_SECRET}
context = phones
transport = tls
"""


def status_counts(t):
    out = t.rx("sip show status")[1]
    m = re.search(r"TCP/TLS connections: (\d+) authenticated, (\d+) not yet", out)
    closed = re.search(r"Closed unauthenticated: (\d+)", out)
    return (int(m.group(1)), int(m.group(2)), int(closed.group(1))) if m and closed else None


def open_sockets(t):
    """How many sockets the PBX has open."""
    fd_dir = f"/proc/{t.proc.pid}/fd"
    count = 0
    for fd in os.listdir(fd_dir):
        try:
            count += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
        except OSError:
            pass
    return count


def wait_closed(conns, timeout):
    """Waits until every connection in `conns` is closed by the PBX; those still open."""
    deadline = time.time() + timeout
    left = list(conns)
    while left and time.time() < deadline:
        left = [c for c in left if not c.closed_by_peer(0.05)]
    return left


certdir = tempfile.mkdtemp(prefix="tandem-conn-test-")
cert, key = self_signed_cert(certdir)
port, tls_port = free_port(), free_port()
conf = edits(use_port(port, transport="udp,tcp", tlsenable="yes", tlsbindport=tls_port, tlscertfile=cert,
                      tlsprivatekey=key, tcpauthtimeout=TIMEOUT, tcpauthlimit=LIMIT, qualify="no",
                      autoban_failures=3),
             append_file("sip.conf", GATEWAY + TLS_ENDPOINT))
t = Tandem(edit=conf)
with t:
    # --- the deadline ------------------------------------------------------
    baseline = open_sockets(t)
    start = time.time()
    silent = [StreamPhone(port) for _ in range(5)]
    half = StreamPhone(port)
    half.send(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\nFrom: <sip")
    chatty = StreamPhone(port)
    tls_silent = StreamPhone(tls_port, tls=True)
    phone = StreamPhone(port)
    check(phone.register("1002", SECRETS["1002"], port) == 200, "1002 registers over TCP")
    tls_phone = StreamPhone(tls_port, tls=True)
    check(tls_phone.register("1003", TLS_SECRET, tls_port) == 200, "1003 registers over TLS")
    gateway = StreamPhone(port, source="127.0.0.2")

    check(t.wait_for(lambda: (status_counts(t) or (0, 0, 0))[:2] == (3, 8), timeout=3),
          f"sip show status counts 3 authenticated and 8 unauthenticated connections: {status_counts(t)}")

    # The chatty client is answered, but answers do not buy it time.
    answered = 0
    while time.time() - start < TIMEOUT - 0.5:
        chatty.request("OPTIONS", port, "monitor")
        answered += status_of(chatty.read(wait=1.0)) == 200
        time.sleep(0.5)
    check(answered >= 2, f"OPTIONS on an unauthenticated connection are answered ({answered})")
    doomed = silent + [half, chatty, tls_silent]
    check(all(not c.closed_by_peer(0.01) for c in doomed), "before the deadline every connection is open")
    left = wait_closed(doomed, TIMEOUT + 3)
    elapsed = time.time() - start
    check(not left, f"every unauthenticated connection is closed after tcpauthtimeout={TIMEOUT} s "
          f"({len(doomed) - len(left)} of {len(doomed)} after {elapsed:.1f} s)")
    check(elapsed >= TIMEOUT - 0.5, f"not before the deadline ({elapsed:.1f} s)")
    check(t.wait_for(lambda: re.search(rf"closed \d+ SIP connections? that did not authenticate within {TIMEOUT} s",
                                       t.log()) is not None, timeout=3),
          "the closing is logged with tcpauthtimeout")

    for c, who in ((phone, "the TCP phone"), (tls_phone, "the TLS phone"), (gateway, "the gateway")):
        check(not c.closed_by_peer(0.05), f"{who} keeps its connection")
    phone.request("OPTIONS", port, "1002")
    check(status_of(phone.read()) == 200, "the registered phone is still answered on its connection")
    tls_phone.request("OPTIONS", tls_port, "1003")
    check(status_of(tls_phone.read()) == 200, "and the TLS phone on its own")
    counts = status_counts(t)
    check(counts is not None and counts[0] == 3 and counts[2] >= len(doomed),
          f"sip show status: 3 authenticated, {len(doomed)} or more closed: {counts}")

    # --- the limit ---------------------------------------------------------
    crowd = [StreamPhone(port) for _ in range(LIMIT)]
    time.sleep(1.3)  # a sweep has seen them: the next ones are newer
    crowd += [StreamPhone(port) for _ in range(6)]
    # Closed at the next sweep (each second), long before the deadline.
    over = crowd[LIMIT:]
    left = wait_closed(over, 2.5)
    check(not left, f"the {len(over)} newest connections beyond tcpauthlimit={LIMIT} are closed at once "
          f"({len(over) - len(left)} closed)")
    kept = [c for c in crowd[:LIMIT] if not c.closed_by_peer(0.01)]
    check(len(kept) == LIMIT, f"the {LIMIT} oldest stay until their deadline ({len(kept)} open)")
    check("beyond tcpauthlimit=" in t.log(), "the limit's closing is logged")
    late = StreamPhone(port)
    check(wait_closed([late], 2.5) == [], "a new connection while the limit is full is closed too")
    check(not wait_closed(crowd[:LIMIT], TIMEOUT + 3), "the rest are closed at their deadline")
    for c in (phone, tls_phone, gateway):
        check(not c.closed_by_peer(0.05), "the authenticated connections are untouched by the limit")

    # A phone that authenticates after the crowd has gone still can.
    again = StreamPhone(port)
    check(again.register("1001", SECRETS["1001"], port) == 200, "a new phone registers once the crowd is gone")

    for c in crowd + [late, again, phone, tls_phone, gateway] + doomed:
        c.close()
    # --- a banned address cannot even connect to the TLS port ---------------
    bad = StreamPhone(tls_port, tls=True, source="127.0.0.3")
    refused = [bad.register("1003", "Wrong-Password-1234", tls_port) for _ in range(3)]
    bad.close()
    check(refused == [403] * 3 and t.wait_for(lambda: "banned 127.0.0.3" in t.log(), timeout=3),
          f"three wrong passwords over TLS ban 127.0.0.3: {refused}")
    try:
        StreamPhone(tls_port, tls=True, source="127.0.0.3", timeout=1).close()
        connected = True
    except OSError:
        connected = False
    check(not connected, "the socket filter on the TLS listener drops the banned address's connection")
    other = StreamPhone(tls_port, tls=True, source="127.0.0.4", timeout=2)
    check(other.sock.version() is not None, "another address still connects over TLS")
    other.close()

    # --- the stack's idle limit follows maxexpiry (registrations keep their connection)
    sip_conf = os.path.join(t.conf, "sip.conf")
    with open(sip_conf) as f:
        text = f.read()
    with open(sip_conf, "w") as f:
        f.write(re.sub(r"(?m)^maxexpiry = \d+", "maxexpiry = 7200", text))
    status, _ = t.rx("module reload chan_sip")
    check(status == 0 and t.wait_for(lambda: "how long an unused TCP/TLS connection is kept (3664 s, from maxexpiry)"
                                     in t.log(), timeout=3),
          "a reload that changes maxexpiry says the connections' idle limit (maxexpiry 3600 + 64 s) stays until "
          "chan_sip is loaded again")

    # The stack frees what it closed: no descriptor stays behind.
    check(t.wait_for(lambda: open_sockets(t) <= baseline, timeout=5),
          f"the PBX's sockets are back to {baseline} ({open_sockets(t)})")
    check(t.proc.poll() is None, "the PBX is running")

finish()
