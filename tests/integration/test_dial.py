"""Dial() in a real PBX with Local channels: DIALSTATUS for each outcome,
the loser of a parallel dial hung up with cause 26, a caller who leaves while
it rings (CANCEL), and CDR lines for both legs of a dialled call."""
import os
import time

from harness import Tandem, check, finish

DIALPLAN = r"""
[dialtest]
exten => answer,1,Dial(Local/s@dt-slow&Local/s@dt-fast,10,g)
 same => n,Set(DB(dialtest/answer)=${DIALSTATUS})
exten => busy,1,Dial(Local/s@dt-busy,10)
exten => noanswer,1,Dial(Local/s@dt-ring,1)
exten => unavail,1,Dial(Nope/1234,5)
exten => cancel,1,Answer()
 same => n,Dial(Local/s@dt-ring,30)
exten => h,1,Set(DB(dialtest/h-${EXTEN}-${HANGUP_EXTEN})=${DIALSTATUS})

[dialcdr]
exten => s,1,Dial(Local/s@dt-fast,10)

[dt-fast]
exten => s,1,Answer()
 same => n,Wait(0.5)
 same => n,Hangup()

[dt-slow]
exten => s,1,Ringing()
 same => n,Wait(10)
exten => h,1,Set(DB(dialtest/slowcause)=${HANGUPCAUSE})

[dt-busy]
exten => s,1,Busy(5)

[dt-ring]
exten => s,1,Ringing()
 same => n,Wait(30)
exten => h,1,Set(DB(dialtest/ringcause)=${HANGUPCAUSE})
"""


def add_dialplan(conf):
    with open(os.path.join(conf, "extensions.conf"), "a") as f:
        f.write(DIALPLAN)


def db(t, key):
    status, out = t.rx(f"database get dialtest {key}")
    if status != 0 or "Value:" not in out:
        return None
    return out.split("Value:", 1)[1].strip()


t = Tandem(edit=add_dialplan)
with t:
    status, out = t.rx("core show application Dial")
    check(status == 0 and "DIALSTATUS" in out and "Dial(Tech/dest" in out, "Dial is registered with its help")

    start = time.time()
    status, out = t.rx("dialplan trace answer@dialtest 1001 timeout 10")
    check("Set DIALSTATUS=ANSWER" in out, "first answer wins: DIALSTATUS=ANSWER")
    check("Set DIALEDPEERNAME=Local/s@dt-fast" in out, "DIALEDPEERNAME names the leg that answered")
    check(time.time() - start < 8, "the call ended when the callee hung up")
    check(t.wait_for(lambda: db(t, "answer") == "ANSWER"), "with g the dialplan continued after the bridge")
    check(t.wait_for(lambda: db(t, "slowcause") == "26"), "the other leg was hung up with cause 26")

    status, out = t.rx("dialplan trace busy@dialtest")
    check("Set DIALSTATUS=BUSY" in out, "a busy callee gives BUSY")
    check("Set HANGUPCAUSE=17" in out, "HANGUPCAUSE is 17 for busy")

    start = time.time()
    status, out = t.rx("dialplan trace noanswer@dialtest")
    took = time.time() - start
    check("Set DIALSTATUS=NOANSWER" in out, "no answer before the timeout gives NOANSWER")
    check(1 <= took < 6, f"the timeout was honoured ({took:.1f} s)")
    check(t.wait_for(lambda: db(t, "ringcause") == "19"), "the unanswered leg was hung up with cause 19")

    status, out = t.rx("dialplan trace unavail@dialtest")
    check("Set DIALSTATUS=CHANUNAVAIL" in out, "an unknown technology gives CHANUNAVAIL")

    # A caller (the dialplan half of an originated Local call, answered so the
    # originate goes on) that leaves while Dial rings.
    status, out = t.rx("channel originate Local/cancel@dialtest application Wait 1")
    check(status == 0, "originate a Local call into Dial")
    check(t.wait_for(lambda: db(t, "h-h-cancel") == "CANCEL", timeout=10), "the caller hung up while ringing: CANCEL")
    check(t.wait_for(lambda: t.channel_count() == 0), "every leg is gone after the cancel")

    # CDRs: the dialled call from an originate, answered then ended by the callee.
    status, out = t.rx("channel originate Local/s@dialcdr application Wait 10")
    check(status == 0, "originate a Local call that dials")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=15), "the dialled call ended")
    csv = t.path("log", "cdr-csv", "Master.csv")

    def lines():
        try:
            return open(csv).read().splitlines()
        except OSError:
            return []

    check(t.wait_for(lambda: any('"AppDial"' in l for l in lines())), "the outgoing leg has its CDR")
    ls = lines()
    dial_lines = [l for l in ls if '"Dial"' in l and "Local/s@dt-fast" in l]
    check(len(dial_lines) >= 1, "the caller's CDR names the answered peer as destination channel")
    check(any('"AppDial"' in l and '"ANSWERED"' in l and "Local/s@dt-fast" in l for l in ls),
          "the answered outgoing leg's CDR is ANSWERED")
finish()
