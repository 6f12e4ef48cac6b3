"""How Tandem reaches trunks: an outbound proxy and TCP.

Three SIPp peers, each writing what it receives to a message trace:
- a provider's registrar over TCP that is reached only through the
  outbound proxy of [general] (`outboundproxy = tcp://...`): the REGISTER of
  a `register => tcp://...` line keeps the registrar's address as its
  Request-URI, carries the loose Route of the proxy and a TCP Contact;
- a trunk whose `outboundproxy=` is a UDP proxy: the INVITE for
  `SIP/provider/5551234` is addressed to the provider's host name (which
  does not resolve) and reaches the proxy with its Route;
- a gateway peer with `transport = tcp` and `outboundproxy =` (reached
  directly): the INVITE arrives over TCP, its URI says ;transport=tcp.
Then failover written in the dialplan as docs/sip.md shows it: a trunk
nobody listens for gives CONGESTION and the call goes to the backup trunk.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import (HERE, SIPP, append_file, edits, free_media_port, free_port, received, sipp_result,  # noqa: E402
                     use_port, wait_listening)

work = tempfile.mkdtemp(prefix="tandem-routes-")
port = free_port()
registrar_port, nobody_port = free_port(), free_port()
proxy_port, tcp_port = free_port(), free_port()
phone_port, backup_port, down_port = free_port(), free_port(), free_port()

PEERS = f"""
[provider]
type = peer
host = sip.provider.example
context = default
outboundproxy = 127.0.0.1:{proxy_port}

[tcpgw]
type = peer
host = 127.0.0.1
port = {tcp_port}
transport = tcp
context = default
outboundproxy =

[phone]
type = peer
host = 127.0.0.1
port = {phone_port}
outboundproxy =

[down]
type = peer
host = 127.0.0.1
port = {down_port}
outboundproxy =

[backup]
type = peer
host = 127.0.0.1
port = {backup_port}
outboundproxy =
"""

FAILOVER = """
[failover]
exten => 777,1,Dial(SIP/down/${EXTEN},10)
 same => n,GotoIf($["${DIALSTATUS}" = "CHANUNAVAIL" | "${DIALSTATUS}" = "CONGESTION"]?backup)
 same => n,Hangup()
 same => n(backup),Dial(SIP/backup/${EXTEN},10)
"""


def peer(scenario, listen_port, transport, name, timeout=40):
    trace = os.path.join(work, name + ".msg")
    proc = subprocess.Popen([SIPP, "-sf", os.path.join(HERE, scenario + ".xml"), "-i", "127.0.0.1",
                             "-p", str(listen_port), "-t", transport, "-mp", str(free_media_port()), "-m", "1",
                             "-timeout", f"{timeout}s", "-timeout_error", "-nostdin",
                             "-trace_msg", "-message_file", trace],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work)
    proc.trace = trace
    return wait_listening(proc, listen_port, "udp" if transport.startswith("u") else "tcp")


def done(proc, what):
    rc, out = sipp_result(proc, timeout=45)
    check(rc == 0, what + ("" if rc == 0 else ":\n" + out[-3000:]))


registrar = peer("uas_registrar", registrar_port, "t1", "registrar")
proxy = peer("uas_answer", proxy_port, "u1", "proxy")
gateway = peer("uas_answer", tcp_port, "t1", "gateway")
conf = edits(use_port(port, transport="udp,tcp", outboundproxy=f"tcp://127.0.0.1:{registrar_port}"),
             append_file("sip.conf", PEERS), append_file("extensions.conf", FAILOVER))


def add_register(conf_dir):
    path = os.path.join(conf_dir, "sip.conf")
    with open(path) as f:
        text = f.read()
    line = f"register => tcp://acct42:Trunk-Secret-1234@127.0.0.1:{nobody_port}/5550100\n"
    with open(path, "w") as f:
        f.write(text.replace("[general]\n", "[general]\n" + line, 1))


t = Tandem(edit=edits(conf, add_register))
try:
    with t:
        up = t.wait_for(lambda: re.search(r"acct42\s+Registered", t.rx("sip show registry")[1]) is not None,
                        timeout=15, interval=0.2)
        check(up, "the register => tcp:// line is Registered through the proxy:\n" + t.rx("sip show registry")[1])
        reg = received(registrar, "REGISTER")
        check(reg.startswith(f"REGISTER sip:127.0.0.1:{nobody_port};transport=tcp SIP/2.0"),
              f"the REGISTER is addressed to the registrar, not to the proxy: {reg.splitlines()[:1]}")
        check(re.search(rf"^Route: <sip:127\.0\.0\.1:{registrar_port};transport=tcp;lr>", reg, re.M) is not None,
              "it carries the proxy as a loose Route:\n" + reg)
        check(re.search(r"^Via: SIP/2\.0/TCP ", reg, re.M) is not None, "it went over TCP")
        check(re.search(r"^Contact: <sip:5550100@[^>]*;transport=tcp", reg, re.M) is not None,
              "its Contact asks for TCP:\n" + reg)

        status, out = t.rx("channel originate SIP/provider/5551234 application Wait 1")
        check(status == 0, "originate SIP/provider/5551234: " + out)
        done(proxy, "the proxy answered the INVITE and saw the BYE")
        inv = received(proxy, "INVITE")
        check(inv.startswith("INVITE sip:5551234@sip.provider.example:5060 SIP/2.0"),
              f"the INVITE keeps the provider's URI: {inv.splitlines()[:1]}")
        check(re.search(rf"^Route: <sip:127\.0\.0\.1:{proxy_port};lr>", inv, re.M) is not None,
              "and reaches the provider's outbound proxy by its Route:\n" + inv)
        ep = t.rx("sip show endpoint provider")[1]
        check(f"<sip:127.0.0.1:{proxy_port};lr>" in ep, "sip show endpoint names the outbound proxy:\n" + ep)

        status, out = t.rx("channel originate SIP/tcpgw/5550000 application Wait 1")
        check(status == 0, "originate SIP/tcpgw/5550000: " + out)
        done(gateway, "the TCP gateway answered and saw the BYE")
        inv = received(gateway, "INVITE")
        check(inv.startswith(f"INVITE sip:5550000@127.0.0.1:{tcp_port};transport=tcp SIP/2.0"),
              f"transport=tcp on the peer: the INVITE's URI says so: {inv.splitlines()[:1]}")
        check(re.search(r"^Via: SIP/2\.0/TCP ", inv, re.M) is not None, "and it came over TCP:\n" + inv)
        check("Route:" not in inv, "outboundproxy= (empty) on the peer: no proxy for it")
        # Failover: [down] has nobody listening (the kernel says so at once).
        phone = peer("uas_answer", phone_port, "u1", "phone")
        backup = peer("uas_answer", backup_port, "u1", "backup")
        status, out = t.rx("channel originate SIP/phone/100 extension 777@failover")
        check(status == 0, "originate into the failover extension: " + out)
        bridged = t.wait_for(lambda: received(backup, "INVITE") != "" and "2 active channel" in
                             t.rx("core show channels count")[1], timeout=15, interval=0.2)
        check(bridged, "the trunk that is down gives CONGESTION and the backup trunk gets the call:\n"
              + received(backup, "INVITE"))
        check(received(backup, "INVITE").startswith(f"INVITE sip:777@127.0.0.1:{backup_port} SIP/2.0"),
              "the backup trunk is called with the same number")
        t.rx("channel request hangup all")
        done(phone, "the phone's call ended with a BYE")
        done(backup, "the backup trunk's call ended with a BYE")
    done(registrar, "the registrar saw REGISTER, the authenticated REGISTER and the un-REGISTER, over TCP")
finally:
    for p in [registrar, proxy, gateway] + [x for x in (globals().get("phone"), globals().get("backup")) if x]:
        if p.poll() is None:
            p.kill()
            p.communicate()
finish()
