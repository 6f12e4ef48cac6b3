"""chan_sip calls with real SIP peers (SIPp) on loopback: INVITE challenged
then answered with SDP, BYE both ways, hold/resume, DTMF (RFC 4733 and SIP
INFO), 100rel, CANCEL, busy/congestion/unknown extension mapped to SIP
statuses, no common codec, wrong password, `sip show channels`, malformed
requests, and no channel or dialog left behind."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import (UdpPeer, append_file, edits, free_port, link_pcaps, request, sipp_call,  # noqa: E402
                     status_of, use_port)

DIALPLAN = """
[calltest]
exten => answer,1,Verbose(1,SIPTEST call from ${CALLERID(name)} <${CALLERID(num)}> to ${EXTEN})
 same => n,Answer()
 same => n,Wait(10)
 same => n,Hangup()
exten => short,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => ring,1,Ringing()
 same => n,Wait(20)
 same => n,Hangup()
exten => busy,1,Busy(3)
exten => congested,1,Congestion(3)
exten => dtmf,1,Answer()
 same => n,Read(DIGITS,,2,,,5)
 same => n,Verbose(1,SIPTEST digits ${DIGITS})
 same => n,Hangup()
exten => early,1,Progress()
 same => n,Wait(1)
 same => n,Answer()
 same => n,Wait(1)
 same => n,Hangup()
exten => i,1,Hangup(1)
exten => h,1,Verbose(1,SIPTEST ended ${HANGUP_EXTEN} cause ${HANGUPCAUSE} qos ${RTPAUDIOQOS})
"""


def calltest_context(conf_dir):
    path = os.path.join(conf_dir, "sip.conf")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"(?m)^context = phones .*$", "context = calltest", text)
    with open(path, "w") as f:
        f.write(text)


SRTP_PHONE = """
[1003](office-phone)
secret = Tandem-1003-Loopback!
media_encryption = sdes

[1004](office-phone)
secret = Tandem-1004-Loopback!
call-limit = 1
"""


def sip_channels(t):
    _, out = t.rx("sip show channels")
    return out


def idle(t):
    """No channel and no SIP dialog left."""
    return t.channel_count() == 0 and "0 active SIP channels (0 dialogs)" in sip_channels(t)


gw_port = free_port()
GATEWAY = f"""
[gw]
type = peer
host = 127.0.0.1
port = {gw_port}
insecure = invite
context = fromgw
"""
GATEWAY_PLAN = """
[fromgw]
exten => _X.,1,Verbose(1,SIPTEST gateway call from ${CALLERID(num)} for DID ${EXTEN})
 same => n,Answer()
 same => n,Wait(10)
 same => n,Hangup()
"""

port = free_port()
t = Tandem(edit=edits(use_port(port, autoban_failures=100), calltest_context, append_file("extensions.conf", DIALPLAN),
                      append_file("sip.conf", SRTP_PHONE + GATEWAY),
                      append_file("extensions.conf", GATEWAY_PLAN)))
with t:
    link_pcaps(t.dir)
    # --- an INVITE without credentials is challenged ------------------------
    peer = UdpPeer()
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    peer.send(request("INVITE", port, local_port=peer.port, extra_headers="Content-Type: application/sdp",
                      body=sdp), port)
    got = [m for m in peer.answers(1.5) if status_of(m) and status_of(m) >= 200]
    check(got and status_of(got[0]) == 401 and "WWW-Authenticate: Digest" in got[0],
          "an INVITE without credentials gets 401 with a digest challenge")
    peer.close()

    # --- challenged, authenticated, answered with SDP; the caller hangs up --
    sipp_proc = sipp_call("invite_bye", port, "answer", hold_ms=2500, cwd=t.dir, background=True)
    up = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up\s+ulaw\s+1001", sip_channels(t)) is not None,
                    timeout=8)
    shown = sip_channels(t)
    check(up, "sip show channels lists the answered call: direction, state, codec, endpoint" + ("" if up else
                                                                                                  ":\n" + shown))
    check(re.search(r"SIP/1001-\S+\s+\d+-[0-9a-f]+-\d+@127\.0\.0\.1\s+in", shown) is not None,
          "sip show channels shows the caller's SIP Call-ID:\n" + shown)
    out, _ = sipp_proc.communicate(timeout=30)
    check(sipp_proc.returncode == 0, "401, INVITE with credentials, 200 with SDP (PCMU and telephone-event), ACK, "
          "BYE, 200" + ("" if sipp_proc.returncode == 0 else ":\n" + out[-3000:]))
    check(re.search(r"SIPTEST call from Alice <1001> to answer", t.log()) is not None,
          "the dialplan ran at EXTEN=answer with the endpoint's callerid=")
    check(t.wait_for(lambda: "SIPTEST ended answer cause 16" in t.log(), timeout=5),
          "the caller's BYE hangs the channel up with NORMAL_CLEARING")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left after the call")

    check(re.search(r"SIPTEST ended answer cause 16 qos ssrc=\d+;themssrc=\d+;lp=-?\d+;rxjitter=[\d.]+;rxcount=\d+",
                    t.log()) is not None, "RTP statistics are in ${RTPAUDIOQOS} when the caller hangs up")

    # --- late offer: INVITE without SDP, answer in the ACK -------------------
    proc = sipp_call("invite_late_offer", port, "answer", hold_ms=1500, cwd=t.dir, background=True)
    late = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up\s+ulaw\s+1001\s+127\.0\.0\.1:\d+",
                                        sip_channels(t)) is not None, timeout=8)
    check(late, "late offer: the answer in the ACK sets the codec and the remote RTP address")
    switched = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up\s+alaw", sip_channels(t)) is not None,
                          timeout=5)
    check(switched, "an offerless re-INVITE: our new offer in the 200, the ACK's answer switches to alaw")
    out, _ = proc.communicate(timeout=30)
    check(proc.returncode == 0, "late offer: our offer in the 200 (every allowed codec), ACK with the answer, BYE"
          + ("" if proc.returncode == 0 else ":\n" + out[-3000:]))

    # --- hold and resume by re-INVITE ---------------------------------------
    proc = sipp_call("invite_hold", port, "answer", hold_ms=1500, cwd=t.dir, background=True)
    held = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Hold\s+ulaw", sip_channels(t)) is not None,
                      timeout=8)
    check(held, "a re-INVITE with a=sendonly puts the call on hold (answered a=recvonly)")
    resumed = held and t.wait_for(
        lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up\s+ulaw", sip_channels(t)) is not None, timeout=5)
    check(resumed, "a re-INVITE with a=sendrecv resumes it")
    out, _ = proc.communicate(timeout=30)
    check(proc.returncode == 0, "hold/resume call: both re-INVITEs answered with the mirrored direction, BYE"
          + ("" if proc.returncode == 0 else ":\n" + out[-3000:]))

    # --- DTMF: RFC 4733 in RTP and SIP INFO reach the dialplan -------------
    rc, out = sipp_call("invite_dtmf", port, "dtmf", cwd=t.dir)
    check(rc == 0, "DTMF call: answered, events sent, Tandem hangs up" + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("SIPTEST digits 15" in t.log(), "Read() got 1 from RFC 4733 events and 5 from SIP INFO")

    # --- the dialplan hangs up: Tandem sends BYE ---------------------------
    rc, out = sipp_call("invite_remote_bye", port, "short", cwd=t.dir)
    check(rc == 0, "Answer(), Wait(1), Hangup(): Tandem sends BYE" + ("" if rc == 0 else ":\n" + out[-3000:]))

    # --- early media with 100rel: reliable 183, PRACK ----------------------
    rc, out = sipp_call("invite_100rel", port, "early", cwd=t.dir)
    check(rc == 0, "Progress(): 183 with SDP, Require: 100rel and RSeq; PRACK answered; then 200"
          + ("" if rc == 0 else ":\n" + out[-3000:]))

    # --- CANCEL while ringing ---------------------------------------------
    rc, out = sipp_call("invite_cancel", port, "ring", cwd=t.dir)
    check(rc == 0, "180 Ringing, then CANCEL: 200 for the CANCEL and 487 for the INVITE"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: "SIPTEST ended ring cause 16" in t.log(), timeout=5),
          "the cancelled channel is hung up (and runs h)")

    # --- failures before answer --------------------------------------------
    for scenario, exten, what in [("invite_busy", "busy", "Busy(): 486 Busy Here"),
                                  ("invite_congestion", "congested", "Congestion(): 503 Service Unavailable"),
                                  ("invite_not_found", "nosuchexten", "unknown extension, i => Hangup(1): 404"),
                                  ("invite_not_acceptable", "answer", "no codec in common: 488")]:
        rc, out = sipp_call(scenario, port, exten, cwd=t.dir)
        check(rc == 0, what + ("" if rc == 0 else ":\n" + out[-3000:]))

    # --- SRTP (media_encryption=sdes) ---------------------------------------
    rc, out = sipp_call("invite_srtp", port, "answer", user="1003", password="Tandem-1003-Loopback!", cwd=t.dir)
    check(rc == 0, "SRTP offer (RTP/SAVP, a=crypto) answered with RTP/SAVP and our own key"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    rc, out = sipp_call("invite_plain_refused", port, "answer", user="1003", password="Tandem-1003-Loopback!",
                        cwd=t.dir)
    check(rc == 0, "plain RTP offered to an SRTP-only endpoint: 488" + ("" if rc == 0 else ":\n" + out[-3000:]))

    # --- call-limit=1: a second call while the first is up gets 486 ---------
    first = sipp_call("invite_bye", port, "answer", user="1004", password="Tandem-1004-Loopback!", hold_ms=2000,
                      cwd=t.dir, background=True)
    t.wait_for(lambda: "SIP/1004-" in sip_channels(t), timeout=5)
    rc, out = sipp_call("invite_busy", port, "answer", user="1004", password="Tandem-1004-Loopback!", cwd=t.dir)
    check(rc == 0, "call-limit reached: 486" + ("" if rc == 0 else ":\n" + out[-3000:]))
    out, _ = first.communicate(timeout=30)
    check(first.returncode == 0, "the first call is not disturbed" + ("" if first.returncode == 0 else ":\n" + out))
    rc, out = sipp_call("invite_bye", port, "answer", user="1004", password="Tandem-1004-Loopback!", cwd=t.dir)
    check(rc == 0, "once it ended, the endpoint can call again" + ("" if rc == 0 else ":\n" + out[-3000:]))

    # --- a gateway known by its address: not challenged, DID as EXTEN -------
    rc, out = sipp_call("invite_trusted", port, "5551000", user="0612345678", local_port=gw_port, cwd=t.dir)
    check(rc == 0, "INVITE from the insecure=invite gateway's address answered without a challenge"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("SIPTEST gateway call from 0612345678 for DID 5551000" in t.log(),
          "it entered the gateway's context with the DID as ${EXTEN} and the caller's number")
    rc, out = sipp_call("invite_trusted", port, "5551000", user="0612345678", cwd=t.dir)
    check(rc != 0 and "401" in out, "the same INVITE from another port is challenged")

    # --- wrong password: 403, never saying which part was wrong ------------
    rc, out = sipp_call("invite_bye", port, "answer", password="wrong-password-123", timeout=5, cwd=t.dir)
    check(rc != 0 and "403" in out, "a wrong password gets 403")

    # --- malformed requests: 400 or dropped; the PBX still answers ---------
    peer = UdpPeer()
    good = request("INVITE", port, local_port=peer.port, extra_headers="Content-Type: application/sdp", body=sdp)
    no_via = re.sub(rb"Via: [^\r]*\r\n", b"", good)
    huge = good.replace(b"Content-Length: %d" % len(sdp), b"Content-Length: 99999999")
    for what, data in [("missing Via", no_via), ("huge Content-Length", huge),
                       ("binary junk", bytes(range(256)) * 4), ("truncated", good[: len(good) // 2]),
                       ("garbage SDP", good.replace(b"v=0", b"x=1"))]:
        peer.send(data, port)
        answers = peer.answers(0.5)
        statuses = [status_of(a) for a in answers]
        check(all(s in (None, 100, 400, 401, 403, 488) for s in statuses),
              f"{what}: answered 400 (or a challenge) or dropped, got {statuses}")
    peer.answers(1.0)  # retransmissions of earlier answers
    peer.send(request("OPTIONS", port, local_port=peer.port, call_id="after-malformed"), port)
    got = [a for a in peer.answers(1.0) if "after-malformed" in a]
    check(got and status_of(got[0]) == 200, "OPTIONS still answered 200 after the malformed requests")
    peer.close()

    check(t.wait_for(lambda: idle(t), timeout=10), "no channel and no dialog left at the end:\n" + sip_channels(t))

    # --- stopping the PBX during a call: the caller gets a BYE -------------
    proc = sipp_call("invite_remote_bye", port, "answer", cwd=t.dir, background=True)
    up = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up", sip_channels(t)) is not None, timeout=8)
    check(up, "a call is up before the stop")
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly with a call up (exit {rc})" + ("" if rc == 0 else ":\n" + t.log()[-4000:]))
    out, _ = proc.communicate(timeout=30)
    check(proc.returncode == 0, "the caller got a BYE from the stopping PBX"
          + ("" if proc.returncode == 0 else ":\n" + out[-3000:]))

finish()
