"""rtptimeout: an answered SIP call whose phone stops sending RTP (gone
without a BYE) is hung up by Tandem after the endpoint's rtptimeout, with a
BYE to the phone; a phone with the default timeout is left alone meanwhile."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import append_file, edits, free_port, sipp_call, use_port  # noqa: E402

PHONE = """
[1005](office-phone)
secret = Tandem-1005-Loopback!
context = rtptest
rtptimeout = 2
"""
PLAN = """
[rtptest]
exten => answer,1,Answer()
 same => n,Wait(20)
 same => n,Hangup()
"""

port = free_port()
t = Tandem(edit=edits(use_port(port), append_file("sip.conf", PHONE), append_file("extensions.conf", PLAN)))
with t:
    # The scenario answers nothing itself and sends no RTP; it passes only
    # when Tandem sends the BYE.
    start = time.monotonic()
    rc, out = sipp_call("invite_remote_bye", port, "answer", user="1005", password="Tandem-1005-Loopback!",
                        timeout=15)
    took = time.monotonic() - start
    check(rc == 0, f"the silent call got a BYE from Tandem (exit {rc})" + ("" if rc == 0 else ":\n" + out[-2000:]))
    check(1.5 <= took <= 8, f"after about rtptimeout (2 s), not the dialplan's 20 s (took {took:.1f} s)")
    check(t.wait_for(lambda: "no RTP for 2 s: hanging up" in t.log(), timeout=5), "the hangup is logged with its reason")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    check(t.stop() == 0, "the PBX stops cleanly")
finish()
