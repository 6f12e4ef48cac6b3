"""chan_sip over TLS: a self-signed certificate made with openssl, a phone
that registers over TLS (digest challenge, 200, its binding shown as tls), a
TLS-only endpoint refused over UDP (403), a call to the TLS contact sent down
the same TLS connection, and `tandem -t` naming the line of a missing
certificate."""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import BIN, Tandem, check, finish  # noqa: E402
from siptest import (Phone, StreamPhone, append_file, edits, free_port, request, self_signed_cert,  # noqa: E402
                     use_port)

SECRET = "Tandem-1003-Over-TLS!"
ENDPOINT = f"""
[1003]
type = friend
host = dynamic
secret = {SECRET}
context = phones
transport = tls
"""


certdir = tempfile.mkdtemp(prefix="tandem-tls-test-")
cert, key = self_signed_cert(certdir)
port, tls_port = free_port(), free_port()
conf = edits(use_port(port, tlsenable="yes", tlsbindport=tls_port, tlscertfile=cert, tlsprivatekey=key),
             append_file("sip.conf", ENDPOINT))
t = Tandem(edit=conf)
phone = None
with t:
    check("tls on port" in t.log(), "the listener announces TLS")
    phone = StreamPhone(tls_port, tls=True)
    check(phone.sock.version() is not None, f"TLS handshake with tlsbindport ({phone.sock.version()})")
    status = phone.register("1003", SECRET, tls_port)
    check(status == 200, f"1003 registers over TLS: {status}")
    _, out = t.rx("sip show registrations")
    check(re.search(r"1003\s.*tls", out) is not None, "the binding of 1003 is over tls:\n" + out)

    # A TLS-only endpoint may not register over UDP, even with the right password.
    udp = Phone("1003", SECRET, port, contact="sip:1003@127.0.0.1:5999")
    status = udp.register()
    udp.close()
    check(status == 403, f"1003 over UDP is refused: {status}")

    # A call to 1003 goes down its TLS connection.
    proc = subprocess.Popen([BIN, "-C", t.conf, "-rx", "channel originate SIP/1003 application Wait 1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    invite = phone.read(wait=5)
    check(invite.startswith("INVITE ") and "SIP/2.0/TLS" in invite, "INVITE arrives over TLS:\n" + invite[:400])
    if invite.startswith("INVITE "):
        head = invite.split("\r\n\r\n")[0].split("\r\n")
        keep = [l for l in head[1:] if l.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
        keep = [l + ";tag=busy" if l.lower().startswith("to:") and "tag=" not in l else l for l in keep]
        phone.send("SIP/2.0 486 Busy Here\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n")
        ack = phone.read(wait=3)
        check(ack.startswith("ACK "), "the 486 is acknowledged over TLS")
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    phone.close()
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=10), "no channel left")

    # Closed TLS connections give their memory back: Sofia-SIP's own
    # tls_free() left each one's SSL object behind (about 54 KiB), which
    # anyone able to connect could repeat without authenticating
    # (sofia_tls_free.cpp). Under a sanitizer build the leak check at exit
    # says the same.
    def heap_kib():
        m = re.search(r"Heap in use:\s+(\d+) KiB", t.rx("core show memory")[1])
        return int(m.group(1)) if m else None

    def connect_and_leave(n):
        for _ in range(n):
            c = StreamPhone(tls_port, tls=True)
            c.send(request("OPTIONS", tls_port, local_port=c.local).decode().replace("SIP/2.0/UDP", "SIP/2.0/TLS"))
            c.read(wait=3)
            c.close()

    connect_and_leave(20)
    time.sleep(1)
    before = heap_kib()
    connect_and_leave(200)
    check(t.wait_for(lambda: "0 active" in t.rx("core show channels")[1], timeout=5), "the PBX answers")
    time.sleep(1)
    after = heap_kib()
    if before is not None and after is not None:
        check(after - before < 2048, f"200 TLS connections opened and closed: heap {before} -> {after} KiB "
              "(about 10 MiB more when each kept its SSL object)")
    check(t.proc.poll() is None, "the PBX is running")

# tandem -t names the line of a certificate it cannot read.
t = Tandem(edit=conf)
sip_conf = os.path.join(t.conf, "sip.conf")
with open(sip_conf) as f:
    lines = f.read().split("\n")
idx = next(i for i, l in enumerate(lines) if l.startswith("tlscertfile"))
lines[idx] = "tlscertfile = /nonexistent/cert.pem"
with open(sip_conf, "w") as f:
    f.write("\n".join(lines))
r = subprocess.run([BIN, "-t", "-C", t.conf], capture_output=True, text=True, timeout=60)
check(r.returncode != 0, "tandem -t fails on a missing certificate")
check(f"sip.conf:{idx + 1}:" in r.stdout and "/nonexistent/cert.pem" in r.stdout,
      f"the problem names sip.conf:{idx + 1}: {r.stdout.strip().splitlines()[:3]}")
t.cleanup()
subprocess.run(["rm", "-rf", certdir], check=False)
finish()
