"""chan_sip video pass-through: 1001 calls 1002 through Tandem (Dial) offering
PCMA and H.264 (with its fmtp); both have videosupport=yes. The callee's
INVITE carries H.264 with the caller's fmtp verbatim, the callee answers it
under another payload type (98), and video RTP sent from the test to the port
Tandem answered the caller reaches the callee's video port: every packet,
payload bytes identical, marker bits kept, payload type rewritten to 98; the
audio flows as before. Then, with the caller at videosupport=no, its answer
has m=video port 0, the callee's INVITE has no video, and the call works.
Needs app_dial."""
import glob
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (HERE, SECRETS, SIPP, edits, endpoint_options, free_media_port, free_port,  # noqa: E402
                     link_pcaps, registered_uas, rtp_flowing, sipp_result, use_port)

if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, "app_dial.so")):
    print("skipped: app_dial is not built")
    finish()


def video_phones(caller_video):
    """Both phones may send H.264; the caller takes video only if `caller_video`."""
    return edits(endpoint_options("1001", videosupport="yes" if caller_video else "no", allow="h264"),
                 endpoint_options("1002", videosupport="yes", allow="h264"))


def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(0.05)
    return s


def start_callee(t, port, scenario, vport):
    rc, out, uas = registered_uas(port, "1002", scenario, cwd=t.dir, echo=True, trace_err=True, vport=vport)
    check(rc == 0, "1002 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    return uas


def start_caller(t, port, scenario, vport, hold_ms):
    return subprocess.Popen([SIPP, f"127.0.0.1:{port}", "-sf", os.path.join(HERE, scenario + ".xml"), "-m", "1",
                             "-s", "1002", "-au", "1001", "-ap", SECRETS["1001"], "-key", "caller", "1001",
                             "-key", "vport", str(vport), "-i", "127.0.0.1", "-p", str(free_port()), "-t", "u1",
                             "-mp", str(free_media_port()), "-d", str(hold_ms), "-timeout", "20s", "-timeout_error",
                             "-nostdin", "-trace_err", "-trace_logs"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=t.dir)


def both_up(t):
    out = t.rx("sip show channels")[1]
    return re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up", out) and re.search(r"SIP/1002-\S+\s+\S+\s+out\s+Up", out)


def finish_sipp(proc, what):
    rc, out = sipp_result(proc)
    check(rc == 0, what + ("" if rc == 0 else ":\n" + out[-3000:]))


# --- both video-capable: H.264 relayed untouched --------------------------------
# The answering SIPp follows a script: an OPTIONS from qualify would break it.
port = free_port()
t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"), video_phones(True)))
with t:
    link_pcaps(t.dir)
    caller_video, callee_video = free_port(), free_port()
    cv, ev = udp(caller_video), udp(callee_video)
    uas = start_callee(t, port, "video_uas", callee_video)
    caller = start_caller(t, port, "video_call", caller_video, 5000)
    check(t.wait_for(lambda: both_up(t), timeout=10),
          "both legs up:\n" + t.rx("sip show channels")[1] + "\n" + t.log()[-3000:])

    answered = None
    deadline = time.time() + 5
    while answered is None and time.time() < deadline:
        for name in glob.glob(os.path.join(t.dir, "video_call_*_logs.log")):
            with open(name, errors="replace") as f:
                m = re.search(r"TANDEM_VIDEO_PORT (\d+)", f.read())
            if m:
                answered = int(m.group(1))
        time.sleep(0.1)
    check(answered is not None, "the caller's 200 OK answers H.264 with the fmtp, on a video port")

    sent = []
    if answered:
        for i in range(50):
            payload = bytes([0x65, i]) + os.urandom(40 + i)
            marker = 0x80 if i % 5 == 4 else 0
            sent.append((payload, bool(marker)))
            header = struct.pack("!BBHII", 0x80, marker | 96, 1000 + i, 90000 * 7 + (i // 5) * 3000, 0x1234ABCD)
            cv.sendto(header + payload, ("127.0.0.1", answered))
            time.sleep(0.01)
    got = []
    deadline = time.time() + 2
    while time.time() < deadline and len(got) < len(sent):
        try:
            data, _ = ev.recvfrom(2048)
            got.append(data)
        except socket.timeout:
            pass
    payloads = [(d[12:], bool(d[1] & 0x80)) for d in got if len(d) > 12 and (d[0] & 0x0F) == 0]
    check(len(got) == 50, f"the callee receives the 50 video packets ({len(got)})")
    check([p for p, _ in payloads] == [p for p, _ in sent], "payload bytes identical, in order")
    # The relay marks the first packet of a stream it starts; the rest keep theirs.
    check([m for _, m in payloads[1:]] == [m for _, m in sent[1:]] and payloads and payloads[0][1],
          "marker bits kept (and set on the first packet relayed)")
    check(got and all(d[1] & 0x7F == 98 for d in got), "payload type rewritten to the callee's 98")
    check(t.wait_for(lambda: rtp_flowing(t, "SIP/1001", "SIP/1002"), timeout=5), "audio flows both ways on both legs:\n"
          + t.rx("rtp show sessions")[1])
    finish_sipp(caller, "the caller: PCMA + H.264 offered and answered, BYE")
    finish_sipp(uas, "the callee: INVITE with H.264 and the caller's fmtp, answered, BYE from Tandem")
    cv.close()
    ev.close()
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

# --- the caller without videosupport: m=video port 0, audio only ---------------
port = free_port()
t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"), video_phones(False)))
with t:
    link_pcaps(t.dir)
    uas = start_callee(t, port, "uas_answer", free_port())
    caller = start_caller(t, port, "video_call_refused", free_port(), 3000)
    check(t.wait_for(lambda: both_up(t), timeout=10),
          "both legs up:\n" + t.rx("sip show channels")[1] + "\n" + t.log()[-3000:])
    check(t.wait_for(lambda: rtp_flowing(t, "SIP/1001", "SIP/1002"), timeout=5), "audio flows both ways on both legs:\n"
          + t.rx("rtp show sessions")[1])
    finish_sipp(caller, "videosupport=no: the caller's answer has m=video port 0, the call works")
    finish_sipp(uas, "the callee (audio only) gets an INVITE without video and answers it")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

finish()
