"""Local calls: originate, reload while calls wait, hangup, CDRs, graceful stop."""
import os
import signal
import subprocess
import time

from harness import BIN, Tandem, check, finish

t = Tandem()
with t:
    for i in range(20):
        status, out = t.rx("channel originate Local/wait@demo application Wait 60")
        if status != 0:
            break
    check(status == 0 and "Originated Local/wait@demo" in out, "originate Local channels")
    check(t.wait_for(lambda: t.channel_count() == 40), "20 calls = 40 Local halves up")
    status, out = t.rx("core show channels")
    check("wait@demo:2" in out and "Wait(3600)" in out, "channels sit in Wait()")

    ext = os.path.join(t.conf, "extensions.conf")
    with open(ext, "a") as f:
        f.write("\n[reloaded]\nexten => 1,1,NoOp()\n")
    status, out = t.rx("dialplan reload")
    check(status == 0, "dialplan reload while calls wait")
    status, out = t.rx("core reload")
    check(status == 0, "core reload while calls wait")
    time.sleep(0.5)
    check(t.channel_count() == 40, "no call dropped by the reloads")
    t.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    check(t.channel_count() == 40 and "reloaded" in t.log(), "SIGHUP reloads without dropping calls")

    status, out = t.rx("module unload chan_local")
    check(status != 0 and "in use" in out, "chan_local refuses to unload while calls use it")

    status, out = t.rx("channel request hangup all")
    check(status == 0, "hang up all")
    check(t.wait_for(lambda: t.channel_count() == 0), "all channels gone")

    csv = t.path("log", "cdr-csv", "Master.csv")
    check(t.wait_for(lambda: os.path.exists(csv) and len(open(csv).read().splitlines()) >= 40), "40 CDR lines written")
    lines = open(csv).read().splitlines()
    check(all(l.count('"') % 2 == 0 and l.startswith('"') for l in lines), "CDR lines are whole CSV records")
    check(any('"ANSWERED"' in l and '"wait"' in l for l in lines), "CDR has disposition and destination")

    status, out = t.rx("module unload chan_local")
    check(status == 0, "chan_local unloads once idle")
    status, out = t.rx("channel originate Local/wait@demo application Wait 1")
    check(status != 0, "no Local technology after unload")
    status, out = t.rx("module load chan_local")
    check(status == 0, "chan_local loads again")

    # Graceful stop: refuse new calls, wait for the running ones.
    t.rx("channel originate Local/wait@demo application Wait 2")
    check(t.wait_for(lambda: t.channel_count() == 2), "a call is up before the graceful stop")
    status, out = t.rx("core stop gracefully")
    check(status == 0, "core stop gracefully accepted")
    time.sleep(0.2)
    status, out = t.rx("channel originate Local/wait@demo application Wait 1")
    check(status != 0 and "stopping" in out, "new calls refused while stopping")
    try:
        rc = t.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, f"stopped by itself once the call ended (exit {rc})")
    lines = open(csv).read().splitlines()
    check(len(lines) >= 42, f"CDRs of the last call flushed at stop ({len(lines)} lines)")
finish()
