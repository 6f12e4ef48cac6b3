"""In-band DTMF and fax tone detection with real SIP calls (SIPp, PCMA) on
loopback: a caller reaches an IVR that reads 4 digits and routes on them,
with the digits as tones in the audio (dtmfmode=inband, and dtmfmode=auto when
the caller offers no telephone-event) or as RFC 4733 events (auto, negotiated:
tones in the audio are then not listened to); a fax calling tone (CNG) sends
the call to the `fax` extension (faxdetect=cng).

The RTP the callers send is written here as pcap files (A-law audio with the
tones synthesised, RFC 4733 events built by hand) and played by SIPp's
play_pcap_audio."""
import math
import os
import re
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sipp"))

from harness import Tandem, check, finish  # noqa: E402
from siptest import append_file, edits, free_port, sipp_call, use_port  # noqa: E402

SECRETS = {"1007": "Tandem-1007-Loopback!", "1008": "Tandem-1008-Loopback!"}

ENDPOINTS = f"""
[1007](office-phone)
secret = {SECRETS["1007"]}
context = inbandtest
dtmfmode = auto
faxdetect = cng

[1008](office-phone)
secret = {SECRETS["1008"]}
context = inbandtest
dtmfmode = inband
"""

DIALPLAN = """
[inbandtest]
exten => ivr,1,Answer()
 same => n,Read(DIGITS,,4,,,6)
 same => n,Verbose(1,INBAND ${CHANNEL(name)} read '${DIGITS}')
 same => n,Goto(${DIGITS},1)
exten => _XXXX,1,Verbose(1,INBAND routed to ${EXTEN})
 same => n,Hangup()
exten => faxline,1,Answer()
 same => n,Wait(15)
 same => n,Verbose(1,INBAND no fax heard)
 same => n,Hangup()
exten => fax,1,Verbose(1,INBAND fax ${FAXDETECTED} from ${FAXEXTEN})
 same => n,Hangup()
exten => i,1,Verbose(1,INBAND invalid ${INVALID_EXTEN})
 same => n,Hangup()
"""

# --- RTP and pcap -------------------------------------------------------------

RATE = 8000
FRAME = 160  # 20 ms


def alaw(sample):
    """One 16-bit linear sample to G.711 A-law (the segment rules of G.711)."""
    value = sample >> 3
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    ends = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)
    seg = next((i for i, end in enumerate(ends) if value <= end), 8)
    if seg >= 8:
        return 0x7F ^ mask
    code = seg << 4
    code |= (value >> 1) & 0x0F if seg < 2 else (value >> seg) & 0x0F
    return code ^ mask


KEYS = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336),
        "6": (770, 1477), "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209),
        "0": (941, 1336), "#": (941, 1477)}
EVENTS = {d: i for i, d in enumerate("0123456789*#")}


class Audio:
    """Linear samples at 8 kHz, built piece by piece."""

    def __init__(self):
        self.samples = []

    def silence(self, ms):
        self.samples += [0] * (ms * RATE // 1000)
        return self

    def tones(self, freqs, ms, amp=4000):
        start = len(self.samples)
        for i in range(ms * RATE // 1000):
            t = (start + i) / RATE
            self.samples.append(int(sum(amp * math.sin(2 * math.pi * f * t) for f in freqs)))
        return self

    def digits(self, digits, on=100, off=100):
        for d in digits:
            self.tones(KEYS[d], on).silence(off)
        return self


class RtpStream:
    """RTP packets of one stream, with the time each is sent."""

    def __init__(self, ssrc=0x1234ABCD):
        self.packets = []  # (seconds, bytes)
        self.seq, self.ts, self.clock, self.ssrc = 1, 0, 0.0, ssrc

    def _add(self, pt, marker, payload, ts):
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, self.seq & 0xFFFF, ts & 0xFFFFFFFF,
                             self.ssrc)
        self.packets.append((self.clock, header + payload))
        self.seq += 1

    def audio(self, audio):
        s = audio.samples
        for at in range(0, len(s) - FRAME + 1, FRAME):
            self._add(8, False, bytes(alaw(v) for v in s[at:at + FRAME]), self.ts)
            self.ts += FRAME
            self.clock += 0.02
        return self

    def event(self, digit, ms=100):
        """An RFC 4733 event: a packet every 20 ms, the end sent three times."""
        start, steps = self.ts, ms // 20
        for i in range(1, steps + 1):
            end = i == steps
            payload = struct.pack("!BBH", EVENTS[digit], (0x80 if end else 0) | 10, i * FRAME)
            for _ in range(3 if end else 1):
                self._add(101, i == 1, payload, start)
            self.clock += 0.02
        self.ts += steps * FRAME
        return self

    def write_pcap(self, path):
        """Ethernet/IPv4/UDP frames in a classic pcap file, as SIPp reads them."""
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for when, rtp in self.packets:
                udp = struct.pack("!HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes([127, 0, 0, 1]),
                                 bytes([127, 0, 0, 1]))
                ip = ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]
                frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
                sec = int(when)
                f.write(struct.pack("<IIII", sec, int(round((when - sec) * 1e6)), len(frame), len(frame)))
                f.write(frame)


def ip_checksum(header):
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pcap_dir(stream):
    """A working directory for one SIPp call, holding its inband.pcap."""
    d = tempfile.mkdtemp(prefix="tandem-inband-")
    stream.write_pcap(os.path.join(d, "inband.pcap"))
    return d


# --- the calls ---------------------------------------------------------------

def call(scenario, user, exten, stream, timeout=25):
    cwd = pcap_dir(stream)
    started = time.time()
    rc, out = sipp_call(scenario, port, exten, user=user, password=SECRETS[user], cwd=cwd, timeout=timeout)
    return rc, out, time.time() - started


def inband_lines():
    return "\n".join(line for line in t.log().splitlines() if "INBAND" in line)


port = free_port()
t = Tandem(edit=edits(use_port(port), append_file("sip.conf", ENDPOINTS), append_file("extensions.conf", DIALPLAN)))
with t:
    rc, out = t.rx("sip show endpoint 1008")
    check(rc == 0 and re.search(r"inband", out, re.I) is not None,
          "sip show endpoint names dtmfmode=inband" + ("" if rc == 0 else ":\n" + out))

    # --- dtmfmode=inband: the digits are tones in the A-law audio ------------
    audio = Audio().silence(400).digits("1234").silence(600)
    rc, out, took = call("inband_call", "1008", "ivr", RtpStream().audio(audio))
    check(rc == 0, "inband: INVITE with PCMA only answered, audio played, Tandem hangs up"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    ok = re.search(r"INBAND SIP/1008-\S+ read '1234'", t.log()) is not None
    check(ok, "inband: Read() got the four digits heard in the audio, in order" + ("" if ok else ":\n" + inband_lines()))
    check("INBAND routed to 1234" in t.log(), "inband: the call was routed on the digits")
    check(took < 10, f"inband: routed as the digits came, not after Read's timeout ({took:.1f} s)")

    # --- dtmfmode=auto, no telephone-event offered: in-band ------------------
    audio = Audio().silence(400).digits("4321", on=80, off=80).silence(600)
    rc, out, _ = call("inband_call", "1007", "ivr", RtpStream().audio(audio))
    check(rc == 0, "auto without telephone-event: call completed" + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("INBAND routed to 4321" in t.log(),
          "auto without telephone-event: the digits are listened for in the audio (80 ms tones, 80 ms gaps)")

    # --- dtmfmode=auto, telephone-event negotiated: RFC 4733 only ------------
    # Tones of 9 in the audio first: were the audio listened to as well, they
    # would be read before the events' digits.
    stream = RtpStream().audio(Audio().silence(300).digits("99").silence(200))
    for d in "5678":
        stream.event(d)
        stream.audio(Audio().silence(100))
    stream.audio(Audio().silence(600))
    rc, out, _ = call("inband_call_events", "1007", "ivr", stream)
    check(rc == 0, "auto with telephone-event: answered with telephone-event, Tandem hangs up"
          + ("" if rc == 0 else ":\n" + out[-3000:]))
    ok = re.search(r"INBAND SIP/1007-\S+ read '5678'", t.log()) is not None
    check(ok, "auto with telephone-event: the RFC 4733 digits are read, the tones in the audio are not"
          + ("" if ok else ":\n" + inband_lines()))
    check("INBAND routed to 5678" in t.log(), "auto with telephone-event: routed on the RFC 4733 digits")

    # --- faxdetect=cng: a fax machine calling -------------------------------
    audio = Audio().silence(300)
    for _ in range(2):
        audio.tones([1100], 500, amp=6000).silence(3000)
    rc, out, took = call("inband_call", "1007", "faxline", RtpStream().audio(audio))
    check(rc == 0, "fax: call completed" + ("" if rc == 0 else ":\n" + out[-3000:]))
    check("INBAND fax cng from faxline" in t.log(),
          "fax: the calling tone sent the call to the fax extension, FAXDETECTED=cng, FAXEXTEN=faxline")
    check("INBAND no fax heard" not in t.log(), "fax: the Wait() of faxline was interrupted")
    check(took < 10, f"fax: redirected within the first burst, not after Wait(15) ({took:.1f} s)")
    check(re.search(r"fax tone cng detected", t.log()) is not None, "fax: the detection is logged")

    # --- a fax tone on an endpoint without faxdetect changes nothing ---------
    audio = Audio().silence(300).tones([1100], 500, amp=6000).silence(500).digits("2468").silence(500)
    rc, out, _ = call("inband_call", "1008", "ivr", RtpStream().audio(audio))
    check(rc == 0 and "INBAND routed to 2468" in t.log(),
          "no faxdetect: a calling tone does not redirect; the digits after it are read"
          + ("" if rc == 0 else ":\n" + out[-3000:]))

    check(t.wait_for(lambda: t.channel_count() == 0, timeout=5), "no channel left after the calls")
finish()
