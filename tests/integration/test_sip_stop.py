"""chan_sip leaves nothing on the event loops when it goes: a blind transfer
starts timers of 5 s on the transferer's leg (the BYE it may still owe,
RFC 5589) that used to outlive the module and crash the PBX with SIGSEGV
when they ran or were destroyed after its code was unloaded.

(a) a blind transfer (A 1001 calls B through Dial, REFER to 1003), then
    SIGTERM within a second of A's BYE: the PBX stops with exit code 0, no
    signal, and says "stopped";
(b) the same transfer, then `module unload chan_sip` at once: the unload
    succeeds, the PBX outlives the timers (6 s) and stops cleanly.

Needs app_dial (skipped, and said so, when the module is not built)."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (append_file, edits, free_port, link_pcaps, phones_context, sipp_call, sipp_result,  # noqa: E402
                     sipp_uas, use_port)

if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, "app_dial.so")):
    print("skipped: app_dial is not built")
    finish()


def dialplan(b_port):
    return f"""
[stoptest]
exten => b,1,Dial(SIP/b@127.0.0.1:{b_port},20)
 same => n,Hangup()
exten => 1003,1,Verbose(1,STOPTEST transferred here)
 same => n,Answer()
 same => n,Wait(30)
 same => n,Hangup()
"""


def transferred_pbx(name):
    """A PBX in which A has just transferred B to 1003 (blind) and hung up:
    its leg's BYE timer is running. Returns (Tandem, B's SIPp)."""
    port, b_port = free_port(), free_port()
    t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"), phones_context("stoptest"),
                          append_file("extensions.conf", dialplan(b_port))))
    t.start()
    link_pcaps(t.dir)
    b = sipp_uas("xfer_uas_talk", b_port, cwd=t.dir, timeout=40)
    rc, out = sipp_call("xfer_refer", port, "b", hold_ms=1000, timeout=30, cwd=t.dir,
                        refer_to=f"sip:1003@127.0.0.1:{port}")
    check(rc == 0, f"{name}: A calls B and transfers it to 1003 (REFER, 202, NOTIFY 200, BYE)"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: "STOPTEST transferred here" in t.log(), timeout=5), f"{name}: B runs 1003")
    return t, b


def crashed(t, rc):
    return rc is None or rc < 0 or "Segmentation" in t.log() or "Aborted" in t.log()


procs = []
tandems = []
try:
    # --- (a) SIGTERM right after the transfer ---------------------------------
    t, b = transferred_pbx("stop")
    tandems.append(t)
    procs.append(b)
    started = time.time()
    rc = t.stop(sig=signal.SIGTERM)
    check(time.time() - started < 15, f"the stop takes less than 15 s ({time.time() - started:.1f} s)")
    check(rc == 0 and not crashed(t, rc), f"SIGTERM within a second of the transfer: exit code 0 (got {rc})"
          + ("" if rc == 0 else ":\n" + t.log()[-3000:]))
    check("stopped" in t.log(), "the PBX says it stopped")
    sipp_result(b, timeout=10)

    # --- (b) module unload chan_sip right after the transfer ------------------
    t, b = transferred_pbx("unload")
    tandems.append(t)
    procs.append(b)
    t.rx("channel request hangup all")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=10), "unload: no channel left")
    status, out = t.rx("module unload chan_sip")
    check(status == 0, "chan_sip unloads with the transferer's timers running: " + out.strip())
    time.sleep(6)
    check(t.proc.poll() is None, "the PBX outlives the timers chan_sip had started"
          + ("" if t.proc.poll() is None else f" (exit {t.proc.returncode}):\n" + t.log()[-3000:]))
    status, _ = t.rx("core show version")
    check(status == 0, "and still answers its console")
    rc = t.stop()
    check(rc == 0 and not crashed(t, rc), f"then stops cleanly (exit {rc})")
    sipp_result(b, timeout=10)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()
    for t in tandems:
        t.cleanup()

finish()
