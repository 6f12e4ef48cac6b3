"""chan_sip end to end through Dial: SIPp as 1002 registers and answers, SIPp
as 1001 calls it through Tandem (the sample [phones] context:
`Dial(SIP/${EXTEN},30)`); audio from the
caller (a PCMA recording) reaches the callee, whose echo comes back, through
both RTP sessions; then BYE. Needs app_dial (skipped, and said so, when the
module is not built)."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (append_file, edits, endpoint_options, free_port, link_pcaps, phones_context,  # noqa: E402
                     registered_uas, rtp_flowing, sipp_call, sipp_result, sipp_uas, use_port)

if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, "app_dial.so")):
    print("skipped: app_dial is not built")
    finish()

DIALPLAN = """
[bridgetest]
; 1001 -> 1002 goes through the sample [phones] context: Dial(SIP/${EXTEN},30).
include => phones
exten => short1002,1,Dial(SIP/1002,2)
 same => n,Verbose(1,BRIDGETEST dial status ${DIALSTATUS})
 same => n,Hangup(NOANSWER)
"""


port = free_port()
# The answering SIPp follows a script: an OPTIONS from qualify would break it.
t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"), phones_context("bridgetest"),
                      endpoint_options("1002", dtmfmode="info"), append_file("extensions.conf", DIALPLAN)))
with t:
    link_pcaps(t.dir)
    # 1002 registers from the port its answering SIPp listens on.
    rc, out, uas = registered_uas(port, "1002", "uas_answer", cwd=t.dir, echo=True)
    check(rc == 0, "1002 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    caller = sipp_call("invite_pcap", port, "1002", hold_ms=3000, timeout=20,
                       cwd=t.dir, background=True)
    both = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up\s+alaw", t.rx("sip show channels")[1])
                      and re.search(r"SIP/1002-\S+\s+\S+\s+out\s+Up\s+alaw", t.rx("sip show channels")[1]),
                      timeout=10)
    check(both, "sip show channels: the caller's leg (in) and the callee's leg (out), both up in alaw:\n"
          + t.rx("sip show channels")[1])

    check(t.wait_for(lambda: rtp_flowing(t, "SIP/1001", "SIP/1002"), timeout=5), "RTP flows both ways on both legs:\n" + t.rx("rtp show sessions")[1])
    rc, out = sipp_result(caller)
    check(rc == 0, "the caller: challenged, answered by 1002 through Tandem, BYE"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    rc, out = sipp_result(uas)
    check(rc == 0, "the callee: INVITE with SDP, 180, 200, ACK, BYE from Tandem"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    check(t.wait_for(lambda: "0 active SIP channels (0 dialogs)" in t.rx("sip show channels")[1], timeout=5),
          "no SIP dialog left")

    # --- Dial's timeout cancels the ringing callee -----------------------------
    uas = sipp_uas("uas_ring", uas.port, cwd=t.dir)
    rc, out = sipp_call("invite_unavailable", port, "short1002", timeout=20, cwd=t.dir)
    check(rc == 0, "Dial(SIP/1002,2) unanswered, then Hangup(NOANSWER): the caller gets 180 then 480"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    rc, out = sipp_result(uas)
    check(rc == 0, "the ringing callee is cancelled when Dial times out (CANCEL, 487, ACK)"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("BRIDGETEST dial status NOANSWER" in t.log(), "DIALSTATUS is NOANSWER")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the timeout")

    # --- DTMF by SIP INFO from the caller reaches a dtmfmode=info callee -----
    uas = sipp_uas("uas_info", uas.port, cwd=t.dir)
    rc, out = sipp_call("invite_info", port, "1002", hold_ms=1500, timeout=20, cwd=t.dir)
    check(rc == 0, "the caller sends digit 5 as SIP INFO" + ("" if rc == 0 else ":\n" + out[-3000:]))
    rc, out = sipp_result(uas)
    check(rc == 0, "the callee (dtmfmode=info) gets it as SIP INFO Signal=5"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the INFO call")

    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

finish()
