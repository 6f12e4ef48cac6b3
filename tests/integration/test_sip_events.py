"""SIP events on the event bus, read back with `core show events`:

- a phone (SIPp) registers: PeerStatus Registered with the address it came from;
- a qualified phone answers OPTIONS (PeerStatus Reachable with its latency),
  then goes away: PeerStatus Unreachable, once;
- trunks register with providers played by SIPp (uas_registrar.xml): the one
  with the right secret gets 200 (Registry Registered), the register=yes peer
  with a wrong secret gets 403 (Registry Rejected, cause 403 Forbidden);
- a blind transfer (REFER to 1003) ends with Transfer kind=blind ok=yes, and
  one to a missing extension with ok=no result=404;
- per-call events (ChannelCreated, DialplanStep, ...) are not in the list.

The transfers need app_dial (skipped, and said so, when it is not built)."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (SECRETS, Phone, append_file, edits, endpoint_options, free_port,  # noqa: E402
                     link_pcaps, phones_context, sipp, sipp_call, sipp_result, sipp_uas, use_port)

HAVE_DIAL = not MODULE_DIR or os.path.exists(os.path.join(MODULE_DIR, "app_dial.so"))

port, good_port, bad_port, b_port, b2_port = (free_port() for _ in range(5))

BAD_TRUNK = f"""
[badtrunk]
type = peer
host = 127.0.0.1
port = {bad_port}
defaultuser = acct42
secret = Wrong-Secret-9876
context = default
register = yes
"""

DIALPLAN = f"""
[evtest]
exten => b,1,Dial(SIP/b@127.0.0.1:{b_port},20)
 same => n,Hangup()
exten => b2,1,Dial(SIP/b@127.0.0.1:{b2_port},20)
 same => n,Hangup()
exten => 1003,1,Verbose(1,EVTEST transferred here)
 same => n,Wait(1)
 same => n,Hangup()
"""


def events(t):
    return t.rx("core show events 256")[1]


def lines(t, pattern):
    return [line for line in events(t).splitlines() if re.search(pattern, line)]


def shown(t, pattern, timeout=10):
    return t.wait_for(lambda: lines(t, pattern), timeout=timeout, interval=0.2)


# The providers: 401, then 200 for the right secret and 403 for a wrong one.
procs = [sipp_uas("uas_registrar", p, timeout=60) for p in (good_port, bad_port)]
# Scripted SIPp phones must not be qualified (an OPTIONS would break their
# scripts): only 1002, the Python phone that answers OPTIONS, is.
conf = edits(use_port(port, autoban_failures=100, registertimeout="20s", qualify="no",
                      register=f"acct42:Trunk-Secret-1234@127.0.0.1:{good_port}/5550100"),
             endpoint_options("1002", qualify=1000), phones_context("evtest"),
             append_file("sip.conf", BAD_TRUNK), append_file("extensions.conf", DIALPLAN))
t = Tandem(edit=conf)
try:
    with t:
        link_pcaps(t.dir)
        TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
        status, out = t.rx("core show events 256")
        check(status == 0 and re.search(TS + r"ModuleChanged module=chan_sip loaded=yes$", out, re.M) is not None,
              "core show events: the modules loaded at start, with a UTC time:\n" + out[-1500:])
        status, out = t.rx("core show events 3")
        check(status == 0 and len(re.findall(TS, out, re.M)) == 3 and "3 events shown" in out,
              "core show events 3: the last three:\n" + out)

        # --- a phone registers ----------------------------------------------
        p1 = free_port()
        rc, out = sipp("register", port, "1001", local_port=p1, cwd=t.dir)
        check(rc == 0, "1001 registers (SIPp)" + ("" if rc == 0 else ":\n" + out))
        check(shown(t, rf"PeerStatus tech=SIP peer=1001 status=Registered address=127\.0\.0\.1:{p1} latency_ms=-1$"),
              "PeerStatus Registered for 1001 with the address it registered from:\n" + events(t)[-2000:])

        # --- qualify: reachable, then unreachable, each once ------------------
        phone = Phone("1002", SECRETS["1002"], port)
        check(phone.register() == 200, "1002 (answers OPTIONS) registers")
        check(shown(t, rf"PeerStatus tech=SIP peer=1002 status=Registered address=127\.0\.0\.1:{phone.port} "),
              "PeerStatus Registered for 1002")
        reach = r"PeerStatus tech=SIP peer=1002 status=Reachable address=sip:1002@10\.255\.255\.1:5999 latency_ms=\d+$"
        check(shown(t, reach, timeout=10), "qualify: PeerStatus Reachable with its latency:\n" + events(t)[-2000:])
        t.rx("sip qualify 1002")  # answered again: no new event
        phone.close()
        t.rx("sip qualify 1002")
        unreach = r"PeerStatus tech=SIP peer=1002 status=Unreachable address=sip:1002@10\.255\.255\.1:5999 " \
                  r"latency_ms=-1$"
        check(shown(t, unreach, timeout=10), "the phone stops answering: PeerStatus Unreachable:\n" + events(t)[-2000:])
        t.rx("sip qualify 1002")
        check(len(lines(t, reach)) == 1 and len(lines(t, unreach)) == 1,
              "one event per change, not one per OPTIONS:\n" + "\n".join(lines(t, "peer=1002")))

        # --- trunks: 200 and 403 ----------------------------------------------
        check(shown(t, r'Registry tech=SIP peer="" domain=127\.0\.0\.1 username=acct42 status=Registered cause=""$'),
              "the provider answers 200: Registry Registered:\n" + events(t)[-2000:])
        rejected = r'Registry tech=SIP peer=badtrunk domain=127\.0\.0\.1 username=acct42 status=Rejected ' \
                   r'cause="403 Forbidden"$'
        check(shown(t, rejected), "the provider answers 403: Registry Rejected with its cause:\n" + events(t)[-2000:])
        check(len(lines(t, r"Registry .*status=Registered")) == 1 and len(lines(t, r"Registry .*Rejected")) == 1,
              "each registration's change is published once")

        # --- transfers ------------------------------------------------------------
        if not HAVE_DIAL:
            print("skipped the transfers: app_dial is not built")
        else:
            me = f"127.0.0.1:{port}"
            b = sipp_uas("xfer_uas_talk", b_port, cwd=t.dir, timeout=40)
            procs.append(b)
            rc, out = sipp_call("xfer_refer", port, "b", hold_ms=1000, timeout=30, cwd=t.dir,
                                refer_to=f"sip:1003@{me}")
            check(rc == 0, "A calls B and transfers it to 1003 (REFER, 202, NOTIFY 200)"
                  + ("" if rc == 0 else ":\n" + out[-3000:]))
            blind = (r"Transfer kind=blind channel=SIP/1001-\S+ uniqueid=\S+ target_channel=\"\" context=evtest "
                     r"exten=1003 ok=yes result=200$")
            check(shown(t, blind), "Transfer kind=blind ok=yes with where B went:\n" + events(t)[-2000:])
            check(t.wait_for(lambda: "EVTEST transferred here" in t.log(), timeout=5), "B runs 1003")
            rc, out = sipp_result(b)
            check(rc == 0, "B: answered, transferred, BYE at the end" + ("" if rc == 0 else ":\n" + out[-3000:]))

            b = sipp_uas("xfer_uas_talk", b2_port, cwd=t.dir, timeout=40)
            procs.append(b)
            rc, out = sipp_call("xfer_refer", port, "b2", hold_ms=1000, timeout=30, cwd=t.dir,
                                refer_to=f"sip:9999@{me}")
            check(rc == 0, "a REFER to 9999 is answered (202, NOTIFY 404)" + ("" if rc == 0 else ":\n" + out[-3000:]))
            check(shown(t, r"Transfer kind=blind channel=SIP/1001-\S+ .*exten=9999 ok=no result=404$"),
                  "Transfer kind=blind ok=no result=404:\n" + events(t)[-2000:])
            rc, out = sipp_result(b)
            check(rc == 0, "B gets its BYE when A hangs up" + ("" if rc == 0 else ":\n" + out[-3000:]))
            check(t.wait_for(lambda: t.channel_count() == 0, timeout=10), "no channel left")

        # --- per-call events are not kept -----------------------------------------
        out = events(t)
        check(not re.search(r" (ChannelCreated|ChannelStateChanged|DialplanStep|VariableSet|ChannelHangup) ", out),
              "per-call events are not in the list")
        status, _ = t.rx("core show events nonsense")
        check(status != 0, "core show events with a bad count: usage")

        rc = t.stop()
        check(rc == 0, f"the PBX stops cleanly (exit {rc})")
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()

finish()
