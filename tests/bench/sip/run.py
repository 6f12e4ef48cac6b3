#!/usr/bin/env python3
"""SIP benchmark: SIPp UAC -> Tandem -> SIPp UAS on 127.0.0.1.

Prints figures; it is not a pass/fail test (the machines are shared and
noisy). Two parts:

  rate   short calls without media, the rate ramped step by step (each step
         about --step-seconds long) until a step has >= 0.1 % failed calls or
         the call generator falls behind; once with an IP-trusted caller
         (insecure=invite) and once with a digest-authenticated one.
  media  N concurrent long calls, PCMU both ways (caller and callee
         each stream a generated PCMU recording with SIPp's rtp_stream);
         Tandem's CPU per relayed call-second, RSS per call, threads, and
         packets lost, counted from `rtp show sessions`.

Usage:
  tests/bench/sip/run.py [--build DIR] [--part rate|media|all]
                         [--rates 100,200,...] [--calls 100,500,1000,2000]
                         [--auth no|yes|both] [--step-seconds 10] [--hold-ms 500]
                         [--media-seconds 30] [--window 10] [--setup-rate 400] [--repeat N]

Every process it starts is stopped; every step is bounded in time.

Environment, for profiling:
  BENCH_TANDEM_PRELOAD=lib.so   preload a library into Tandem only (another allocator, say)
  BENCH_TANDEM_WRAP="cmd args"  run Tandem under a wrapper (the CPU figures are then the wrapper's)
  BENCH_PAUSE=S                 media: wait S seconds after Tandem starts (time to attach heaptrack -p)
  BENCH_KEEP=1                  keep the work directories (SIPp's error logs, Tandem's output)
  BENCH_SIP_GENERAL="k=v;k=v"   more [general] options for Tandem's sip.conf (overloadqueue=0, say)
"""
import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SIPP = shutil.which("sipp")
# Signalling transport, from --transport: "udp", or "tcp" (SIPp opens one
# connection per call, so Tandem's TCP accept path and its connection guard
# are part of the figures; media stays RTP over UDP).
TRANSPORT = "udp"
CLK = os.sysconf("SC_CLK_TCK")
SECRET = "Bench-caller-Loopback!"
RTP_START, RTP_END = 10000, 60000


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1, outside Tandem's RTP range."""
    import socket
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            if RTP_START <= port <= RTP_END + 1:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def raise_fd_limit():
    """SIPp and Tandem inherit this: 2 000 relayed calls need ~8 000 sockets in Tandem."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cpu_seconds(pid):
    """utime + stime of every thread of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def thread_cpu(pid):
    """CPU seconds of each thread of a process, by thread id: (name, seconds)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / CLK)
    return out


def busiest(before, after, seconds, n=3):
    """The n threads that used the most CPU between two thread_cpu() samples, as text."""
    used = sorted(((after[t][1] - before.get(t, (0, 0))[1], after[t][0]) for t in after), reverse=True)[:n]
    return " ".join(f"{name}:{100 * cpu / seconds:.0f}%" for cpu, name in used)


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def load():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def write_pcmu(path, seconds):
    """Raw mu-law for SIPp's rtp_stream (a quiet square wave); returns the
    number of 20 ms packets it makes."""
    with open(path, "wb") as f:
        f.write(bytes((0xFF if (i // 4) % 2 else 0x7F) for i in range(8000 * seconds)))
    return seconds * 50


class Pbx:
    """A tandem process with a generated configuration: two IP-trusted peers
    (`uac` calls in, `uas` is called), one digest user (`caller`), every call
    to any number goes Dial(SIP/uas/${EXTEN})."""

    def __init__(self, build, uac_port, uas_port, trust_uac=True):
        # Over TCP the UAC's source ports are ephemeral: its peer is then
        # matched by address only (insecure=port), unless the run is about
        # digest callers from the same address (trust_uac=False).
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="tandem-sipbench-")
        self.conf = os.path.join(self.dir, "etc")
        shutil.copytree(os.path.join(SRC, "configs"), self.conf)
        self.port = free_port()
        d = self.dir
        self._write("tandem.conf", f"""[options]
verbose = error
loops = 0
workers = 4
maxcalls = 0
logfile =
[directories]
modules => {os.path.abspath(os.path.join(build, 'lib', 'tandem', 'modules'))}
run => {d}/run
spool => {d}/spool
db => {d}/lib
log => {d}/log
""")
        self._write("modules.conf", """[modules]
autoload = no
load => codec_g711
load => chan_sip
load => app_dial
require => chan_sip
require => app_dial
""")
        self._write("rtp.conf", f"""[general]
rtpstart = {RTP_START}
rtpend = {RTP_END}
bindaddr = 127.0.0.1
strictrtp = yes
probation = 4
rtcpinterval = 5000
jbenable = no
""")
        extra_general = "\n".join(x.strip() for x in os.environ.get("BENCH_SIP_GENERAL", "").split(";") if x.strip())
        self._write("sip.conf", f"""[general]
bindaddr = 127.0.0.1
bindport = {self.port}
transport = {"udp,tcp" if TRANSPORT == "tcp" else "udp"}
context = bench
realm = tandem
alwaysauthreject = yes
autoban = no
nat = no
dtmfmode = rfc4733
disallow = all
allow = ulaw
{extra_general}

[uac]
type = peer
host = 127.0.0.1
port = {uac_port}
insecure = {"port,invite" if TRANSPORT == "tcp" and trust_uac else "invite"}
context = bench
qualify = no

[uas]
type = peer
host = 127.0.0.1
port = {uas_port}
transport = {TRANSPORT}
context = bench
qualify = no

[caller]
type = friend
host = dynamic
secret = {SECRET}
context = bench
qualify = no
""")
        self._write("extensions.conf", """[bench]
exten => _X.,1,Dial(SIP/uas/${EXTEN})
 same => n,Hangup()
""")
        self.proc = None

    def _write(self, name, text):
        with open(os.path.join(self.conf, name), "w") as f:
            f.write(text)

    def start(self):
        self.log = open(os.path.join(self.dir, "stdout.log"), "w")
        env = dict(os.environ)
        if os.environ.get("BENCH_TANDEM_PRELOAD"):
            env["LD_PRELOAD"] = os.environ["BENCH_TANDEM_PRELOAD"]
        wrap = os.environ.get("BENCH_TANDEM_WRAP", "").split()
        self.proc = subprocess.Popen(wrap + [os.path.join(self.build, "bin", "tandem"), "-f", "-C", self.conf],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tandem exited at start:\n" + self.text())
            if os.path.exists(os.path.join(self.dir, "run", "tandem.ctl")) and self.rx("core show version")[0] == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("tandem did not come up:\n" + self.text())

    def text(self):
        with open(os.path.join(self.dir, "stdout.log"), errors="replace") as f:
            return f.read()

    def rx(self, command, timeout=60):
        r = subprocess.run([os.path.join(self.build, "bin", "tandem"), "-C", self.conf, "-rx", command],
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def refused(self):
        """New calls and registrations the overload guard refused since start (`sip show status`)."""
        try:
            m = re.search(r"Refused \(overload\):\s*(\d+)", self.rx("sip show status", timeout=20)[1])
        except subprocess.TimeoutExpired:
            return 0
        return int(m.group(1)) if m else 0

    def channels(self):
        try:
            m = re.search(r"(\d+) active channel", self.rx("core show channels count", timeout=20)[1])
        except subprocess.TimeoutExpired:
            return -1
        return int(m.group(1)) if m else -1

    def memory(self):
        """`core show memory` as {line name: bytes}, empty on a time-out."""
        try:
            out = self.rx("core show memory", timeout=20)[1]
        except subprocess.TimeoutExpired:
            return {}
        return {m.group(1): int(m.group(2)) * 1024 for m in re.finditer(r"^\s*([A-Za-z ()]+):\s+(\d+) KiB", out, re.M)}

    def heap(self):
        """Bytes the allocator has handed out (`core show memory`), or None."""
        return self.memory().get("Heap in use")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# SIPp's own sockets get the receive buffer Tandem's SIP socket has (its
# default, 128 KiB, overflows from about 2 400 calls/s: the phones then lose
# Tandem's answers and ACKs, and those calls fail on the phones' side). The
# kernel caps it at net.core.rmem_max, printed in the header.
SIPP_BUFFER = 4 << 20


def sipp_cmd(scenario, *args):
    mode = {"udp": "u1", "tcp": "tn"}[TRANSPORT]
    # SIPp refuses (over TCP) more sockets than the open files limit allows.
    sockets = min(60000, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 100)
    return [SIPP, "-sf", os.path.join(HERE, scenario), "-i", "127.0.0.1", "-t", mode, "-nostdin",
            "-max_socket", str(sockets), "-buff_size", str(SIPP_BUFFER), *args]


def stop_proc(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGUSR1)  # SIPp: stop at once, write the final statistics
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def read_stats(path):
    """The lines of a SIPp -trace_stat file (one per second), as dicts."""
    with open(path) as f:
        lines = [l.rstrip("\n;") for l in f if l.strip()]
    head = lines[0].split(";")
    return [dict(zip(head, l.split(";"))) for l in lines[1:]]


def last_stats(path):
    """The last line of a SIPp -trace_stat file, as a dict."""
    return read_stats(path)[-1]


def placing_rate(rows):
    """Calls per second SIPp placed while it was still placing them, from the
    once-a-second samples of its -trace_stat file (read_stats); None when too
    short to say. (Over the step's wall time it would fall whenever calls
    fail: their time-outs keep SIPp running after the last one is placed.)"""
    samples = []
    for row in rows:
        try:
            h, m, sec = (int(x) for x in row["ElapsedTime(C)"].split(":")[:3])
            samples.append((h * 3600 + m * 60 + sec, int(row["OutgoingCall(C)"])))
        except (KeyError, ValueError):
            continue
    if not samples:
        return None
    total = samples[-1][1]
    placing = [(t, n) for t, n in samples if t > 0 and n < total]
    return placing[-1][1] / placing[-1][0] if placing else None


def start_uas(work, uas_port, media=False):
    args = ["-p", str(uas_port), "-mp", str(free_port())]
    out = open(os.path.join(work, "uas.log"), "w")
    p = subprocess.Popen(sipp_cmd("uas_media.xml" if media else "uas.xml", *args), stdout=out,
                         stderr=subprocess.STDOUT, cwd=work)
    time.sleep(0.5)
    return p


def rate_step(pbx, work, uac_port, rate, seconds, hold_ms, auth):
    """One step of the ramp: rate*seconds calls at `rate`; returns figures."""
    total = int(rate * seconds)
    stat = os.path.join(work, f"rate-{rate}-{'auth' if auth else 'plain'}.csv")
    # The digest caller sends from another port than the trusted peer's, so that Tandem challenges it.
    local_port = free_port() if auth else uac_port
    args = [f"127.0.0.1:{pbx.port}", "-s", "2000", "-p", str(local_port), "-mp", str(free_port()),
            "-r", str(rate), "-rp", "1000", "-m", str(total), "-d", str(hold_ms),
            "-recv_timeout", "8000", "-timeout", f"{int(seconds * 3 + 30)}s",
            "-trace_stat", "-stf", stat, "-fd", "1", "-trace_err"]
    if auth:
        args += ["-au", "caller", "-ap", SECRET]
    refused_before = pbx.refused()
    before_t, before_c, before_th = time.time(), cpu_seconds(pbx.proc.pid), thread_cpu(pbx.proc.pid)
    load_before = load()
    out = open(os.path.join(work, "uac.log"), "w")
    p = subprocess.Popen(sipp_cmd("uac_auth.xml" if auth else "uac.xml", *args), stdout=out,
                         stderr=subprocess.STDOUT, cwd=work)
    sipp_cpu = 0.0
    try:
        while p.poll() is None:
            try:
                sipp_cpu = cpu_seconds(p.pid)
            except OSError:
                pass
            time.sleep(0.2)
    finally:
        stop_proc(p)
    wall = time.time() - before_t
    tandem_cpu = cpu_seconds(pbx.proc.pid) - before_c
    after_th = thread_cpu(pbx.proc.pid)
    threads = busiest(before_th, after_th, wall)
    sofia = sum(c for n, c in after_th.values() if n == "sofia-sip") - sum(
        c for n, c in before_th.values() if n == "sofia-sip")
    rows = read_stats(stat)
    s = rows[-1]
    ok, failed = int(s.get("SuccessfulCall(C)", 0)), int(s.get("FailedCall(C)", 0))
    created = int(s.get("OutgoingCall(C)", 0))
    # The generator kept up when it placed calls within ~10 % of the rate asked; without
    # samples, over the wall time less the last calls' hold and hang-up.
    refused = pbx.refused() - refused_before
    achieved = placing_rate(rows)
    if achieved is None:
        achieved = created / max(wall - hold_ms / 1000 - 0.3, 0.001)
    return {"rate": rate, "calls": total, "created": created, "ok": ok, "failed": failed,
            "fail_pct": 100.0 * (failed + (total - ok - failed)) / total, "achieved": achieved, "refused": refused,
            "wall": wall, "tandem_cpu_pct": 100 * tandem_cpu / wall, "sipp_cpu_pct": 100 * sipp_cpu / wall,
            "load": load_before, "threads": threads,
            "ms_per_call": 1000 * tandem_cpu / max(total, 1), "sofia_ms_per_call": 1000 * sofia / max(total, 1)}


def run_rate(args, auth):
    work = tempfile.mkdtemp(prefix="sipbench-")
    uac_port, uas_port = free_port(), free_port()
    pbx = Pbx(args.build, uac_port, uas_port, trust_uac=not auth).start()
    uas = start_uas(work, uas_port)
    label = "digest auth" if auth else "no auth (insecure=invite)"
    print(f"\n== call rate, {label}: {args.step_seconds} s per step, hold {args.hold_ms} ms, no media")
    print(f"{'rate/s':>7} {'calls':>6} {'ok':>6} {'failed':>6} {'503':>6} {'fail %':>7} {'placed/s':>8} "
          f"{'tandem CPU':>10} {'ms/call':>7} {'sofia':>7} {'UAC CPU':>8} {'load':>5}  busiest Tandem threads")
    print("   tandem CPU: share of one core over the step; ms/call: Tandem's CPU per call placed, "
          "sofia: the part of it on the Sofia-SIP thread; 503: of the failed, those the overload guard refused")
    best = None
    try:
        for rate in args.rates:
            r = rate_step(pbx, work, uac_port, rate, args.step_seconds, args.hold_ms, auth)
            print(f"{r['rate']:>7} {r['calls']:>6} {r['ok']:>6} {r['failed']:>6} {r['refused']:>6} {r['fail_pct']:>6.2f}% "
                  f"{r['achieved']:>8.0f} {r['tandem_cpu_pct']:>9.0f}% {r['ms_per_call']:>7.2f} "
                  f"{r['sofia_ms_per_call']:>7.2f} "
                  f"{r['sipp_cpu_pct']:>7.0f}% {r['load']:>5.1f}  "
                  f"{r['threads']}",
                  flush=True)
            kept_up = r["achieved"] >= 0.9 * rate
            if r["fail_pct"] >= 0.1 or not kept_up:
                why = "failures" if r["fail_pct"] >= 0.1 else "calls placed slower than asked"
                print(f"   stop: {why}")
                break
            best = rate
            # Let the last calls' dialogs and Tandem's channels go before the next step.
            pbx_wait_idle(pbx, 15)
        if pbx.channels() > 0:
            print(f"   note: {pbx.channels()} channels still up at the end")
        if TRANSPORT == "tcp":
            # Connections the guard closed for want of authentication (tcpauthtimeout,
            # tcpauthlimit): none of a load generator's should be.
            m = re.search(r"Closed unauthenticated: (\d+)", pbx.rx("sip show status")[1])
            print(f"   TCP connections closed by the connection guard: {m.group(1) if m else '?'}")
        if args.linger > 0 and pbx.proc.poll() is None:
            # The SIP stack keeps each finished transaction for 64*T1 (32 s)
            # to absorb retransmissions: memory after the ramp is mostly that,
            # and must go back once they expire (anything left is a leak).
            def mem():
                heap = pbx.heap()
                return (f"RSS {status(pbx.proc.pid)['VmRSS'] / 1024:.0f} MiB, "
                        f"heap {heap / 2**20:.0f} MiB" if heap is not None else
                        f"RSS {status(pbx.proc.pid)['VmRSS'] / 1024:.0f} MiB")
            print(f"   memory at the end of the ramp: {mem()}", flush=True)
            time.sleep(args.linger)
            print(f"   memory {args.linger:.0f} s later: {mem()}")
    finally:
        stop_proc(uas)
        if pbx.proc.poll() is not None:
            print(f"   tandem exited ({pbx.proc.returncode}):\n" + pbx.text()[-3000:])
        pbx.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    print(f"   highest rate with < 0.1 % failed calls, {label}: {best if best else 'none'} calls/s")
    return best


def pbx_wait_idle(pbx, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and pbx.channels() != 0:
        time.sleep(0.3)


def rtp_totals(pbx):
    """Sums of (sent, received) over the caller legs (SIP/uac) and the callee legs (SIP/uas)."""
    _, out = pbx.rx("rtp show sessions", timeout=120)
    tot = {"uac": [0, 0, 0], "uas": [0, 0, 0]}
    for line in out.splitlines():
        m = re.match(r"SIP/(uac|uas)\S*\s+\d+\s+(\d+)\s+(\d+)", line)
        if m:
            t = tot[m.group(1)]
            t[0] += int(m.group(2))
            t[1] += int(m.group(3))
            t[2] += 1
    return tot


def media_point(args, calls):
    work = tempfile.mkdtemp(prefix="sipbench-")
    packets = write_pcmu(os.path.join(work, "pcmu.ulaw"), args.media_seconds)
    uac_port, uas_port = free_port(), free_port()
    pbx = Pbx(args.build, uac_port, uas_port).start()
    uas = start_uas(work, uas_port, media=True)
    time.sleep(float(os.environ.get("BENCH_PAUSE", "0")))  # time to attach a profiler to Tandem
    rate = min(args.setup_rate, calls)
    setup = calls / rate
    # Every call plays its recording once and then holds: the calls are all up
    # some time after `setup` (later on a loaded machine); measure a window
    # while every recording still plays, count packets once they have all
    # ended, before the first BYE.
    slack = 2 * setup + 10
    hold_ms = int((setup + slack + args.media_seconds + 5) * 1000)
    base = status(pbx.proc.pid)
    base_mem = pbx.memory()
    base_heap = base_mem.get("Heap in use")
    stat = os.path.join(work, "media.csv")
    uac = subprocess.Popen(sipp_cmd("uac_media.xml", f"127.0.0.1:{pbx.port}", "-s", "2000", "-p", str(uac_port),
                                    "-mp", str(free_port()), "-r", str(rate), "-rp", "1000", "-m", str(calls),
                                    "-l", str(calls), "-d", str(hold_ms), "-recv_timeout", "10000",
                                    "-timeout", f"{int(hold_ms / 1000 + setup + 60)}s",
                                    "-trace_stat", "-stf", stat, "-fd", "1"),
                           stdout=open(os.path.join(work, "uac.log"), "w"), stderr=subprocess.STDOUT, cwd=work)
    t0 = time.time()
    res = {"calls": calls}
    try:
        up = 0
        while time.time() < t0 + setup + slack and uac.poll() is None:
            up = pbx.channels()
            if up >= 2 * calls:
                break
            time.sleep(0.5)
        t_up = time.time()
        res["setup_s"] = t_up - t0
        setup_rss, setup_heap = status(pbx.proc.pid)["VmRSS"], pbx.heap()
        window = min(args.window, t0 + args.media_seconds - 1 - t_up)
        if up < 2 * calls:
            res["note"] = f"only {max(up, 0) // 2} of {calls} calls up after {t_up - t0:.0f} s"
        if window < 2:
            res["note"] = res.get("note", "") + f" calls took {t_up - t0:.1f} s to set up: no window left"
            raise TimeoutError
        if args.settle > 0:
            # Past the transactions' lifetime (64*T1 = 32 s after the 2xx): what a long call keeps.
            time.sleep(args.settle)
            window = min(args.window, t0 + args.media_seconds - 1 - time.time())
            if window < 2:
                res["note"] = f"no window left after --settle {args.settle}: raise --media-seconds"
                raise TimeoutError
        th0 = thread_cpu(pbx.proc.pid)
        w0, c0, u0, s0, l0 = time.time(), cpu_seconds(pbx.proc.pid), cpu_seconds(uac.pid), cpu_seconds(uas.pid), load()
        time.sleep(window)
        w1, c1, u1, s1 = time.time(), cpu_seconds(pbx.proc.pid), cpu_seconds(uac.pid), cpu_seconds(uas.pid)
        st = status(pbx.proc.pid)
        mem = pbx.memory()
        heap = mem.get("Heap in use")
        res["busiest"] = busiest(th0, thread_cpu(pbx.proc.pid), w1 - w0)
        live = max(up, 0) // 2
        # After the last recording has ended, before the first BYE.
        time.sleep(max(t_up + args.media_seconds + 1.5 - time.time(), 0))
        tot = rtp_totals(pbx)
        dt = w1 - w0
        res.update({
            "up": live, "window": dt, "load": l0,
            "cpu_ms_per_call_s": 1000 * (c1 - c0) / (live * dt) if live else float("nan"),
            "tandem_pct": 100 * (c1 - c0) / dt, "uac_pct": 100 * (u1 - u0) / dt, "uas_pct": 100 * (s1 - s0) / dt,
            "rss_kib_per_call": (st["VmRSS"] - base["VmRSS"]) / live if live else float("nan"),
            "setup_rss_kib_per_call": (setup_rss - base["VmRSS"]) / live if live else float("nan"),
            "heap_kib_per_call": (heap - base_heap) / 1024 / live if live and heap and base_heap else float("nan"),
            "setup_heap_kib_per_call": ((setup_heap - base_heap) / 1024 / live
                                        if live and setup_heap and base_heap else float("nan")),
            # The allocator's view of a held call: objects, the pages they sit in, bookkeeping, resident.
            "held_mem": {k: (mem[k] - base_mem[k]) / 1024 / live for k in mem
                         if k in base_mem and k != "Process resident (RSS)"} if live else {},
            "threads_idle": base["Threads"], "threads": st["Threads"],
            "expected": tot["uac"][2] * packets, "expected_b": tot["uas"][2] * packets, "tot": tot,
        })
        uac.wait(timeout=hold_ms / 1000 + setup + 90)
    except (subprocess.TimeoutExpired, TimeoutError):
        res.setdefault("note", "caller SIPp did not finish in time")
    finally:
        stop_proc(uac)
        stop_proc(uas)
        try:
            s = last_stats(stat)
            res["ok"], res["failed"] = int(s.get("SuccessfulCall(C)", 0)), int(s.get("FailedCall(C)", 0))
        except (OSError, IndexError):
            res["ok"] = res["failed"] = -1
        if pbx.proc.poll() is not None:
            res["note"] = f"tandem exited ({pbx.proc.returncode}): " + pbx.text()[-2000:]
        pbx.stop()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return res


def run_media(args):
    print(f"\n== relayed media: PCMU both ways ({args.media_seconds} s stream per call from each side), "
          f"calls set up at {args.setup_rate}/s")
    print("   lost in = packets the phones sent (both ways) that Tandem did not receive; relay = received on one "
          "leg, not sent on the other")
    print("   RSS and heap per call: growth over the idle process, divided by the calls up; 'at set-up' as "
          "soon as every call is up, 'held' in the measuring window (after --settle)")
    print(f"{'calls':>6} {'up':>5} {'CPU ms/call-s':>13} {'tandem':>7} {'UAC':>5} {'UAS':>5} "
          f"{'RSS KiB/call set-up/held':>24} {'heap KiB/call set-up/held':>25} "
          f"{'threads':>9} {'lost in':>9} {'relay':>7} {'lost %':>7} {'failed':>6} {'setup':>6} {'load':>5}  busiest")
    out = []
    for calls in args.calls:
        for _ in range(args.repeat):
            r = media_point(args, calls)
            out.append(r)
            if "tot" not in r:
                print(f"{calls:>6}  no figures: {r.get('note', '')}")
                continue
            a, b = r["tot"]["uac"], r["tot"]["uas"]
            lost_in = (r["expected"] - a[1]) + (r["expected_b"] - b[1])
            relay = (a[1] - b[0]) + (b[1] - a[0])
            print(f"{calls:>6} {r['up']:>5} {r['cpu_ms_per_call_s']:>13.3f} {r['tandem_pct']:>6.0f}% "
                  f"{r['uac_pct']:>4.0f}% {r['uas_pct']:>4.0f}% "
                  f"{r['setup_rss_kib_per_call']:>15.1f} / {r['rss_kib_per_call']:<6.1f} "
                  f"{r['setup_heap_kib_per_call']:>16.1f} / {r['heap_kib_per_call']:<6.1f} "
                  f"{r['threads_idle']:>4}->{r['threads']:<4} {lost_in:>9} {relay:>7} "
                  f"{100 * (lost_in + relay) / max(r['expected'] + r['expected_b'], 1):>6.2f}% "
                  f"{r['failed']:>6} {r['setup_s']:>5.1f}s {r['load']:>5.1f}  {r['busiest']}"
                  + (f"  {r['note']}" if "note" in r else ""), flush=True)
            if r.get("held_mem"):
                print("       held, KiB per call: " + ", ".join(f"{k.lower()} {v:.1f}" for k, v in r["held_mem"].items()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--settle", type=float, default=35,
                    help="media: seconds to wait once the calls are up before measuring (40: past the "
                         "set-up transactions' lifetime)")
    ap.add_argument("--part", choices=["rate", "media", "all"], default="all")
    ap.add_argument("--auth", choices=["no", "yes", "both"], default="both")
    ap.add_argument("--rates", default="100,200,400,600,800,1200,1600,2400,3200")
    ap.add_argument("--step-seconds", type=float, default=10)
    ap.add_argument("--hold-ms", type=int, default=500)
    ap.add_argument("--linger", type=float, default=0,
                    help="rate: wait this long after the ramp and print Tandem's memory before and after")
    ap.add_argument("--calls", default="100,500,1000,2000")
    ap.add_argument("--media-seconds", type=int, default=60)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--setup-rate", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp",
                    help="SIP signalling transport (tcp: one connection per call from the UAC)")
    args = ap.parse_args()
    global TRANSPORT
    TRANSPORT = args.transport
    args.rates = [int(x) for x in args.rates.split(",")]
    args.calls = [int(x) for x in args.calls.split(",")]
    if not SIPP:
        print("sipp is not installed: nothing measured")
        return 0
    soft, hard = raise_fd_limit()
    print(f"SIP benchmark over {TRANSPORT.upper()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, "
          f"load {load():.1f}, open files limit {soft}, RTP ports {RTP_START}-{RTP_END} "
          f"({(RTP_END - RTP_START) // 2} sessions)")
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            rmem_max = int(f.read())
    except (OSError, ValueError):
        rmem_max = 0
    print(f"SIPp's socket buffers: {min(SIPP_BUFFER, rmem_max or SIPP_BUFFER) // 1024} KiB "
          f"(asked {SIPP_BUFFER // 1024}, net.core.rmem_max {rmem_max // 1024} KiB)")
    if args.part in ("rate", "all"):
        if args.auth in ("no", "both"):
            run_rate(args, auth=False)
        if args.auth in ("yes", "both"):
            run_rate(args, auth=True)
    if args.part in ("media", "all"):
        run_media(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
