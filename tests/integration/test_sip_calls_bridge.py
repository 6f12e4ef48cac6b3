"""chan_sip end to end through Dial: SIPp as 1002 registers and answers, SIPp
as 1001 calls it through Tandem (the sample [phones] context:
`Dial(SIP/${EXTEN},30)`); audio from the
caller (a PCMA recording) reaches the callee, whose echo comes back, through
both RTP sessions; then BYE. Needs app_dial (skipped, and said so, when the
module is not built)."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import HERE, SIPP, append_file, edits, free_port, link_pcaps, sipp, sipp_call, use_port  # noqa: E402

if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, "app_dial.so")):
    print("skipped: app_dial is not built")
    finish()

DIALPLAN = """
[bridgetest]
; 1001 -> 1002 goes through the sample [phones] context: Dial(SIP/${EXTEN},30).
include => phones
exten => short1002,1,Dial(SIP/1002,2)
 same => n,Verbose(1,BRIDGETEST dial status ${DIALSTATUS})
 same => n,Hangup(NOANSWER)
"""


def bridge_context(conf_dir):
    path = os.path.join(conf_dir, "sip.conf")
    with open(path) as f:
        text = f.read()
    text = re.sub(r"(?m)^context = phones .*$", "context = bridgetest", text)
    # The answering SIPp follows a script: an OPTIONS from qualify would break it.
    text = re.sub(r"(?m)^qualify = yes$", "qualify = no", text)
    text = text.replace('description = Back office', 'description = Back office\ndtmfmode = info')
    with open(path, "w") as f:
        f.write(text)


def sessions(t):
    """RTP sessions by name: (sent, received)."""
    _, out = t.rx("rtp show sessions")
    found = {}
    for line in out.splitlines():
        m = re.match(r"(SIP/\S+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
        if m:
            found.setdefault(m.group(1), []).append((int(m.group(3)), int(m.group(4))))
    return found


port = free_port()
t = Tandem(edit=edits(use_port(port, autoban_failures=100), bridge_context, append_file("extensions.conf", DIALPLAN)))
with t:
    link_pcaps(t.dir)
    # 1002 registers from the port its answering SIPp will listen on.
    uas_port = free_port()
    rc, out = sipp("register", port, "1002", local_port=uas_port, cwd=t.dir)
    check(rc == 0, "1002 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    uas = subprocess.Popen([SIPP, "-sf", os.path.join(HERE, "uas_answer.xml"),
                            "-i", "127.0.0.1", "-p", str(uas_port), "-mp", str(free_port()), "-rtp_echo",
                            "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=t.dir)
    time.sleep(0.3)
    caller = sipp_call("invite_pcap", port, "1002", hold_ms=3000, timeout=20,
                       cwd=t.dir, background=True)
    both = t.wait_for(lambda: re.search(r"SIP/1001-\S+\s+\S+\s+in\s+Up\s+alaw", t.rx("sip show channels")[1])
                      and re.search(r"SIP/1002-\S+\s+\S+\s+out\s+Up\s+alaw", t.rx("sip show channels")[1]),
                      timeout=10)
    check(both, "sip show channels: the caller's leg (in) and the callee's leg (out), both up in alaw:\n"
          + t.rx("sip show channels")[1])

    def flowing():
        s = sessions(t)
        legs = [v for k, v in s.items() if k.startswith("SIP/1001")] + [v for k, v in s.items()
                                                                          if k.startswith("SIP/1002")]
        return len(legs) == 2 and all(any(sent > 10 and recv > 10 for sent, recv in v) for v in legs)

    check(t.wait_for(flowing, timeout=5), "RTP flows both ways on both legs:\n" + t.rx("rtp show sessions")[1])
    out, _ = caller.communicate(timeout=40)
    check(caller.returncode == 0, "the caller: challenged, answered by 1002 through Tandem, BYE"
          + ("" if caller.returncode == 0 else ":\n" + out[-3000:]))
    out, _ = uas.communicate(timeout=40)
    check(uas.returncode == 0, "the callee: INVITE with SDP, 180, 200, ACK, BYE from Tandem"
          + ("" if uas.returncode == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")
    check(t.wait_for(lambda: "0 active SIP channels (0 dialogs)" in t.rx("sip show channels")[1], timeout=5),
          "no SIP dialog left")

    # --- Dial's timeout cancels the ringing callee -----------------------------
    uas = subprocess.Popen([SIPP, "-sf", os.path.join(HERE, "uas_ring.xml"), "-i", "127.0.0.1", "-p", str(uas_port),
                            "-mp", str(free_port()), "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=t.dir)
    time.sleep(0.3)
    rc, out = sipp_call("invite_unavailable", port, "short1002", timeout=20, cwd=t.dir)
    check(rc == 0, "Dial(SIP/1002,2) unanswered, then Hangup(NOANSWER): the caller gets 180 then 480"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    out, _ = uas.communicate(timeout=40)
    check(uas.returncode == 0, "the ringing callee is cancelled when Dial times out (CANCEL, 487, ACK)"
          + ("" if uas.returncode == 0 else ":\n" + out[-3000:]))
    check("BRIDGETEST dial status NOANSWER" in t.log(), "DIALSTATUS is NOANSWER")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the timeout")

    # --- DTMF by SIP INFO from the caller reaches a dtmfmode=info callee -----
    uas = subprocess.Popen([SIPP, "-sf", os.path.join(HERE, "uas_info.xml"), "-i", "127.0.0.1", "-p", str(uas_port),
                            "-mp", str(free_port()), "-m", "1", "-timeout", "30s", "-timeout_error", "-nostdin"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=t.dir)
    time.sleep(0.3)
    rc, out = sipp_call("invite_info", port, "1002", hold_ms=1500, timeout=20, cwd=t.dir)
    check(rc == 0, "the caller sends digit 5 as SIP INFO" + ("" if rc == 0 else ":\n" + out[-3000:]))
    out, _ = uas.communicate(timeout=40)
    check(uas.returncode == 0, "the callee (dtmfmode=info) gets it as SIP INFO Signal=5"
          + ("" if uas.returncode == 0 else ":\n" + out[-3000:]))
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the INFO call")

    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly (exit {rc})")

finish()
