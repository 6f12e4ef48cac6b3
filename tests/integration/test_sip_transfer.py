"""chan_sip transfers end to end (RFC 3515 REFER, RFC 3891 Replaces, RFC 5589),
with SIPp phones on loopback:

(a) blind: A (1001) calls B through Dial, sends REFER to 1003; A gets 202,
    NOTIFY 100 Trying then NOTIFY 200 (subscription terminated); B is taken
    out of the bridge and runs 1003 (Dial to C); B's audio reaches C; A's
    leg is gone.
(b) REFER to an extension that does not exist: NOTIFY 404, the call stays.
(c) attended: A talks to B and to C; REFER in call 1 with Replaces naming
    call 2; B and C are connected, both of A's legs end.
(d) INVITE with Replaces taking over A's leg of a call to B (B's audio then
    reaches the new caller); a Replaces naming no dialog gets 481.
(e) REFER outside a dialog gets 403, one with unknown tags 481; the PBX lives.
(f) call waiting: 1002 and 1004 both call the phone 1001, which answers
    both and connects them (REFER with Replaces): the two callers' calls
    share an event loop, the second caller's dialplan hands it over, B and
    C are connected, and hanging up one ends the other.
(g) the same through a number that is not the phone's name (5001, a DID
    routed to 1001), so the two callers' calls land on different event
    loops: the second caller is moved to the first one's loop and the
    transfer succeeds the same way.

Needs app_dial (skipped, and said so, when the module is not built)."""
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (HERE, SECRETS, SIPP, Phone, UdpPeer, append_file, edits, free_media_port,  # noqa: E402
                     free_port, link_pcaps, phones_context, request, rtp_sessions, sipp_call, sipp_result, sipp_uas,
                     status_of, use_port)

if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, "app_dial.so")):
    print("skipped: app_dial is not built")
    finish()

B_PORT, C_PORT = free_port(), free_port()

DIALPLAN = f"""
[xfertest]
exten => b,1,Dial(SIP/b@127.0.0.1:{B_PORT},20)
 same => n,Hangup()
exten => c,1,Dial(SIP/c@127.0.0.1:{C_PORT},20)
 same => n,Hangup()
exten => 1001,1,Dial(SIP/1001,20)
 same => n,Hangup()
exten => 5001,1,Dial(SIP/1001,20)
 same => n,Hangup()
exten => 1003,1,Verbose(1,XFERTEST blind transfer from ${{BLINDTRANSFER}})
 same => n,Dial(SIP/c@127.0.0.1:{C_PORT},20)
 same => n,Hangup()
"""


# A third caller for the call-waiting case.
CALLER_1004 = """
[1004](office-phone)
secret = Tandem-1004-Loopback!
callerid = "Side desk" <1004>
"""
SECRETS_ALL = dict(SECRETS, **{"1004": "Tandem-1004-Loopback!"})


def three_loops(conf_dir):
    """An edit= hook: three event loops, so that two callers picked one after
    the other (each challenged once) would land on different loops."""
    path = os.path.join(conf_dir, "tandem.conf")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"(?m)^loops = \d+", "loops = 3", text))


class WaitingPhone(Phone):
    """A registered phone that answers every call (200 with SDP), answers
    NOTIFY and BYE, and sends a REFER in one of its dialogs."""

    def __init__(self, user, password, server_port):
        self.dialogs = []      # in the order the calls came: dicts of the dialog's parts
        self.notifies = []     # sipfrag bodies of the NOTIFYs received
        self.byes = []         # Call-IDs the PBX ended
        self.requests = []     # methods received, in order
        super().__init__(user, password, server_port)

    @staticmethod
    def _header(text, name):
        m = re.search(rf"(?im)^{name}:\s*(.*)$", text)
        return m.group(1).strip() if m else ""

    def _request(self, text, addr):
        method = text.split(" ", 1)[0]
        self.requests.append(method)
        if method == "OPTIONS":
            super()._request(text, addr)
        elif method == "INVITE":
            call_id = self._header(text, "Call-ID")
            known = next((d for d in self.dialogs if d["call_id"] == call_id), None)
            if known is None:
                known = {"call_id": call_id, "tag": uuid.uuid4().hex[:8],
                         "remote": self._header(text, "From"), "local": self._header(text, "To"),
                         "target": re.search(r"<([^>]+)>", self._header(text, "Contact")).group(1)}
                self.dialogs.append(known)
            sdp = ("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   f"m=audio {40000 + 2 * len(self.dialogs)} RTP/AVP 8 0\r\na=sendrecv\r\n")
            self._reply(text, addr, to_tag=known["tag"], extra=f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\n"
                        "Content-Type: application/sdp", body=sdp)
        elif method in ("NOTIFY", "BYE"):
            self._reply(text, addr)
            if method == "NOTIFY":
                self.notifies.append(text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else "")
            else:
                self.byes.append(self._header(text, "Call-ID"))

    def connect(self, first, second, target):
        """Attended transfer: REFER in `first` to `target` with a Replaces
        naming `second` as the PBX knows it (its tag is the PBX's, the remote
        one here). The status of the answer."""
        pbx_tag = re.search(r"tag=([^;>\s]+)", second["remote"]).group(1)
        replaces = urllib.parse.quote(f"{second['call_id']};to-tag={pbx_tag};from-tag={second['tag']}", safe="")
        return self.refer(first, f"{target}?Replaces={replaces}")

    def refer(self, dialog, refer_to):
        """REFER in `dialog` (ours as the answering side); the status of the answer."""
        d = dialog
        msg = (f"REFER {d['target']} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
               f"From: {d['local']};tag={d['tag']}\r\nTo: {d['remote']}\r\nCall-ID: {d['call_id']}\r\n"
               f"CSeq: 101 REFER\r\nContact: <sip:{self.user}@127.0.0.1:{self.port}>\r\nMax-Forwards: 70\r\n"
               f"Refer-To: <{refer_to}>\r\nReferred-By: <sip:{self.user}@127.0.0.1>\r\nContent-Length: 0\r\n\r\n")
        self.peer.send(msg.encode(), self.server)
        return status_of(self._response())


def sent(t, prefix):
    """RTP packets Tandem sent to the phones of the sessions named `prefix`."""
    return max([out for name, v in rtp_sessions(t).items() if name.startswith(prefix) for out, _ in v] or [0])


def logged_call(t, port, exten, name, user="1001"):
    """A call from `user` that waits for the PBX's BYE and logs its dialog."""
    log = os.path.join(t.dir, name + ".log")
    cmd = [SIPP, f"127.0.0.1:{port}", "-sf", os.path.join(HERE, "xfer_call.xml"), "-m", "1",
           "-s", exten, "-au", user, "-ap", SECRETS_ALL[user], "-key", "caller", user,
           "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_media_port()),
           "-timeout", "40s", "-timeout_error", "-nostdin", "-trace_logs", "-log_file", log]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=t.dir)

    def dialog():
        try:
            with open(log) as f:
                m = re.search(r"DIALOG (\S+) (\S+) (\S+)", f.read())
                return m.groups() if m else None
        except OSError:
            return None

    t.wait_for(lambda: dialog() is not None, timeout=10)
    return proc, dialog()


def transferer(t, port, exten, refer_to, hold_ms, name, background=False):
    """A (1001) calls `exten`, then REFERs to `refer_to` after `hold_ms`.
    Returns the Popen object, or (exit status, output, final NOTIFY status)."""
    log = os.path.join(t.dir, name + ".log")
    cmd = [SIPP, f"127.0.0.1:{port}", "-sf", os.path.join(HERE, "xfer_refer.xml"), "-m", "1",
           "-s", exten, "-au", "1001", "-ap", SECRETS["1001"], "-key", "caller", "1001", "-key", "refer_to", refer_to,
           "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_media_port()), "-d", str(hold_ms),
           "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_logs", "-log_file", log]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=t.dir)
    proc.final = lambda: final_status(log)
    if background:
        return proc
    rc, out = sipp_result(proc, timeout=60)
    return rc, out, final_status(log)


def final_status(log):
    try:
        with open(log) as f:
            m = re.search(r"FINAL (\d+)", f.read())
            return int(m.group(1)) if m else None
    except OSError:
        return None


def ended(proc, what):
    rc, out = sipp_result(proc)
    check(rc == 0, what + ("" if rc == 0 else ":\n" + out[-3000:]))


def up(t, pattern):
    return re.search(pattern, t.rx("sip show channels")[1]) is not None


def hang_up_all(t):
    t.rx("channel request hangup all")
    return t.wait_for(lambda: t.channel_count() == 0, timeout=10)


port = free_port()
# Scripted SIPp phones: an OPTIONS from qualify would break their scripts.
t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"), phones_context("xfertest"),
                      append_file("extensions.conf", DIALPLAN), append_file("sip.conf", CALLER_1004), three_loops))
with t:
    link_pcaps(t.dir)
    me = f"127.0.0.1:{port}"

    # --- (a) blind transfer ----------------------------------------------------
    b = sipp_uas("xfer_uas_talk", B_PORT, cwd=t.dir, timeout=40)
    c = sipp_uas("uas_answer", C_PORT, cwd=t.dir, timeout=40, echo=True)
    a = transferer(t, port, "b", f"sip:1003@{me}", 1500, "blind", background=True)
    check(t.wait_for(lambda: up(t, rf"SIP/127\.0\.0\.1:{C_PORT}-\S+\s+\S+\s+out\s+Up"), timeout=15),
          "after the REFER, the transferee B calls C (1003) and C answers:\n" + t.rx("sip show channels")[1])
    ended(a, "the transferer: 202, NOTIFY 100 Trying (active), a final NOTIFY (terminated), then its BYE")
    check(a.final() == 200, f"the final NOTIFY says SIP/2.0 200 OK ({a.final()})")
    check("XFERTEST blind transfer from SIP/1001-" in t.log(), "1003 runs on B with BLINDTRANSFER set to A's channel")
    check(t.wait_for(lambda: sent(t, f"SIP/127.0.0.1:{C_PORT}") > 50, timeout=10),
          "B's audio reaches C through the new bridge:\n" + t.rx("rtp show sessions")[1])
    _, chans = t.rx("core show channels")
    check("SIP/1001-" not in chans, "A's leg is gone:\n" + chans)
    check(re.search(rf"SIP/127\.0\.0\.1:{B_PORT}-", chans) is not None, "B's leg is still up:\n" + chans)
    check(hang_up_all(t), "hanging up the transferred call leaves no channel")
    ended(b, "B: answered, talked, BYE at the end")
    ended(c, "C: answered the transferred call, BYE at the end")

    # --- (b) REFER to an extension that does not exist ------------------------
    b = sipp_uas("xfer_uas_talk", B_PORT, cwd=t.dir, timeout=40)
    rc, out, final = transferer(t, port, "b", f"sip:9999@{me}", 1000, "missing")
    check(rc == 0 and final == 404, f"REFER to 9999: 202, NOTIFY 100, final NOTIFY 404 Not Found ({final})"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("no extension 9999@xfertest" in t.log(), "the PBX says why the transfer failed")
    ended(b, "the call stayed up until A hung up: B gets the BYE")
    check(re.search(r"Dial: bridge with SIP/127\.0\.0\.1:\d+-\S+ ended: a hung up", t.log()) is not None,
          "the bridge ended because A hung up, not by a transfer")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")

    # --- (c) attended transfer ---------------------------------------------------
    b = sipp_uas("xfer_uas_talk", B_PORT, cwd=t.dir, timeout=40)
    c = sipp_uas("uas_answer", C_PORT, cwd=t.dir, timeout=40, echo=True)
    a2, dialog = logged_call(t, port, "c", "a2")
    check(dialog is not None, "call 2 (A to C) is up and its dialog is known")
    if dialog:
        call_id, pbx_tag, a_tag = dialog
        replaces = urllib.parse.quote(f"{call_id};to-tag={pbx_tag};from-tag={a_tag}", safe="")
        before = sent(t, f"SIP/127.0.0.1:{C_PORT}")
        rc, out, final = transferer(t, port, "b", f"sip:c@{me}?Replaces={replaces}", 1000, "attended")
        check(rc == 0 and final == 200, f"call 1: REFER with Replaces of call 2: 202, NOTIFY 100, NOTIFY 200 ({final})"
              + ("" if rc == 0 else ":\n" + out[-3000:] + t.log()[-3000:]))
        ended(a2, "call 2: A's leg to C gets the PBX's BYE")
        check(t.wait_for(lambda: sent(t, f"SIP/127.0.0.1:{C_PORT}") > before + 50, timeout=10),
              "B's audio reaches C:\n" + t.rx("rtp show sessions")[1])
        _, chans = t.rx("core show channels")
        check("SIP/1001-" not in chans and len(re.findall(r"SIP/127\.0\.0\.1:\d+-", chans)) == 2,
              "only B and C are left:\n" + chans)
    else:
        a2.kill()
    check(hang_up_all(t), "hanging up B and C leaves no channel")
    ended(b, "B: BYE at the end")
    ended(c, "C: BYE at the end")

    # --- (d) INVITE with Replaces -------------------------------------------------
    b = sipp_uas("xfer_uas_talk", B_PORT, cwd=t.dir, timeout=40)
    a, dialog = logged_call(t, port, "b", "a")
    check(dialog is not None, "A's call to B is up and its dialog is known")
    if dialog:
        call_id, pbx_tag, a_tag = dialog
        d = sipp_call("xfer_replaces", port, "b", user="1002", hold_ms=2500, timeout=30, cwd=t.dir,
                      background=True, replaces=f"{call_id};to-tag={pbx_tag};from-tag={a_tag}")
        ended(a, "A's replaced leg gets the PBX's BYE")
        check(t.wait_for(lambda: sent(t, "SIP/1002") > 30, timeout=10),
              "B's audio reaches the new caller:\n" + t.rx("rtp show sessions")[1])
        ended(d, "the replacing call: challenged, answered, BYE at the end")
        ended(b, "B: its new party hung up, BYE")
    else:
        a.kill()
        b.kill()
    rc, out = sipp_call("xfer_replaces_bad", port, "b", user="1002", timeout=20, cwd=t.dir,
                        replaces="no-such-call@127.0.0.1;to-tag=abc;from-tag=def")
    check(rc == 0, "a Replaces naming no dialog: challenged, then 481" + ("" if rc == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")

    # --- (f) call waiting: the phone connects its two callers --------------------
    phone = WaitingPhone("1001", SECRETS["1001"], port)
    check(phone.register() == 200, "1001 registers (a phone that answers every call)")
    b, b_dialog = logged_call(t, port, "1001", "cw-b", user="1002")
    c, c_dialog = logged_call(t, port, "1001", "cw-c", user="1004")
    check(b_dialog is not None and c_dialog is not None and len(phone.dialogs) == 2,
          f"1002 and then 1004 call 1001, which answers both ({len(phone.dialogs)} calls)")
    if len(phone.dialogs) == 2:
        first, second = phone.dialogs
        status = phone.connect(first, second, f"sip:1004@{me}")
        check(status == 202, f"REFER in the first call with Replaces of the second: 202 ({status})")
        check(t.wait_for(lambda: any(n.startswith("SIP/2.0 200") for n in phone.notifies), timeout=10),
              f"the final NOTIFY says SIP/2.0 200 OK ({phone.notifies}):\n" + t.log()[-2000:])
        check(not any(n.startswith("SIP/2.0 503") for n in phone.notifies), "no 503 (different event loops)")
        check(t.wait_for(lambda: set(phone.byes) >= {first["call_id"], second["call_id"]}, timeout=10),
              "the PBX ends both of the phone's calls")
        check(re.search(r"SIP/1004-\S+: Dial: handed over by a transfer", t.log()) is not None,
              "the second caller's Dial hands it over")
        check(re.search(r"SIP/1002-\S+: Dial: transfer: connected to SIP/1004-", t.log()) is not None,
              "the first caller's Dial connects it to the second")
        _, chans = t.rx("core show channels")
        check("SIP/1001-" not in chans and "SIP/1002-" in chans and "SIP/1004-" in chans,
              "only the two callers are left:\n" + chans)
        name = re.search(r"(SIP/1002-\S+)", chans)
        if name:
            t.rx(f"channel request hangup {name.group(1)}")
        ended(b, "1002 hung up by the console: BYE")
        ended(c, "1004 gets a BYE as its party is gone")
        check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    else:
        b.kill()
        c.kill()
    phone.close()

    # --- (g) call waiting through a DID: the callers live on different loops ----
    def loop_of(prefix):
        _, chans = t.rx("core show channels concise")
        m = re.search(rf"(?m)^({re.escape(prefix)}-[^!]+)!", chans)
        if not m:
            return None
        _, detail = t.rx(f"core show channel {m.group(1)}")
        m = re.search(r"(?m)^Event loop:\s+(\d+)", detail)
        return m.group(1) if m else None

    phone = WaitingPhone("1001", SECRETS["1001"], port)
    check(phone.register() == 200, "1001 registers again")
    b, b_dialog = logged_call(t, port, "5001", "did-b", user="1002")
    c, c_dialog = logged_call(t, port, "5001", "did-c", user="1004")
    check(b_dialog is not None and c_dialog is not None and len(phone.dialogs) == 2,
          f"1002 and then 1004 call 5001, routed to 1001, which answers both ({len(phone.dialogs)} calls)")
    if len(phone.dialogs) == 2:
        first, second = phone.dialogs
        loops = (loop_of("SIP/1002"), loop_of("SIP/1004"))
        check(None not in loops and loops[0] != loops[1],
              f"the two callers live on different event loops ({loops}; `core show channel`)")
        status = phone.connect(first, second, f"sip:1004@{me}")
        check(status == 202, f"REFER with Replaces across loops: 202 ({status})")
        check(t.wait_for(lambda: any(n.startswith("SIP/2.0 200") for n in phone.notifies), timeout=10),
              f"the final NOTIFY says SIP/2.0 200 OK ({phone.notifies}):\n" + t.log()[-2000:])
        check(t.wait_for(lambda: set(phone.byes) >= {first["call_id"], second["call_id"]}, timeout=10),
              "the PBX ends both of the phone's calls")
        check(re.search(r"SIP/1002-\S+: transfer: SIP/1004-\S+ moved to this channel's event loop", t.log())
              is not None, "the second caller is moved to the first one's event loop")
        check(re.search(r"SIP/1002-\S+: Dial: transfer: connected to SIP/1004-", t.log()) is not None,
              "the first caller's Dial connects it to the second")
        check(loop_of("SIP/1004") == loops[0], f"1004's channel now lives on 1002's loop ({loop_of('SIP/1004')})")
        _, chans = t.rx("core show channels")
        check("SIP/1001-" not in chans and "SIP/1002-" in chans and "SIP/1004-" in chans,
              "only the two callers are left:\n" + chans)
        # Media after the move: 1004's phone (a socket here, learnt by strict
        # RTP after a few packets in sequence) sends to its session, which now
        # lives on 1002's loop, and the bridge relays it to 1002's leg.
        _, sessions = t.rx("rtp show sessions")
        m = re.search(r"(?m)^SIP/1004\S*\s+(\d+)\s", sessions)
        check(m is not None, "1004's RTP session is listed:\n" + sessions)
        if m:
            before = sent(t, "SIP/1002")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp_out:
                rtp_out.bind(("127.0.0.1", 0))
                for i in range(25):
                    rtp_out.sendto(struct.pack("!BBHII", 0x80, 0, 100 + i, 160 * i, 0x4004) + bytes([0xFF] * 160),
                                   ("127.0.0.1", int(m.group(1))))
                    time.sleep(0.02)
            check(t.wait_for(lambda: sent(t, "SIP/1002") - before >= 20, timeout=5),
                  f"what 1004's phone sends after the move reaches 1002's leg ({sent(t, 'SIP/1002') - before} "
                  "of 25 packets; the first ones teach strict RTP the source)")
        # The moved call still hears its phone's signalling: 1004 hangs up
        # (a BYE handled on its new loop) and 1002 gets the BYE.
        name = re.search(r"(SIP/1004-\S+)", chans)
        if name:
            t.rx(f"channel request hangup {name.group(1)}")
        ended(c, "1004, hung up by the console on its new loop: BYE")
        ended(b, "1002 gets a BYE as its party is gone")
        check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    else:
        b.kill()
        c.kill()
    phone.close()

    # --- (e) REFER outside a dialog --------------------------------------------
    # Refused by method (405, an Allow without REFER) before anything else:
    # in particular no NOTIFY goes to the unauthenticated sender, which the
    # stack's implicit subscription would send (and retransmit for 32 s).
    peer = UdpPeer()
    peer.send(request("REFER", port, extra_headers=f"Refer-To: <sip:1003@{me}>", local_port=peer.port), port)
    got = peer.answers(2.0)
    check([status_of(m) for m in got] == [405], f"REFER outside any dialog: 405 and nothing else ({got})")
    allow = re.search(r"^Allow:(.*)$", got[0], re.M | re.I) if got else None
    check(allow is not None and "REFER" not in allow.group(1), f"its Allow leaves REFER out ({got})")
    tagged = request("REFER", port, extra_headers=f"Refer-To: <sip:1003@{me}>", local_port=peer.port)
    tagged = tagged.replace(f"To: <sip:1001@127.0.0.1>".encode(), b"To: <sip:1001@127.0.0.1>;tag=nosuchdialog")
    peer.send(tagged, port)
    got = peer.answers(2.0)
    check([status_of(m) for m in got] == [405], f"REFER naming a dialog that does not exist: 405, no NOTIFY ({got})")
    peer.send(request("OPTIONS", port, local_port=peer.port), port)
    got = peer.answers(1.0)
    allow = re.search(r"^Allow:(.*)$", got[0], re.M | re.I) if got else None
    check(allow is not None and "REFER" in allow.group(1), f"OPTIONS lists REFER among what calls take ({got})")
    peer.close()
    check(t.rx("core show version")[0] == 0, "the PBX still answers")

    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

finish()
