"""The hop budget of a call (Max-Forwards, RFC 3261 8.1.1.6), on loopback.

- The INVITE Dial sends on carries the incoming INVITE's Max-Forwards less
  one (a SIPp trunk records it).
- A call that arrives with Max-Forwards: 0 may not be dialled on: the caller
  gets 483 Too Many Hops and nothing reaches the trunk.
- A trunk that routes back into Tandem itself (the classic misconfigured
  loop): the call goes round 70 times, then 483 comes back to the caller and
  every channel is gone, instead of calls piling up without end.
- The same loop written with Local channels ends too, and
  Set(MAX_FORWARDS()=n) shortens the budget.
"""
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import (append_file, edits, free_port, phones_context, received, sipp_call, sipp_result,  # noqa: E402
                     sipp_uas, use_port)

work = tempfile.mkdtemp(prefix="tandem-hops-")
port, gw_port = free_port(), free_port()

PEERS = f"""
[gw]
type = peer
host = 127.0.0.1
port = {gw_port}
insecure = invite
context = hops

; Tandem itself: whatever is dialled through it comes straight back in.
[self]
type = peer
host = 127.0.0.1
port = {port}
insecure = invite
context = loop
"""

PLAN = """
[hops]
exten => 601,1,Dial(SIP/gw/${EXTEN},10)
exten => 602,1,Dial(SIP/gw/${EXTEN},10)
exten => 700,1,Dial(SIP/self/${EXTEN},10)
exten => 800,1,Set(MAX_FORWARDS()=5)
 same => n,Dial(Local/801@hops,10)
exten => 801,1,Dial(Local/801@hops,10)

[loop]
exten => _X.,1,Dial(SIP/self/${EXTEN},10)
"""


def loop_calls(t, exten, context):
    return len(re.findall(rf"call from .* to {exten}@{context}\b", t.log()))


t = Tandem(edit=edits(use_port(port), phones_context("hops"), append_file("sip.conf", PEERS),
                      append_file("extensions.conf", PLAN)))
with t:
    gw = sipp_uas("uas_answer", gw_port, cwd=work, trace=os.path.join(work, "gw.msg"))
    rc, out = sipp_call("invite_bye", port, "601", cwd=work, hold_ms=300)
    check(rc == 0, "1001 calls 601 through the trunk" + ("" if rc == 0 else ":\n" + out[-3000:]))
    rc, out = sipp_result(gw)
    check(rc == 0, "the trunk answered and saw the BYE" + ("" if rc == 0 else ":\n" + out[-3000:]))
    invite = received(gw, "INVITE")
    check(re.search(r"^Max-Forwards: 69\r?$", invite, re.M) is not None,
          "the trunk's INVITE carries the caller's Max-Forwards less one (69):\n" + invite)

    rc, out = sipp_call("invite_too_many_hops", port, "602", cwd=work, hops=0)
    check(rc == 0, "an INVITE with Max-Forwards: 0 that Dial would send on: 483 Too Many Hops"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("not calling 'SIP/gw/602': the call has no hops left" in t.log(), "the refusal is logged")

    rc, out = sipp_call("invite_too_many_hops", port, "700", cwd=work, hops=70, timeout=30)
    check(rc == 0, "a trunk that loops back into Tandem: the caller gets 483 in the end"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    rounds = loop_calls(t, "700", "loop")
    check(rounds == 70, f"the call came back in 70 times (Max-Forwards 69 down to 0), not more: {rounds}")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=10),
          "every channel of the loop is gone:\n" + t.rx("core show channels")[1])

    rc, out = sipp_call("invite_too_many_hops", port, "800", cwd=work, hops=70, timeout=30)
    check(rc == 0, "a Local channel dialling itself, with MAX_FORWARDS()=5: 483 in the end"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check(t.log().count("not calling 'Local/801@hops': the call has no hops left") == 1,
          "five Local hops, then the refusal:\n" + t.log()[-3000:])
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=10),
          "no Local channel is left:\n" + t.rx("core show channels")[1])
    check(t.proc.poll() is None, "the PBX is running")
finish()
