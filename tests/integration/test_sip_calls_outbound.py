"""chan_sip outgoing calls, driven by `channel originate`: SIP/1002 to a
registered SIPp phone (answer, then BYE from Tandem), forking to two contacts
of 1002 (the one that answers wins, the ringing one is cancelled), early
media over 100rel (our PRACK), SRTP to a media_encryption=sdes phone, a busy
phone (486 → USER_BUSY), an endpoint with no contact, and a trunk that
challenges our INVITE (SIP/trunk/5551234, answered with defaultuser/secret)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import HERE, SIPP, append_file, edits, free_port, sipp, use_port, wait_listening  # noqa: E402

trunk_port = free_port()
TRUNK = f"""
[trunk]
type = peer
host = 127.0.0.1
port = {trunk_port}
secret = Trunk-Secret-1234
defaultuser = acct42
fromuser = acct42
context = default

[1003]
type = friend
host = dynamic
secret = Tandem-1003-Loopback!
media_encryption = sdes
"""


def no_qualify(conf_dir):
    # SIPp phones here follow a script: an OPTIONS from qualify would break it.
    path = os.path.join(conf_dir, "sip.conf")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r"(?m)^qualify = yes$", "qualify = no", text))


def uas(scenario, local_port, timeout=20):
    proc = subprocess.Popen([SIPP, "-sf", os.path.join(HERE, scenario + ".xml"), "-i", "127.0.0.1",
                             "-p", str(local_port), "-mp", str(free_port()), "-rtp_echo", "-m", "1",
                             "-timeout", f"{timeout}s", "-timeout_error", "-nostdin"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return wait_listening(proc, local_port)


def finished(proc, what):
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    check(proc.returncode == 0, what + ("" if proc.returncode == 0 else ":\n" + out[-3000:]))


def idle(t):
    return t.channel_count() == 0 and "0 active SIP channels (0 dialogs)" in t.rx("sip show channels")[1]


port = free_port()
t = Tandem(edit=edits(use_port(port, autoban_failures=100), no_qualify, append_file("sip.conf", TRUNK)))
with t:
    # --- an endpoint with no registered contact ---------------------------
    status, out = t.rx("channel originate SIP/1002 application Wait 1")
    check(status != 0 and "SUBSCRIBER_ABSENT" in out, "SIP/1002 without a contact: SUBSCRIBER_ABSENT\n" + out)

    # --- one registered contact answers ------------------------------------
    pa = free_port()
    rc, out = sipp("register", port, "1002", local_port=pa, contact_user="1002a", cwd=t.dir)
    check(rc == 0, "1002 registers a first contact")
    phone = uas("uas_answer", pa)
    status, out = t.rx("channel originate SIP/1002 application Wait 1")
    check(status == 0 and "SIP/1002-" in out, "channel originate SIP/1002: " + out.strip())
    finished(phone, "the phone gets the INVITE with SDP, answers, and Tandem hangs up with BYE")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left")

    # --- two contacts: the first to answer wins, the other is cancelled -----
    pb = free_port()
    rc, out = sipp("register", port, "1002", local_port=pb, contact_user="1002b", cwd=t.dir)
    check(rc == 0, "1002 registers a second contact")
    ringing = uas("uas_ring", pa)
    answering = uas("uas_answer", pb)
    status, out = t.rx("channel originate SIP/1002 application Wait 1")
    check(status == 0, "channel originate SIP/1002 with two contacts")
    finished(answering, "the second contact answers and gets the BYE")
    finished(ringing, "the first contact rang and was cancelled (CANCEL, 487, ACK)")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left after the fork")
    rc, out = sipp("register", port, "1002", local_port=pb, contact_user="1002b", expires=0, cwd=t.dir)
    check(rc == 0, "the second contact unregisters")

    # --- early media over 100rel: the reliable 183 is PRACKed ---------------
    early = uas("uas_100rel", pa)
    status, out = t.rx("channel originate SIP/1002 application Wait 1")
    check(status == 0, "channel originate SIP/1002 to a phone with reliable early media")
    finished(early, "our INVITE supports 100rel; the reliable 183 is PRACKed; 200, ACK, BYE")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left after the 100rel call")

    # --- busy -----------------------------------------------------------------
    rc, out = sipp("register", port, "1002", local_port=pb, contact_user="1002b", expires=0, cwd=t.dir)
    busy = uas("uas_busy", pa)
    status, out = t.rx("channel originate SIP/1002 application Wait 1")
    finished(busy, "a busy phone answers 486")
    check(t.wait_for(lambda: re.search(r"SIP/1002-\S+: call failed: 486 Busy Here \(USER_BUSY\)", t.log())
                     is not None, timeout=5), "486 hangs the channel up with USER_BUSY")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left after the failure")

    # --- SRTP: our offer is RTP/SAVP with a key; the SAVP answer is taken -----
    ps = free_port()
    rc, out = sipp("register", port, "1003", password="Tandem-1003-Loopback!", local_port=ps, cwd=t.dir)
    check(rc == 0, "1003 (media_encryption=sdes) registers")
    srtp = uas("uas_srtp", ps)
    status, out = t.rx("channel originate SIP/1003 application Wait 1")
    check(t.wait_for(lambda: re.search(r"SIP/1003-\S+\s+\S+\s+out\s+Up\s+ulaw", t.rx("sip show channels")[1])
                     is not None, timeout=5), "the SRTP call is up")
    finished(srtp, "the phone got RTP/SAVP with an a=crypto key and answered with its own")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left after the SRTP call")
    plain = uas("uas_answer", ps)
    t.rx("channel originate SIP/1003 application Wait 1")
    finished(plain, "an answer in plain RTP to our SRTP offer is hung up at once (BYE)")
    check(t.wait_for(lambda: re.search(r"SIP/1003-\S+: answered without usable SDP \(SRTP required", t.log())
                     is not None, timeout=5), "and logged as refused for want of SRTP")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left after the refused answer")

    # --- a trunk that challenges: answered with defaultuser and secret -----
    provider = uas("uas_auth", trunk_port)
    status, out = t.rx("channel originate SIP/trunk/5551234 application Wait 1")
    check(status == 0 and "SIP/trunk-" in out, "channel originate SIP/trunk/5551234")
    check(t.wait_for(lambda: re.search(r"SIP/trunk-\S+\s+\S+\s+out\s+Up", t.rx("sip show channels")[1])
                     is not None, timeout=5), "the trunk call is up after the challenge")
    finished(provider, "the provider: 401, INVITE with valid credentials for acct42, 200, ACK, BYE")
    check("trunk" not in "".join(re.findall(r".*call failed.*", t.log())), "the trunk call did not fail")
    check(t.wait_for(lambda: idle(t), timeout=5), "no channel and no dialog left at the end")
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

finish()
