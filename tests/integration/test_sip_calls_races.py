"""chan_sip under crossing messages, with a raw SIP caller on loopback:
CANCEL sent right behind the INVITE of a call the dialplan answers at once
(CANCEL crossing the 200), and BYE sent the moment the 200 arrives to a call
the dialplan hangs up at once (BYE crossing BYE). Each round must end with a
final answer or a BYE answered on both sides, and at the end no channel and
no SIP dialog may be left."""
import hashlib
import os
import re
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import SECRETS, UdpPeer, append_file, edits, free_port, phones_context, status_of, use_port  # noqa: E402

DIALPLAN = """
[racetest]
exten => answer,1,Answer()
 same => n,Wait(5)
 same => n,Hangup()
exten => hangup,1,Answer()
 same => n,Hangup()
"""

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def header(msg, name):
    m = re.search(rf"(?mi)^{name}:\s*(.*?)\r?$", msg)
    return m.group(1) if m else ""


class RawCall:
    """One call from 1001, message by message."""

    def __init__(self, peer, port, exten, user="1001"):
        self.peer, self.port, self.exten, self.user = peer, port, exten, user
        self.call_id = uuid.uuid4().hex
        self.tag = uuid.uuid4().hex[:8]
        self.uri = f"sip:{exten}@127.0.0.1:{port}"
        self.cseq = 1
        self.to_tag = ""
        self.pending = []

    def _msg(self, method, uri, branch, cseq, to_tag="", extra="", body=""):
        to = f"<sip:{self.exten}@127.0.0.1:{self.port}>" + (f";tag={to_tag}" if to_tag else "")
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{self.peer.port};branch={branch};rport",
                 f"From: <sip:{self.user}@127.0.0.1>;tag={self.tag}", f"To: {to}", f"Call-ID: {self.call_id}",
                 f"CSeq: {cseq} {method}", f"Contact: <sip:{self.user}@127.0.0.1:{self.peer.port}>",
                 "Max-Forwards: 70"]
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.peer.send(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), self.port)

    def answers(self, wait, until=None):
        """Responses for this call within `wait` seconds (or until one
        satisfies `until`); BYE requests from Tandem are answered 200 on the way."""
        got = []
        deadline = time.time() + wait
        while time.time() < deadline:
            self.peer.sock.settimeout(max(deadline - time.time(), 0.001))
            try:
                data, _ = self.peer.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                break
            m = data.decode(errors="replace")
            if header(m, "Call-ID") != self.call_id:
                continue
            if m.startswith("BYE "):
                keep = [l for l in m.split("\r\n")[1:] if l.split(":")[0].lower() in ("via", "from", "to", "call-id",
                                                                                      "cseq")]
                self.peer.send(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n").encode(),
                               self.port)
                got.append("BYE")
            else:
                got.append(m)
                if until and until(m):
                    break
        return got

    def invite(self):
        """INVITE, 401, ACK, INVITE with credentials (not waiting for its answer)."""
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        self._msg("INVITE", self.uri, branch, 1, body=SDP)
        challenge = next((m for m in self.answers(2.0, until=lambda m: status_of(m) == 401) if status_of(m) == 401), "")
        if not challenge:
            return False
        self._msg("ACK", self.uri, branch, 1, to_tag=re.search(r"tag=([^;>\s]+)", header(challenge, "To")).group(1))
        realm = re.search(r'realm="([^"]+)"', challenge).group(1)
        nonce = re.search(r'nonce="([^"]+)"', challenge).group(1)
        ha1 = md5(f"{self.user}:{realm}:{SECRETS[self.user]}")
        ha2 = md5(f"INVITE:{self.uri}")
        auth = (f'Authorization: Digest username="{self.user}", realm="{realm}", nonce="{nonce}", uri="{self.uri}", '
                f'response="{md5(f"{ha1}:{nonce}:{ha2}")}", algorithm=MD5')
        self.branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        self.cseq = 2
        self._msg("INVITE", self.uri, self.branch, 2, extra=auth, body=SDP)
        return True

    def cancel(self):
        self._msg("CANCEL", self.uri, self.branch, self.cseq)

    def ack_and_bye(self, final):
        self.to_tag = re.search(r"tag=([^;>\s]+)", header(final, "To")).group(1)
        contact = re.search(r"<([^>]+)>", header(final, "Contact"))
        target = contact.group(1) if contact else self.uri
        self._msg("ACK", target, "z9hG4bK" + uuid.uuid4().hex[:16], self.cseq, to_tag=self.to_tag)
        self._msg("BYE", target, "z9hG4bK" + uuid.uuid4().hex[:16], self.cseq + 1, to_tag=self.to_tag)

    def ack_failure(self, final):
        to_tag = re.search(r"tag=([^;>\s]+)", header(final, "To")).group(1)
        self._msg("ACK", self.uri, self.branch, self.cseq, to_tag=to_tag)


def invite_final(msgs):
    return next((m for m in msgs if m != "BYE" and status_of(m) and status_of(m) >= 200
                 and header(m, "CSeq").endswith("INVITE")), None)


port = free_port()
t = Tandem(edit=edits(use_port(port, autoban_failures=1000), phones_context("racetest"), append_file("extensions.conf", DIALPLAN)))
with t:
    peer = UdpPeer()
    outcomes = {"answered": 0, "cancelled": 0}
    ended = 0
    for i in range(12):
        call = RawCall(peer, port, "answer")
        if not call.invite():
            continue
        # Right behind the INVITE, a little later each round: races the dialplan's Answer().
        time.sleep((i % 6) * 0.0006)
        call.cancel()
        msgs = call.answers(1.0, until=lambda m: invite_final([m]) is not None)
        final = invite_final(msgs)
        if final and status_of(final) == 200:
            call.ack_and_bye(final)
            outcomes["answered"] += 1
            msgs += call.answers(1.0, until=lambda m: header(m, "CSeq").endswith("BYE") and status_of(m) is not None)
            ended += any(status_of(m) == 200 and header(m, "CSeq").endswith("BYE") for m in msgs if m != "BYE")
        elif final and status_of(final) == 487:
            call.ack_failure(final)
            outcomes["cancelled"] += 1
            ended += 1
    check(ended == 12, f"CANCEL racing Answer(): every call ended cleanly ({outcomes})")
    print(f"note: {outcomes['answered']} answered before the CANCEL, {outcomes['cancelled']} cancelled")

    crossed = 0
    for i in range(12):
        call = RawCall(peer, port, "hangup")
        if not call.invite():
            continue
        msgs = call.answers(1.0, until=lambda m: invite_final([m]) is not None)
        final = invite_final(msgs)
        if final and status_of(final) == 200:
            call.ack_and_bye(final)  # Tandem's own BYE is already on its way
            msgs += call.answers(1.0, until=lambda m: header(m, "CSeq").endswith("BYE") and status_of(m) is not None)
            ours = any(m != "BYE" and header(m, "CSeq").endswith("BYE") and status_of(m) in (200, 481) for m in msgs)
            crossed += ours
    check(crossed == 12, f"BYE crossing Tandem's BYE: our BYE answered (200 or 481) in every round ({crossed}/12)")
    peer.close()

    idle = t.wait_for(lambda: t.channel_count() == 0
                      and "0 active SIP channels (0 dialogs)" in t.rx("sip show channels")[1], timeout=10)
    check(idle, "no channel and no SIP dialog left:\n" + t.rx("sip show channels")[1])
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

finish()
