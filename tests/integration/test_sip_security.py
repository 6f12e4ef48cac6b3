"""chan_sip under attack, on loopback: the auto-ban (after N failed
authentications every request from the address goes unanswered, over UDP and
TCP, until `sip unban`), and malformed SIP (binary junk, missing Via, huge
Content-Length, truncated messages, oversized headers) that must never crash
the PBX, and the overload guard (new INVITEs refused with 503 and Retry-After
while the UDP socket's unread queue is deeper than overloadqueue=)."""
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import UdpPeer, free_port, request, sipp, status_of, use_port  # noqa: E402

port = free_port()
t = Tandem(edit=use_port(port, autoban_failures=5, autoban_window="60s", autoban_duration="600s"))
with t:
    rc, out = sipp("register", port, "1001", cwd=t.dir)
    check(rc == 0, "1001 registers before the attack" + ("" if rc == 0 else ":\n" + out))

    # --- five wrong passwords: banned --------------------------------------
    for i in range(5):
        rc, out = sipp("register_forbidden", port, "1001", password=f"guess-number-{i:04d}", cwd=t.dir)
        check(rc == 0, f"failure {i + 1} answered with 403")
    check(t.wait_for(lambda: "banned 127.0.0.1 for 600 s: 5 authentication failures within 60 s" in t.log()),
          "the ban is logged")
    status, out = t.rx("sip show bans")
    check(status == 0 and re.search(r"127\.0\.0\.1\s+\d+\s+yes\s+\d+ s", out) is not None,
          "sip show bans lists 127.0.0.1 with the time left")

    # Even a correct REGISTER gets no answer now, not even to retransmissions.
    rc, out = sipp("register", port, "1001", timeout=4, cwd=t.dir)
    check(rc != 0, "a correct REGISTER from the banned address is not answered (SIPp gives up)")
    peer = UdpPeer()
    msg = request("REGISTER", port, local_port=peer.port)
    for _ in range(3):
        peer.send(msg, port)  # the same request again: a retransmission
        time.sleep(0.3)
    check(peer.answers(1.5) == [], "no answer at all, even to retransmissions")
    peer.send(request("OPTIONS", port, local_port=peer.port), port)
    check(peer.answers(1.0) == [], "OPTIONS from the banned address are not answered either")
    peer.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(request("OPTIONS", port).replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        answered = bool(s.recv(4096))
    except OSError:
        answered = False
    finally:
        s.close()
    check(not answered, "nor over TCP")
    check(t.proc.poll() is None, "the PBX is running")

    # --- sip unban lifts it --------------------------------------------------
    status, out = t.rx("sip unban 10.9.9.9")
    check(status != 0 and "not banned" in out, "unbanning an address that is not banned says so")
    status, out = t.rx("sip unban 127.0.0.1")
    check(status == 0 and "Unbanned 127.0.0.1" in out, "sip unban 127.0.0.1")
    rc, out = sipp("register", port, "1001", cwd=t.dir)
    check(rc == 0, "after the unban, 1001 registers again" + ("" if rc == 0 else ":\n" + out))
    status, out = t.rx("sip show bans")
    check("0 banned addresses" in out, "no ban left")

    # An unknown user counts too, and `sip unban all` clears everything.
    for i in range(5):
        sipp("register_forbidden", port, f"scanner{i}", password="scanner-password", cwd=t.dir)
    check(t.wait_for(lambda: "127.0.0.1" in t.rx("sip show bans")[1] and "1 banned address" in t.rx("sip show bans")[1]),
          "unknown users count towards the ban as wrong passwords do")
    status, out = t.rx("sip unban all")
    check(status == 0 and "Unbanned 1 address" in out, "sip unban all")

    # --- malformed SIP never crashes the PBX --------------------------------
    rng = random.Random(1234)
    good = request("REGISTER", port).decode()
    lines = good.split("\r\n")
    junk = [
        ("binary junk", bytes(rng.getrandbits(8) for _ in range(700))),
        ("NUL bytes", b"\x00" * 64),
        ("an empty datagram", b""),
        ("a lone CRLF keep-alive", b"\r\n\r\n"),
        ("missing Via", "\r\n".join(l for l in lines if not l.startswith("Via:")).encode()),
        ("missing Call-ID and CSeq",
         "\r\n".join(l for l in lines if not l.startswith(("Call-ID:", "CSeq:"))).encode()),
        ("huge Content-Length", good.replace("Content-Length: 0", "Content-Length: 999999999").encode() + b"abc"),
        ("negative Content-Length", good.replace("Content-Length: 0", "Content-Length: -5").encode()),
        ("truncated", good.encode()[: len(good) // 2]),
        ("a bad request line", b"REGISTER\r\n\r\n"),
        ("a bad SIP version", good.replace("SIP/2.0\r\n", "SIP/9.9\r\n", 1).encode()),
        ("an oversized header", good.replace("Max-Forwards: 70", "X-Big: " + "A" * 60000).encode()),
        ("a thousand headers", good.replace("Max-Forwards: 70", "\r\n".join(f"X-{i}: {i}" for i in range(1000))).encode()),
        ("a garbage Contact", good.replace("Contact: <sip:1001@127.0.0.1:5999>", "Contact: <<<sip:@@@>>;;;=").encode()),
        ("a garbage Authorization",
         good.replace("Max-Forwards: 70", 'Max-Forwards: 70\r\nAuthorization: Digest username="1001, nonce=').encode()),
        ("a garbage Expires", good.replace("Max-Forwards: 70", "Max-Forwards: 70\r\nExpires: -999999999999999999999").encode()),
        ("a response out of nowhere", b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n\r\n"),
        ("a request for an unknown method", good.replace("REGISTER", "FROBNICATE").encode()),
    ]
    peer = UdpPeer()
    for what, data in junk:
        try:
            peer.send(data, port)
        except OSError as e:  # datagrams over the loopback MTU
            print(f"note: could not send {what}: {e}")
    peer.answers(1.0)
    peer.close()
    check(t.proc.poll() is None, "after malformed UDP datagrams the PBX is running")

    for what, data in junk:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(data.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
        except OSError:
            pass
        finally:
            s.close()
    check(t.proc.poll() is None, "after malformed TCP streams the PBX is running")

    # --- the overload guard: new calls refused with 503 while the queue is deep
    def invite_burst(count, pad):
        """`count` INVITEs sent back to back, each padded to about `pad` bytes
        so that a few waiting ones fill a share of the receive buffer; returns
        {Call-ID: (final status, Retry-After)} of what came back."""
        peer = UdpPeer()
        ids = []
        for i in range(count):
            call_id = f"burst-{i}-{random.getrandbits(32):08x}"
            ids.append(call_id)
            peer.send(request("INVITE", port, local_port=peer.port, call_id=call_id,
                              extra_headers="X-Padding: " + "p" * pad), port)
        finals = {}
        deadline = time.time() + 15
        while time.time() < deadline and len(finals) < count:
            for text in peer.answers(0.5):
                st = status_of(text)
                cid = re.search(r"(?mi)^Call-ID:\s*(\S+)", text)
                if st and st >= 200 and cid:
                    ra = re.search(r"(?mi)^Retry-After:\s*(\d+)", text)
                    finals.setdefault(cid.group(1), (st, int(ra.group(1)) if ra else None))
        peer.close()
        return finals

    use_port(port, overloadqueue=1, overloadretryafter="7s")(t.conf)
    status, out = t.rx("module reload chan_sip")
    check(status == 0, "reload with overloadqueue=1 (1 % of the receive buffer)")
    finals = invite_burst(150, 8000)
    refused = [v for v in finals.values() if v[0] == 503]
    challenged = [v for v in finals.values() if v[0] == 401]
    check(len(finals) == 150, f"every INVITE of the burst got a final answer ({len(finals)} of 150)")
    check(refused and all(ra == 7 for _, ra in refused),
          f"a burst deeper than the threshold gets 503 with Retry-After: 7 ({len(refused)} refused)")
    check(challenged, f"INVITEs read while the queue was short are challenged as usual ({len(challenged)})")
    check(t.wait_for(lambda: "SIP overload:" in t.log() and "SIP overload over after" in t.log(), timeout=5),
          "the overload and its end are logged")
    status, out = t.rx("sip show status")
    m = re.search(r"Refused \(overload\):\s*(\d+)", out)
    check(status == 0 and m and int(m.group(1)) >= len(refused) and "on above 1% of the buffer, Retry-After 7 s" in out,
          "sip show status counts the refusals:\n" + out)
    finals = invite_burst(1, 8000)
    check(list(finals.values()) == [(401, None)], f"once the queue is read, a new INVITE is let in: {finals}")

    use_port(port, overloadqueue=0)(t.conf)
    status, out = t.rx("module reload chan_sip")
    finals = invite_burst(150, 8000)
    check(status == 0 and len(finals) == 150 and all(v[0] == 401 for v in finals.values()),
          "with overloadqueue=0 the same burst is only challenged "
          f"({sorted(v[0] for v in finals.values()).count(401)} of {len(finals)} answered, of 150)")
    status, out = t.rx("sip show status")
    check("Overload guard:     off" in out, "sip show status says the guard is off")

    status, out = t.rx("core show version")
    check(status == 0, "the console still answers")
    peer = UdpPeer()
    peer.send(request("OPTIONS", port, local_port=peer.port), port)
    got = peer.answers(1.0)
    check(got and status_of(got[0]) == 200, "OPTIONS still answered")
    peer.close()
    rc, out = sipp("register", port, "1002", cwd=t.dir)
    check(rc == 0, "and a phone still registers" + ("" if rc == 0 else ":\n" + out))
    status, out = t.rx("sip show bans")
    check("0 banned addresses" in out, "malformed messages are not authentication failures")
    rc = t.stop()
    check(rc == 0, f"and it stops cleanly afterwards (exit {rc})")
finish()
