"""Outbound registration (trunks): Tandem registers with a provider played by
SIPp (uas_registrar.xml: 401 with a challenge, then 200 for 60 s), shows it
in `sip show registry`, and unregisters (Expires: 0) when it stops. A
register=yes peer with a wrong secret is refused (403) and shows Rejected
with a retry planned; `sip show trunks` lists both; `tandem -t` names a
malformed register => line."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import BIN, Tandem, check, finish  # noqa: E402
from siptest import HERE, SIPP, Phone, append_file, edits, free_port, use_port, wait_listening  # noqa: E402

good_port, bad_port = free_port(), free_port()
BAD_PEER = f"""
[badtrunk]
type = peer
host = 127.0.0.1
port = {bad_port}
defaultuser = acct42
secret = Wrong-Secret-9876
context = default
register = yes
"""


def registrar(port, timeout=40):
    return subprocess.Popen([SIPP, "-sf", os.path.join(HERE, "uas_registrar.xml"), "-i", "127.0.0.1",
                             "-p", str(port), "-m", "1", "-timeout", f"{timeout}s", "-timeout_error", "-nostdin"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc, what):
    try:
        out, _ = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    check(proc.returncode == 0, what + ("" if proc.returncode == 0 else ":\n" + out[-3000:]))


def add_register_line(line):
    def edit(conf_dir):
        path = os.path.join(conf_dir, "sip.conf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("[general]\n", f"[general]\nregister => {line}\n", 1))
    return edit


def registry(t):
    return t.rx("sip show registry")[1]


# A gateway known by its address, qualified: a socket that answers OPTIONS.
gateway = Phone("gw", "unused-secret-000", 0)
GW_PEER = f"""
[gw]
type = peer
host = 127.0.0.1
port = {gateway.port}
insecure = invite
qualify = yes
context = default
"""

port = free_port()
good = wait_listening(registrar(good_port), good_port)  # Tandem registers at once
bad = wait_listening(registrar(bad_port), bad_port)
conf = edits(use_port(port, registertimeout="20s"),
             add_register_line(f"acct42:Trunk-Secret-1234@127.0.0.1:{good_port}/5550100"),
             append_file("sip.conf", BAD_PEER + GW_PEER))
t = Tandem(edit=conf)
try:
    with t:
        up = t.wait_for(lambda: re.search(rf"127\.0\.0\.1:{good_port}\s+acct42\s+Registered", registry(t)) is not None,
                        timeout=10, interval=0.2)
        out = registry(t)
        check(up, "the register => line is Registered after the 401 challenge:\n" + out)
        m = re.search(rf"127\.0\.0\.1:{good_port}\s+acct42\s+Registered\s+(\d+)", out)
        check(m is not None and 50 <= int(m.group(1)) <= 60, "its expiry is the 60 s the registrar granted")
        rejected = t.wait_for(lambda: re.search(rf"127\.0\.0\.1:{bad_port}\s+acct42\s+Rejected\s+-\s+403, retry in",
                                                registry(t)) is not None, timeout=10, interval=0.2)
        check(rejected, "register=yes with a wrong secret: Rejected (403) with a retry planned:\n" + registry(t))
        check("2 SIP registrations" in registry(t), "sip show registry counts both")
        check("registration acct42@127.0.0.1:%d: Registered" % good_port in t.log(), "the log says it came up")
        status, trunks = t.rx("sip show trunks")
        check(status == 0 and re.search(rf"(?m)^badtrunk\s+127\.0\.0\.1:{bad_port}\s+udp\s+digest\s+Rejected \(403\)"
                                        r"\s+Unmonitored\s+0$", trunks) is not None,
              "sip show trunks: the register=yes peer, its address, transport, rejected registration, calls:\n"
              + trunks)
        check(re.search(rf"(?m)^register acct42\s+127\.0\.0\.1:{good_port}\s+-\s+-\s+Registered \d+ s", trunks)
              is not None, "and the register => line with its registration")
        status, out = t.rx("sip qualify gw")
        check(status == 0 and "reachable" in out, "the gateway answers OPTIONS:\n" + out)
        trunks = t.rx("sip show trunks")[1]
        check(re.search(rf"(?m)^gw\s+127\.0\.0\.1:{gateway.port}\s+udp\s+by address\s+-\s+OK \(\d+ ms\)\s+0$",
                        trunks) is not None, "sip show trunks: the gateway, recognised by address, up:\n" + trunks)
        check("2 SIP trunks [1 up, 0 down, 1 unknown]" in trunks, "and counts them:\n" + trunks)
        gateway.close()
        t.rx("sip qualify gw")
        trunks = t.rx("sip show trunks")[1]
        check(re.search(r"(?m)^gw\s.*UNREACHABLE", trunks) is not None and "[0 up, 1 down, 1 unknown]" in trunks,
              "once it stops answering the gateway is down:\n" + trunks)
    # Stopping Tandem removed the binding: the registrar saw Expires: 0.
    finished(good, "the provider saw REGISTER, the authenticated REGISTER and the un-REGISTER")
finally:
    gateway.close()
    for p in (good, bad):
        if p.poll() is None:
            p.kill()
            p.communicate()

# tandem -t names a malformed register => line.
t = Tandem(edit=conf)
sip_conf = os.path.join(t.conf, "sip.conf")
with open(sip_conf) as f:
    lines = f.read().split("\n")
idx = next(i for i, l in enumerate(lines) if l.startswith("register =>"))
lines[idx] = "register => no-host-here"
with open(sip_conf, "w") as f:
    f.write("\n".join(lines))
r = subprocess.run([BIN, "-t", "-C", t.conf], capture_output=True, text=True, timeout=60)
check(r.returncode != 0 and f"sip.conf:{idx + 1}:" in r.stdout and "register" in r.stdout,
      f"tandem -t names sip.conf:{idx + 1}: {r.stdout.strip().splitlines()[:3]}")
t.cleanup()
finish()
