"""Hold passed on to the other phone by re-INVITE (sip.conf mohinterpret=passthrough).

1002 has mohinterpret=passthrough. SIPp as 1002 registers and answers; SIPp
as 1001 calls it through Tandem (Dial in the sample [phones] context), puts
the call on hold (re-INVITE a=sendonly, moh_hold.xml) and resumes it
(a=sendrecv). Tandem plays no music to 1002 but tells it:

1. 1002 receives a re-INVITE with a=sendonly (checked in its scenario by a
   regexp, and must not say a=sendrecv) and answers a=recvonly, then one with
   a=sendrecv; the o= version goes 1, 2, 3 (checked there too); no music
   plays meanwhile (`moh show classes`), and 1001's own hold answers are
   untouched (a=recvonly, then a=sendrecv).
2. Glare: 1002 answers the first hold re-INVITE with 491; Tandem sends it
   again, same version, after RFC 3261's random delay (2.1 to 4 s: Tandem
   chose that leg's Call-ID) and the call goes on as in 1.
3. 1002 refuses the hold (488): the call stays up, the refusal is logged
   once, no re-INVITE follows the resume, and the BYE ends both legs.
4. The other way round: 1002 calls 1001, which holds and resumes the call
   itself (hold_uas_holder.xml): 1002 gets the same two re-INVITEs in the
   dialog of its own INVITE (hold_pass_uac.xml).

Needs app_dial (skipped, and said so, when not built)."""
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (edits, endpoint_options, free_port, registered_uas, sipp_call, sipp_result,  # noqa: E402
                     use_port)

if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, "app_dial.so")):
    print("skipped: app_dial is not built")
    finish()


class Sink:
    """A UDP port that swallows the RTP Tandem sends to a phone."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue

    def close(self):
        self.stop.set()
        time.sleep(0.15)
        self.sock.close()


def hold_call(t, port, uas_scenario, hold_ms):
    """1002 answers with `uas_scenario`; 1001 calls, holds, resumes and hangs
    up, each step `hold_ms` apart. Returns (caller rc, caller output, uas rc,
    uas output, music seen)."""
    a, b = Sink(), Sink()
    rc, out, uas = registered_uas(port, "1002", uas_scenario, cwd=t.dir, timeout=60, rtp_port=b.port)
    check(rc == 0, "1002 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    caller = sipp_call("moh_hold", port, "1002", hold_ms=hold_ms, rtp_port=a.port, timeout=50, cwd=t.dir,
                       background=True)
    # Music would show as a channel playing the default class.
    music = False
    while caller.poll() is None:
        _, classes = t.rx("moh show classes")
        if re.search(r"(?m)^default\s+\S+\s+\d+\s+[1-9]", classes):
            music = True
        time.sleep(0.2)
    rc_a, out_a = sipp_result(caller, timeout=60)
    rc_b, out_b = sipp_result(uas, timeout=60)
    a.close()
    b.close()
    return rc_a, out_a, rc_b, out_b, music


port = free_port()
# The answering SIPp follows a script: an OPTIONS from qualify would break it.
t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"),
                      endpoint_options("1002", mohinterpret="passthrough")))
with t:
    # --- 1. hold and resume passed on ------------------------------------------
    rc_a, out_a, rc_b, out_b, music = hold_call(t, port, "hold_pass_uas", 1500)
    check(rc_a == 0, "1001: call, hold (a=recvonly answer), resume (a=sendrecv answer), BYE"
          + ("" if rc_a == 0 else ":\n" + out_a[-3000:]))
    check(rc_b == 0, "1002: re-INVITE a=sendonly (version 2), then a=sendrecv (version 3), then BYE"
          + ("" if rc_b == 0 else ":\n" + out_b[-3000:] + "\n" + t.log()[-3000:]))
    check(not music, "no music on hold is played to 1002: the hold went to the phone")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the call")

    # --- 2. glare: 491, then the same offer again ------------------------------
    rc_a, out_a, rc_b, out_b, music = hold_call(t, port, "hold_pass_uas_491", 5000)
    check(rc_a == 0, "1001: hold and resume answered while 1002 met glare"
          + ("" if rc_a == 0 else ":\n" + out_a[-3000:]))
    check(rc_b == 0, "1002: 491 to the first hold re-INVITE, the retry (a=sendonly, version 2 again), "
          "a=sendrecv (version 3), BYE" + ("" if rc_b == 0 else ":\n" + out_b[-3000:] + "\n" + t.log()[-3000:]))
    check(not music, "no music during the glare either")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the glare call")

    # --- 3. the phone refuses the hold -----------------------------------------
    before = t.log().count("refused our re-INVITE")
    rc_a, out_a, rc_b, out_b, music = hold_call(t, port, "hold_pass_uas_refuse", 1500)
    check(rc_a == 0, "1001: its hold and resume are answered as usual"
          + ("" if rc_a == 0 else ":\n" + out_a[-3000:]))
    check(rc_b == 0, "1002: 488 to the hold, no re-INVITE at the resume, BYE"
          + ("" if rc_b == 0 else ":\n" + out_b[-3000:] + "\n" + t.log()[-3000:]))
    check(t.log().count("refused our re-INVITE") - before == 1, "the refusal is logged once")
    check(not music, "no music when the phone refused the hold")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the refused hold")

    # --- 4. the passthrough phone is the caller ---------------------------------
    a = Sink()
    rc, out, holder = registered_uas(port, "1001", "hold_uas_holder", cwd=t.dir, timeout=30, rtp_port=a.port)
    check(rc == 0, "1001 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    rc_b, out_b = sipp_call("hold_pass_uac", port, "1001", user="1002", timeout=25, cwd=t.dir)
    rc_a, out_a = sipp_result(holder, timeout=30)
    a.close()
    check(rc_b == 0, "1002 (caller): re-INVITE a=sendonly (version 2) and a=sendrecv (version 3) in its dialog"
          + ("" if rc_b == 0 else ":\n" + out_b[-3000:] + "\n" + t.log()[-3000:]))
    check(rc_a == 0, "1001 (callee): its hold and resume answered a=recvonly and a=sendrecv, then the BYE"
          + ("" if rc_a == 0 else ":\n" + out_a[-3000:]))
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the caller's call")

finish()
