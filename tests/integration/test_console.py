"""The console: `tandem -r` with commands piped in, and live log lines."""
import subprocess

from harness import BIN, Tandem, check, finish

t = Tandem()
with t:
    r = subprocess.run([BIN, "-C", t.conf, "-r"], input="core show version\nhelp dialplan\nquit\n",
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, f"console exits cleanly on quit (exit {r.returncode})")
    check("Tandem" in r.stdout and "dialplan trace" in r.stdout, "console runs piped commands")
    # Log lines reach an attached console at its verbosity (-v: debug).
    r = subprocess.run([BIN, "-C", t.conf, "-r", "-v"],
                       input="dialplan trace 100@demo 1001\n",
                       capture_output=True, text=True, timeout=30)
    check("Welcome to Tandem Demo" in r.stdout, "log lines stream to the console (Verbose output)")
    check(t.proc.poll() is None, "the PBX keeps running after consoles leave")
finish()
