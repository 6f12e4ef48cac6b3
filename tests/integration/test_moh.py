"""Music on hold with real SIP peers (res_musiconhold).

1. Hold plays music. SIPp as 1002 registers and answers; SIPp as 1001 calls it
   through Tandem (Dial in the sample [phones] context). The audio of both
   phones is sent and received here, on sockets named in their SDP: 1001 sends
   a steady 400 Hz tone in PCMU, and 1002 receives exactly that tone. 1001 then
   puts the call on hold (re-INVITE a=sendonly) and stops sending: 1002 must
   now receive music from Tandem (packets that are neither the tone nor
   silence, decoded and measured here) and never the tone in between. 1001
   resumes (re-INVITE a=sendrecv): the music stops and 1002 gets the tone
   again, with no music mixed in.
2. MusicOnHold(default,3) after Answer(): a SIPp caller receives about 150
   packets of music, then Tandem hangs up.
3. The PBX stops cleanly while music plays (the call is hung up, the player
   ends before the module unloads).

Needs res_musiconhold and app_dial (skipped, and said so, when not built) and
the sample music (<build>/sounds/moh, the moh_sounds target)."""
import math
import os
import re
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import MODULE_DIR, Tandem, check, finish  # noqa: E402
from siptest import (append_file, edits, free_port, phones_context, registered_uas, sipp_call,  # noqa: E402
                     sipp_result, use_port)

for needed in ("res_musiconhold", "app_dial"):
    if MODULE_DIR and not os.path.exists(os.path.join(MODULE_DIR, needed + ".so")):
        print(f"skipped: {needed} is not built")
        finish()

DIALPLAN = """
[mohtest]
include => phones
exten => moh3,1,Answer()
 same => n,MusicOnHold(default,3)
 same => n,Hangup()
exten => mohforever,1,Answer()
 same => n,MusicOnHold()
"""


# --- G.711 mu-law and RTP ------------------------------------------------------

def ulaw_encode(x):
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    exp, mask = 7, 0x4000
    while exp > 0 and not x & mask:
        exp -= 1
        mask >>= 1
    return ~(sign | (exp << 4) | ((x >> (exp + 3)) & 0x0F)) & 0xFF


def ulaw_decode(b):
    b = ~b & 0xFF
    s = ((((b & 0x0F) << 3) + 0x84) << ((b >> 4) & 7)) - 0x84
    return -s if b & 0x80 else s


def rms(payload):
    return math.sqrt(sum(ulaw_decode(b) ** 2 for b in payload) / max(1, len(payload)))


# 400 Hz repeats every 20 samples, so every 20 ms frame of the tone is the same.
TONE = bytes(ulaw_encode(int(6000 * math.sin(2 * math.pi * 400 * i / 8000))) for i in range(160))


class RtpPeer:
    """A phone's audio: a UDP socket that records the PCMU packets it receives
    (arrival time, payload) and can send the tone every 20 ms."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.packets = []
        self.lock = threading.Lock()
        self.send_to = None  # Tandem's RTP port for this phone, once known
        self.sending = False
        self.stop = threading.Event()
        threading.Thread(target=self._receive, daemon=True).start()
        threading.Thread(target=self._send, daemon=True).start()

    def _receive(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            if len(data) < 12 or data[0] >> 6 != 2 or data[1] & 0x7F != 0:
                continue  # not PCMU (telephone-event, RTCP)
            start = 12 + 4 * (data[0] & 0x0F)
            if data[0] & 0x10 and len(data) >= start + 4:
                start += 4 + 4 * struct.unpack("!H", data[start + 2:start + 4])[0]
            with self.lock:
                self.packets.append((time.time(), data[start:]))

    def _send(self):
        seq, ts, ssrc = 1, 0, 0x12345678
        next_at = time.time()
        while not self.stop.is_set():
            if self.sending and self.send_to:
                header = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
                try:
                    self.sock.sendto(header + TONE, ("127.0.0.1", self.send_to))
                except OSError:
                    pass
                seq += 1
            ts += 160
            next_at += 0.02
            time.sleep(max(0.0, next_at - time.time()))

    def received(self):
        with self.lock:
            return list(self.packets)

    def close(self):
        self.stop.set()
        time.sleep(0.15)
        self.sock.close()


def session_ports(t):
    """Tandem's local RTP port of each SIP channel: {channel name: port}."""
    _, out = t.rx("rtp show sessions")
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"(?m)^(SIP/\S+)\s+(\d+)\s+\d+\s+\d+", out)}


def wait(predicate, timeout, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


port = free_port()
# The answering SIPp follows a script: an OPTIONS from qualify would break it.
t = Tandem(edit=edits(use_port(port, autoban_failures=100, qualify="no"), phones_context("mohtest"),
                      append_file("extensions.conf", DIALPLAN)))
with t:
    _, classes = t.rx("moh show classes")
    check(re.search(r"(?m)^default\s+alpha\s+2\s+0\s", classes) is not None,
          "moh show classes: the default class with the two generated pieces:\n" + classes)

    # --- 1. hold plays music to the other party -------------------------------
    a, b = RtpPeer(), RtpPeer()
    rc, out, uas = registered_uas(port, "1002", "moh_uas", cwd=t.dir, timeout=40, rtp_port=b.port)
    check(rc == 0, "1002 registers" + ("" if rc == 0 else ":\n" + out[-2000:]))
    caller = sipp_call("moh_hold", port, "1002", hold_ms=3000, rtp_port=a.port, timeout=30, cwd=t.dir,
                       background=True)

    def both_legs():
        s = session_ports(t)
        legs = {k.split("-")[0]: v for k, v in s.items()}
        if "SIP/1001" in legs and "SIP/1002" in legs:
            a.send_to = legs["SIP/1001"]
            return True
        return False

    check(wait(both_legs, 10, 0.1), "the call is up with an RTP session on each leg:\n" + t.rx("rtp show sessions")[1])
    a.sending = True

    def kinds(packets):
        return ["tone" if p == TONE else "other" for _, p in packets]

    check(wait(lambda: kinds(b.received()).count("tone") >= 25, 5),
          "before the hold 1002 receives 1001's tone (%d packets)" % kinds(b.received()).count("tone"))
    before_hold = len(b.received())

    # Hold: the music starts; the holding phone then stops sending.
    def music_started():
        k = kinds(b.received())
        return len(k) >= 5 and all(x == "other" for x in k[-5:])

    check(wait(music_started, 8), "after the re-INVITE a=sendonly 1002 receives something else than the tone")
    a.sending = False
    hold_seen = time.time()
    first_music = next(i for i, (_, p) in enumerate(b.received()) if p != TONE and i >= before_hold)
    time.sleep(0.5)
    _, classes = t.rx("moh show classes")
    check(re.search(r"(?m)^default\s+alpha\s+2\s+1\s", classes) is not None,
          "moh show classes: one channel plays the default class:\n" + classes)

    # Unhold: the music stops (nothing arrives while 1001 is silent), then the tone flows again.
    def quiet():
        got = b.received()
        return got and time.time() - got[-1][0] > 0.3

    check(wait(quiet, 8), "after the re-INVITE a=sendrecv the music stops")
    unhold_seen = time.time()
    a.sending = True
    check(wait(lambda: sum(1 for at, p in b.received() if at > unhold_seen and p == TONE) >= 25, 5),
          "after the hold 1002 receives 1001's tone again")

    rc, out = sipp_result(caller, timeout=60)
    check(rc == 0, "1001: call, hold (a=recvonly answer), resume (a=sendrecv answer), BYE"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    rc, out = sipp_result(uas, timeout=60)
    check(rc == 0, "1002: answered, no re-INVITE while held, BYE"
          + ("" if rc == 0 else ":\n" + out[-3000:]))

    got = b.received()
    music = [(at, p) for at, p in got[first_music:] if at < unhold_seen]
    tone_in_music = sum(1 for _, p in music if p == TONE)
    loud = sum(1 for _, p in music if rms(p) > 100)
    hold_secs = unhold_seen - got[first_music][0]
    print(f"held for {hold_secs:.2f} s: {len(music)} packets of music, {loud} of them above 100 RMS, "
          f"{tone_in_music} of the tone; median RMS {sorted(rms(p) for _, p in music)[len(music) // 2]:.0f}")
    check(len(music) >= 0.8 * hold_secs * 50, "the music is paced at 50 packets a second while held")
    check(tone_in_music == 0, "no packet of the held phone's tone is interleaved with the music")
    check(loud >= 0.9 * len(music), "the music is not silence (decoded PCMU, RMS per packet)")
    after = [p for at, p in got if at > unhold_seen]
    first_tone = next((i for i, p in enumerate(after) if p == TONE), len(after))
    check(all(p == TONE for p in after[first_tone:]), "after the hold only the tone arrives: no music mixed in")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the hold call")
    _, classes = t.rx("moh show classes")
    check(re.search(r"(?m)^default\s+alpha\s+2\s+0\s", classes) is not None, "no channel plays music any more")
    a.close()
    b.close()

    # --- 2. MusicOnHold(default,3) -----------------------------------------------
    c = RtpPeer()
    started = time.time()
    rc, out = sipp_call("moh_listen", port, "moh3", rtp_port=c.port, timeout=20, cwd=t.dir)
    took = time.time() - started
    check(rc == 0, "a caller to MusicOnHold(default,3): answered, then Tandem's BYE"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    time.sleep(0.2)
    got = c.received()
    loud = sum(1 for _, p in got if rms(p) > 100)
    span = got[-1][0] - got[0][0] if got else 0
    print(f"MusicOnHold(default,3): {len(got)} packets over {span:.2f} s, {loud} above 100 RMS, call {took:.2f} s")
    check(140 <= len(got) <= 160, f"about 150 packets of music ({len(got)})")
    check(2.7 <= span <= 3.3, f"paced over about 3 s ({span:.2f} s)")
    check(loud >= 0.9 * len(got), "the packets carry music, not silence")
    c.close()
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left")

    # --- 3. stopping the PBX while music plays ------------------------------------
    d = RtpPeer()
    listener = sipp_call("moh_listen", port, "mohforever", rtp_port=d.port, timeout=30, cwd=t.dir, background=True)
    check(wait(lambda: len(d.received()) >= 50, 10), "MusicOnHold() without a duration plays")
    rc = t.stop()
    check(rc == 0, f"the PBX stops cleanly while music plays (exit {rc})" + ("" if rc == 0 else ":\n" + t.log()[-3000:]))
    rc, out = sipp_result(listener, timeout=40)
    check(rc == 0, "the listening caller gets Tandem's BYE at the stop"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    d.close()

finish()
