"""The PBX starts with the sample configs, answers the console, checks config, stops."""
import os
import re
import subprocess

from harness import BIN, Tandem, check, finish

t = Tandem()
with t:
    status, out = t.rx("core show version")
    check(status == 0 and "Tandem" in out, "core show version answers")
    status, out = t.rx("core show uptime")
    check(status == 0 and "System uptime" in out, "core show uptime")
    status, out = t.rx("core show settings")
    check(status == 0 and t.conf in out, "core show settings shows the config directory")
    status, out = t.rx("module show")
    check("chan_local" in out and "cdr_csv" in out, "module show lists chan_local and cdr_csv")
    status, out = t.rx("module show like cdr")
    check("cdr_csv" in out and "chan_local" not in out, "module show like filters")
    status, out = t.rx("help core show")
    check(status == 0 and "core show channels" in out, "help lists commands by prefix")
    status, out = t.rx("no such thing")
    check(status == 127 and "No such command" in out, "unknown command gives status 127")
    status, out = t.rx("core show application Wait")
    check(status == 0 and "Wait(seconds)" in out, "core show application documents Wait")
    status, out = t.rx("logger set level bogus")
    check(status == 2 and "Usage" in out, "wrong usage prints the usage text and status 2")
    mode = os.stat(t.path("run", "tandem.ctl")).st_mode & 0o777
    check(mode == 0o660, f"control socket mode is 0660 (got {oct(mode)})")
    check(os.path.exists(t.path("run", "tandem.pid")), "pid file written")
    # A second PBX on the same run directory refuses to start.
    r = subprocess.run([BIN, "-f", "-C", t.conf], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "already running" in r.stderr, "a second instance refuses to start")
    rc = t.stop()
    check(rc == 0, f"SIGTERM stops cleanly (exit {rc})")
    check(not os.path.exists(t.path("run", "tandem.ctl")), "socket removed at stop")
    check(not os.path.exists(t.path("run", "tandem.pid")), "pid file removed at stop")
    check(any(" INFO " in l for l in t.log().splitlines()), "with verbose = info the terminal shows INFO lines")

# tandem.conf's verbose decides the terminal's level when -v/-q are not given.
def quiet(conf):
    path = os.path.join(conf, "tandem.conf")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"(?m)^verbose\s*=.*$", "verbose = warning", text))

t = Tandem(edit=quiet)
with t:
    status, out = t.rx("core show settings")
    check("Log level (terminal):" in out and "warning" in out, "core show settings reports verbose = warning")
    status, out = t.rx("core show memory")
    m = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l)}
    check(status == 0 and m.get("Allocator") in ("jemalloc", "glibc", "asan"), f"core show memory names the allocator: {out!r}")
    used = int(m.get("Heap in use", "0 KiB").split()[0])
    rss = int(m.get("Process resident (RSS)", "0 KiB").split()[0])
    check(0 < used < rss, f"heap in use ({used} KiB) is positive and below the RSS ({rss} KiB)")
    t.stop()
    info_lines = [l for l in t.log().splitlines() if " INFO " in l]
    check(not info_lines, f"with verbose = warning no INFO line reaches the terminal: {info_lines[:3]}")

# tandem -t on the sample configuration, then on broken ones.
t = Tandem()
r = subprocess.run([BIN, "-t", "-C", t.conf], capture_output=True, text=True, timeout=60)
check(r.returncode == 0, f"tandem -t accepts the sample configuration: {r.stdout.strip()}")
check(r.stderr == "", f"and writes nothing to stderr: {r.stderr.strip()[:300]}")
with open(os.path.join(t.conf, "extensions.conf"), "a") as f:
    f.write("\n[broken]\nexten => 1,1,NoSuchApp(x)\nexten => 2,one,NoOp()\nthis line is garbage\n")
with open(os.path.join(t.conf, "tandem.conf"), "a") as f:
    f.write("\n[options]\nloops = lots\n")
r = subprocess.run([BIN, "-t", "-C", t.conf], capture_output=True, text=True, timeout=60)
out = r.stdout
check(r.returncode != 0, "tandem -t fails on a broken configuration")
check("extensions.conf:" in out and "unknown application 'NoSuchApp'" in out, "unknown application named with file:line")
check("priority must be a number" in out, "bad priority reported")
check("garbage" in out or "no '='" in out or "=" in out, "garbage line reported")
check("tandem.conf:" in out and "loops" in out, "bad option in tandem.conf reported with file:line")
lines = [l for l in out.splitlines() if l.startswith(os.path.join(t.conf, "extensions.conf") + ":")]
check(len(lines) >= 3, f"each problem on its own file:line line ({len(lines)})")
t.cleanup()

# A missing config directory is an error, not a crash.
r = subprocess.run([BIN, "-t", "-C", "/nonexistent/tandem"], capture_output=True, text=True, timeout=60)
check(r.returncode != 0 and r.returncode < 128, "tandem -t on a missing directory fails cleanly")
r = subprocess.run([BIN, "-C", "/nonexistent/tandem", "-rx", "core show version"], capture_output=True, text=True, timeout=30)
check(r.returncode == 1 and "Unable to connect" in r.stderr, "tandem -rx without a PBX says so")
r = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=30)
check(r.returncode == 0 and r.stdout.startswith("Tandem "), "--version")
finish()
