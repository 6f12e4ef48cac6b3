"""chan_sip registrar with real SIP peers (SIPp) on loopback: digest
registration, wrong and unknown credentials, several contacts, unregister,
423, OPTIONS, qualify, debug logging, reload (good and broken), persistence
across a restart, and `tandem -t` on a weak secret."""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import BIN, Tandem, check, finish  # noqa: E402
from siptest import SECRETS, Phone, UdpPeer, free_port, request, sipp, status_of, use_port  # noqa: E402


def registrations(t):
    _, out = t.rx("sip show registrations")
    return out


port = free_port()
# The failures this test provokes on purpose must not ban 127.0.0.1 (test_sip_security.py tests the ban).
t = Tandem(edit=use_port(port, autoban_failures=100))
with t:
    status, out = t.rx("module show like chan_sip")
    check(status == 0 and "chan_sip" in out, "chan_sip is loaded")
    check(f"listening for SIP on 127.0.0.1:{port}" in t.log(), "listening on the test's port")

    # --- register with digest authentication -----------------------------
    p1 = free_port()
    rc, out = sipp("register", port, "1001", local_port=p1, cwd=t.dir)
    check(rc == 0, "1001 registers with digest authentication (401, then 200)" + ("" if rc == 0 else ":\n" + out))
    regs = registrations(t)
    check(re.search(rf"1001\s+sip:1001@127\.0\.0\.1:{p1};transport=UDP\s+\d+\s+127\.0\.0\.1:{p1}\s+udp\s+SIPp 1001", regs)
          is not None, "sip show registrations: contact, expiry, source address, transport, user agent")

    # --- wrong password and unknown user: the same 403 -------------------
    rc, out = sipp("register_forbidden", port, "1001", password="wrong-password-123", cwd=t.dir)
    check(rc == 0, "wrong password: 403 after the challenge" + ("" if rc == 0 else ":\n" + out))
    rc, out = sipp("register_forbidden", port, "7777", password="whatever-password", cwd=t.dir)
    check(rc == 0, "unknown user: the same 403" + ("" if rc == 0 else ":\n" + out))
    # Byte for byte: the two rejections differ only in per-request fields.
    peer = UdpPeer()
    rejections = []
    for user in ("1001", "7777"):
        peer.send(request("REGISTER", port, user=user, local_port=peer.port), port)
        challenge = peer.answers(1.0)
        nonce = re.search(r'nonce="([^"]+)"', challenge[0]).group(1) if challenge else ""
        auth = (f'Authorization: Digest username="{user}", realm="tandem", nonce="{nonce}", '
                f'uri="sip:127.0.0.1:{port}", response="00000000000000000000000000000000", algorithm=MD5')
        peer.send(request("REGISTER", port, user=user, local_port=peer.port, extra_headers=auth, cseq=2), port)
        got = peer.answers(1.0)
        rejections.append(got[0] if got else "")
    strip = lambda m: sorted(l.split(":")[0] for l in m.split("\r\n") if l)  # noqa: E731
    check(status_of(rejections[0]) == 403 and status_of(rejections[1]) == 403
          and strip(rejections[0]) == strip(rejections[1]),
          "wrong password and unknown user: same status, same headers")
    check("7777" not in registrations(t), "nothing registered for the unknown user")
    peer.close()

    # --- a second contact for 1001: both kept ----------------------------
    p2 = free_port()
    rc, out = sipp("register", port, "1001", local_port=p2, contact_user="1001-desk", cwd=t.dir)
    check(rc == 0, "1001 registers a second contact")
    regs = registrations(t)
    check(f"127.0.0.1:{p1}" in regs and f"127.0.0.1:{p2}" in regs and "2 registered contacts" in regs,
          "sip show registrations lists both contacts of 1001")
    status, out = t.rx("sip show endpoint 1001")
    check(status == 0 and "Contacts        : 2" in out and "Reception desk" in out and "<set>" in out,
          "sip show endpoint 1001 shows the contacts and hides the secret")
    check("Tandem-1001" not in out, "the secret itself is never printed")

    # --- unregister one contact (Expires: 0) -----------------------------
    rc, out = sipp("register", port, "1001", local_port=p2, contact_user="1001-desk", expires=0, cwd=t.dir)
    check(rc == 0, "unregister with Expires: 0 is accepted")
    regs = registrations(t)
    check(f"127.0.0.1:{p2}" not in regs and f"127.0.0.1:{p1}" in regs, "only that contact is gone")

    # --- too short an expiry: 423 -----------------------------------------
    rc, out = sipp("register_too_brief", port, "1002", expires=30, cwd=t.dir)
    check(rc == 0, "Expires below minexpiry gets 423 Interval Too Brief" + ("" if rc == 0 else ":\n" + out))
    check("1002" not in registrations(t), "nothing registered by the refused request")

    # --- TCP --------------------------------------------------------------
    rc, out = sipp("register", port, "1002", transport="t1", cwd=t.dir)
    check(rc == 0, "1002 registers over TCP" + ("" if rc == 0 else ":\n" + out))
    check(re.search(r"1002\s+\S+transport=TCP\s+\d+\s+\S+\s+tcp", registrations(t)) is not None,
          "the TCP registration is listed with its transport")

    # --- OPTIONS answered -------------------------------------------------
    rc, out = sipp("options", port, "monitor", cwd=t.dir)
    check(rc == 0, "OPTIONS from SIPp answered with 200" + ("" if rc == 0 else ":\n" + out))
    rc, out = sipp("options", port, "monitor", transport="t1", cwd=t.dir)
    check(rc == 0, "and over TCP" + ("" if rc == 0 else ":\n" + out))
    peer = UdpPeer()
    peer.send(request("OPTIONS", port, local_port=peer.port), port)
    got = peer.answers(1.0)
    check(got and status_of(got[0]) == 200 and "Allow:" in got[0], "OPTIONS answered with 200 and Allow")
    peer.close()

    # --- qualify, and NAT: OPTIONS go where the REGISTER came from --------
    phone = Phone("1002", SECRETS["1002"], port)
    check(phone.register() == 200, "a phone behind a (pretend) NAT registers; its Contact is unreachable")
    check(f"127.0.0.1:{phone.port}" in registrations(t), "its source address is recorded")
    status, out = t.rx("sip qualify 1002")
    check(status == 0 and re.search(r"1002 sip:1002@10\.255\.255\.1:5999: reachable \(\d+ ms\)", out) is not None,
          "sip qualify 1002: reachable through the source address (nat=force_rport)" + ("" if status == 0 else out))
    check("sip:1002@10.255.255.1:5999" in phone.options, "the OPTIONS carried the contact as its Request-URI")
    check(t.wait_for(lambda: "1002 (sip:1002@10.255.255.1:5999) is reachable" in t.log(), timeout=5),
          "the change to reachable is logged")
    status, out = t.rx("sip show endpoints")
    check(re.search(r"1002\s+.*OK \(\d+ ms\)", out) is not None, "sip show endpoints shows the qualify status")
    phone.close()
    status, out = t.rx("sip qualify 1002")
    check(status != 0 and "10.255.255.1:5999: unreachable" in out, "once the phone is gone it is unreachable")
    check(t.wait_for(lambda: "1002 (sip:1002@10.255.255.1:5999) is UNREACHABLE" in t.log(), timeout=5),
          "the change to unreachable is logged")

    # --- debug logging ----------------------------------------------------
    status, out = t.rx("sip set debug on")
    check(status == 0 and "enabled" in out, "sip set debug on")
    peer = UdpPeer()
    marker = "debug-marker-" + str(os.getpid())
    peer.send(request("OPTIONS", port, local_port=peer.port, call_id=marker), port)
    peer.answers(0.5)
    check(t.wait_for(lambda: f"recv" in t.log() and marker in t.log() and "SIP/2.0 200 OK" in t.log(), timeout=5),
          "with debug on, the request in and the answer out are logged")
    t.rx("sip set debug off")
    marker2 = "quiet-marker-" + str(os.getpid())
    peer.send(request("OPTIONS", port, local_port=peer.port, call_id=marker2), port)
    peer.answers(0.5)
    time.sleep(0.3)
    check(marker2 not in t.log(), "with debug off, messages are not logged")
    peer.close()

    # --- reload keeps registrations; a broken file keeps the old settings -
    status, out = t.rx("module reload chan_sip")
    check(status == 0, "module reload chan_sip")
    check(f"127.0.0.1:{p1}" in registrations(t), "registrations survive a reload")
    conf = os.path.join(t.conf, "sip.conf")
    with open(conf) as f:
        good = f.read()
    with open(conf, "a") as f:
        f.write("\n[1003]\nsecret = short\n")
    bad_line = good.count("\n") + 3
    status, out = t.rx("module reload chan_sip")
    check(status != 0 and "keeping the running settings" in out, "a broken sip.conf is refused on reload")
    check(f"sip.conf:{bad_line}:" in t.log(), f"the problem is logged as sip.conf:{bad_line}")
    status, out = t.rx("core reload")
    check(status != 0, "core reload reports the broken sip.conf")
    check(f"127.0.0.1:{p1}" in registrations(t), "registrations survive the refused reload")
    rc, out = sipp("register", port, "1002", cwd=t.dir)
    check(rc == 0, "the running settings still authenticate")
    status, out = t.rx("sip show endpoint 1003")
    check(status != 0, "the broken endpoint was not taken in")
    with open(conf, "w") as f:
        f.write(good.replace('description = Back office', 'description = Back office, reloaded'))
    status, out = t.rx("module reload chan_sip")
    status, out = t.rx("sip show endpoint 1002")
    check("Back office, reloaded" in out, "a fixed sip.conf reloads")

    # --- unload stops the SIP thread and frees the port; load restores ----
    status, out = t.rx("module unload chan_sip")
    check(status == 0, "module unload chan_sip")
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
        freed = True
    except OSError:
        freed = False
    u.close()
    check(freed, "the SIP port is free once chan_sip is unloaded")
    status, out = t.rx("sip show registrations")
    check(status == 127, "its commands are gone")
    status, out = t.rx("module load chan_sip")
    check(status == 0, "module load chan_sip")
    check(f"127.0.0.1:{p1}" in registrations(t), "registrations are restored from the store")
    rc, out = sipp("register", port, "1001", cwd=t.dir)
    check(rc == 0, "and phones register again")
    # Sofia-SIP's library destructor deletes a thread key it never created
    # (key 0, the allocator's): the library must stay loaded across unloads.
    check("<jemalloc>" not in t.log(), "the allocator has nothing to say after the unload and load:\n"
          + "\n".join(l for l in t.log().splitlines() if "<jemalloc>" in l)[:500])

    # --- registrations survive a restart ----------------------------------
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly with chan_sip loaded (exit {rc})")
    t.start()
    regs = registrations(t)
    check(re.search(rf"1001\s+sip:1001@127\.0\.0\.1:{p1};transport=UDP\s+\d+\s+127\.0\.0\.1:{p1}", regs) is not None,
          "after a restart the registration is back, with its source address")
    check("restored" in t.log() and "registration" in t.log(), "the restore is logged")
    status, out = t.rx("database show SIP/Registry")
    check(status == 0 and "/SIP/Registry/1001/" in out, "registrations live in the SIP/Registry family")

# --- tandem -t fails on a weak secret, naming sip.conf:LINE ---------------
t = Tandem(edit=use_port(free_port()))
conf = os.path.join(t.conf, "sip.conf")
with open(conf) as f:
    lines = f.read().split("\n")
idx = next(i for i, l in enumerate(lines) if l.startswith("secret = Tandem-1002"))
lines[idx] = "secret = tooshort"
with open(conf, "w") as f:
    f.write("\n".join(lines))
r = subprocess.run([BIN, "-t", "-C", t.conf], capture_output=True, text=True, timeout=60)
check(r.returncode != 0, "tandem -t fails on a secret shorter than 12 characters")
check(f"sip.conf:{idx + 1}:" in r.stdout and "too short" in r.stdout,
      f"the problem names sip.conf:{idx + 1}: {r.stdout.strip().splitlines()[:3]}")
t.cleanup()
finish()
