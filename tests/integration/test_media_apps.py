"""Media files and applications through a real tandem: a Local call where one
half plays Milliwatt() and the other Record()s it, checked with sox; prompts
played with Playback(); the file formats listed on the CLI."""
import os
import re
import shutil
import subprocess
import time

from harness import Tandem, check, finish

DIALPLAN = """
[media-test]
exten => mw,1,Milliwatt()
exten => play,1,Answer()
 same => n,Playback(hello&digits/1)
 same => n,Set(PLAYED=${PLAYBACKSTATUS})
 same => n,Hangup()
exten => rec,1,Answer()
 same => n,Record(trace-%d.wav,0,1,q)
 same => n,Set(RECSTATUS=${RECORD_STATUS})
"""


def add_dialplan(conf):
    with open(os.path.join(conf, "extensions.conf"), "a") as f:
        f.write(DIALPLAN)


t = Tandem(edit=add_dialplan)
with t:
    status, out = t.rx("core show file formats")
    check(status == 0 and re.search(r"^wav\s+wav\s+slin8\s+yes\s+yes\s+format_sndfile", out, re.M),
          "core show file formats lists wav from format_sndfile")
    check(re.search(r"^gsm\s+gsm\s+gsm\s", out, re.M) and re.search(r"^mp3\s+mp3\s+slin48\s+yes", out, re.M),
          "raw gsm and mp3 registered")

    # Record (on ;1, from originate) what Milliwatt (on ;2) sends through the Local pair.
    wav = t.path("spool", "mw.wav")
    status, out = t.rx(f"channel originate Local/mw@media-test application Record {wav},0,2,q")
    check(status == 0, "originate Local/mw@media-test into Record")
    check(t.wait_for(lambda: os.path.exists(wav), timeout=15), "the recording appears under its final name")
    check(t.wait_for(lambda: t.channel_count() == 0, timeout=10), "the call ends")
    check(not os.path.exists(wav + ".tmp"), "no temporary file is left")
    if shutil.which("sox") and os.path.exists(wav):
        info = subprocess.run(["sox", "--i", wav], capture_output=True, text=True).stdout
        check("Sample Rate    : 8000" in info and "Channels       : 1" in info, "8 kHz mono WAV")
        m = re.search(r"Duration\s+:\s+(\d+):(\d+):([\d.]+)", info)
        dur = float(m.group(3)) if m else 0
        check(1.8 <= dur <= 2.2, f"about 2 s recorded ({dur} s)")
        stat = subprocess.run(["sox", wav, "-n", "stat"], capture_output=True, text=True).stderr
        rms = re.search(r"RMS\s+amplitude:\s+([\d.]+)", stat)
        freq = re.search(r"Rough\s+frequency:\s+(\d+)", stat)
        check(rms and float(rms.group(1)) > 0.4, f"not silent: a 0 dBm0 tone (RMS {rms.group(1) if rms else '?'})")
        check(freq and 950 <= int(freq.group(1)) <= 1060, f"about 1004 Hz ({freq.group(1) if freq else '?'})")
    else:
        check(False, "sox present to inspect the recording")

    # Prompts from the generated set (the build tree's sounds/), through a trace call.
    prompts = os.path.join(os.environ.get("TANDEM_BUILD_DIR", "build"), "sounds", "en", "hello.wav")
    if os.path.exists(prompts):
        start = time.time()
        status, out = t.rx("dialplan trace play@media-test timeout 20")
        took = time.time() - start
        check("Set PLAYED=SUCCESS" in out, "Playback(hello&digits/1) played the generated prompts")
        check(took >= 0.5, f"at the pace of real time ({took:.1f} s)")
    else:
        print(f"skip: no generated prompts at {prompts}")
    status, out = t.rx("dialplan trace rec@media-test timeout 10")
    check("Set RECSTATUS=" in out, "Record through trace runs")
finish()
