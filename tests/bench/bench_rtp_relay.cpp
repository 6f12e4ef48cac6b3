// N relayed G.711 calls through the RTP relay fast path (prints figures).
//
// Boots a real core in-process (no modules) and, for each call, creates two
// RtpSessions on one of the core's loops and relays them into each other.
// A sender thread in this process plays both phones of every call (a 20 ms
// PCMU packet each way per call every 20 ms, from a few shared UDP sockets);
// a receiver thread counts what comes out of the other leg. It reports the
// CPU time the core's loop threads spend (getrusage(RUSAGE_THREAD) taken on
// each loop) per call-second, packets lost, and the RSS growth per session.
//
//   bench_rtp_relay [calls...] [--seconds S] [--rounds R]   default 100 500 1000 2000, 3 s, 3 rounds
#include "rtp/packet.hpp"
#include "runtime/core_impl.hpp"

#include <tandem/rtp.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {

long rss_kib() {
    std::ifstream in("/proc/self/statm");
    long size = 0, resident = 0;
    in >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

double thread_cpu() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds of all the core's loop threads, each read on its own thread.
double loops_cpu(CoreImpl& core) {
    double total = 0;
    for (std::size_t i = 0; i < core.loop_count(); ++i)
        total += asio::post(core.loop(i), asio::use_future([] { return thread_cpu(); })).get();
    return total;
}

constexpr int sockets_per_side = 16;

int udp_socket(std::uint16_t& port) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int big = 8 << 20;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    return fd;
}

struct Call {
    std::shared_ptr<RtpSession> a, b;  // a faces phone A, b faces phone B
    sockaddr_in a_addr{}, b_addr{};    // where the phones send
    std::uint16_t seq_a = 0, seq_b = 0;
    std::uint32_t ts_a = 0, ts_b = 0;
};

struct Traffic {
    std::vector<int> side_a, side_b;  // phone sockets
    std::vector<Call>* calls = nullptr;
    std::atomic<bool> sending{false}, stop{false};
    std::atomic<std::uint64_t> sent{0}, received{0};

    void send_tick() {
        std::array<std::uint8_t, 172> pkt{};
        std::memset(pkt.data() + 12, 0xff, 160);
        constexpr std::size_t batch = 64;
        std::array<mmsghdr, batch> msgs{};
        std::array<iovec, batch> iov{};
        std::vector<std::array<std::uint8_t, 172>> bufs(batch, pkt);
        auto& cs = *calls;
        for (int side = 0; side < 2; ++side)
            for (int k = 0; k < sockets_per_side; ++k) {
                std::size_t n = 0;
                auto flush = [&] {
                    std::size_t done = 0;
                    while (done < n) {
                        int r = ::sendmmsg(side ? side_b[k] : side_a[k], msgs.data() + done,
                                           static_cast<unsigned>(n - done), 0);
                        if (r <= 0) break;
                        done += static_cast<std::size_t>(r);
                    }
                    sent += done;
                    n = 0;
                };
                for (std::size_t i = static_cast<std::size_t>(k); i < cs.size(); i += sockets_per_side) {
                    auto& c = cs[i];
                    auto& seq = side ? c.seq_b : c.seq_a;
                    auto& ts = side ? c.ts_b : c.ts_a;
                    rtp::write_rtp_header(bufs[n].data(), false, 0, seq++, ts,
                                          static_cast<std::uint32_t>(i * 2 + side));
                    ts += 160;
                    iov[n] = {bufs[n].data(), bufs[n].size()};
                    msgs[n].msg_hdr = msghdr{};
                    msgs[n].msg_hdr.msg_name = side ? &c.b_addr : &c.a_addr;
                    msgs[n].msg_hdr.msg_namelen = sizeof(sockaddr_in);
                    msgs[n].msg_hdr.msg_iov = &iov[n];
                    msgs[n].msg_hdr.msg_iovlen = 1;
                    if (++n == batch) flush();
                }
                flush();
            }
    }

    void sender() {
        auto next = std::chrono::steady_clock::now();
        while (!stop) {
            next += 20ms;
            if (sending) send_tick();
            std::this_thread::sleep_until(next);
        }
    }

    void receiver() {
        std::vector<pollfd> fds;
        for (int fd : side_a) fds.push_back({fd, POLLIN, 0});
        for (int fd : side_b) fds.push_back({fd, POLLIN, 0});
        constexpr std::size_t batch = 64;
        std::vector<std::array<std::uint8_t, 256>> bufs(batch);
        std::array<mmsghdr, batch> msgs{};
        std::array<iovec, batch> iov{};
        while (!stop) {
            if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
            for (auto& p : fds) {
                if (!(p.revents & POLLIN)) continue;
                for (;;) {
                    for (std::size_t i = 0; i < batch; ++i) {
                        iov[i] = {bufs[i].data(), bufs[i].size()};
                        msgs[i].msg_hdr = msghdr{};
                        msgs[i].msg_hdr.msg_iov = &iov[i];
                        msgs[i].msg_hdr.msg_iovlen = 1;
                    }
                    int r = ::recvmmsg(p.fd, msgs.data(), batch, MSG_DONTWAIT, nullptr);
                    if (r <= 0) break;
                    for (int i = 0; i < r; ++i)
                        if (msgs[static_cast<std::size_t>(i)].msg_len >= 12 &&
                            bufs[static_cast<std::size_t>(i)][1] != rtp::rtcp_rr &&
                            bufs[static_cast<std::size_t>(i)][1] != rtp::rtcp_sr)
                            ++received;
                    if (static_cast<std::size_t>(r) < batch) break;
                }
            }
        }
    }
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> sizes;
    int seconds = 3, rounds = 3;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc)
            seconds = std::atoi(argv[++i]);
        else if (a == "--rounds" && i + 1 < argc)
            rounds = std::atoi(argv[++i]);
        else
            sizes.push_back(std::atoi(argv[i]));
    }
    if (sizes.empty()) sizes = {100, 500, 1000, 2000};
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one line per size, as it is measured
    rlimit fl{};
    getrlimit(RLIMIT_NOFILE, &fl);
    fl.rlim_cur = fl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &fl);

    auto dir = fs::temp_directory_path() / ("tandem-bench-rtp-" + std::to_string(getpid()));
    fs::create_directories(dir / "etc");
    std::ofstream(dir / "etc" / "tandem.conf")
        << "[options]\nlogfile =\nverbose = warning\n[directories]\nmodules => " << TANDEM_BENCH_MODULE_DIR
        << "\nrun => " << (dir / "run").string() << "\nspool => " << (dir / "spool").string() << "\ndb => "
        << (dir / "lib").string() << "\nlog => " << (dir / "log").string() << "\n";
    std::ofstream(dir / "etc" / "modules.conf") << "[modules]\nautoload = no\n";
    std::ofstream(dir / "etc" / "extensions.conf") << "[default]\n";
    std::ofstream(dir / "etc" / "cdr.conf") << "[csv]\nenabled = no\n";
    std::ofstream(dir / "etc" / "rtp.conf")
        << "[general]\nrtpstart = 20000\nrtpend = 45000\nbindaddr = 127.0.0.1\nstrictrtp = yes\nrtcpinterval = 5000\n";

    StartOptions o;
    o.config_dir = dir / "etc";
    o.terminal_level = LogLevel::warning;
    o.control_socket = false;
    CoreImpl core(o);
    std::vector<std::string> problems;
    if (!core.start(problems)) {
        for (auto& p : problems) std::fprintf(stderr, "%s\n", p.c_str());
        return 1;
    }

    Traffic t;
    std::vector<std::uint16_t> port_a, port_b;
    for (int k = 0; k < sockets_per_side; ++k) {
        std::uint16_t p = 0;
        t.side_a.push_back(udp_socket(p));
        port_a.push_back(p);
        t.side_b.push_back(udp_socket(p));
        port_b.push_back(p);
    }
    std::vector<Call> calls;
    t.calls = &calls;
    std::thread sender([&] { t.sender(); });
    std::thread receiver([&] { t.receiver(); });

    std::printf("RTP relay: %zu loops, G.711 20 ms both ways, %d rounds of %d s per size (medians)\n",
                core.loop_count(), rounds, seconds);
    std::printf("%6s %16s %14s %10s %12s %14s %12s\n", "calls", "CPU ms/call-s", "loop CPU %", "rate %", "lost",
                "lost %", "B/session");
    auto localhost = asio::ip::make_address("127.0.0.1");
    for (int n : sizes) {
        long rss_before = rss_kib();
        calls.assign(static_cast<std::size_t>(n), Call{});
        std::string error;
        for (int i = 0; i < n; ++i) {
            auto& c = calls[static_cast<std::size_t>(i)];
            auto& loop = core.pick_loop();
            auto ok = asio::post(loop, asio::use_future([&] {
                                     auto& eng = core.rtp();
                                     c.a = eng.create(loop, {.name = "bench-a"}, error);
                                     c.b = eng.create(loop, {.name = "bench-b"}, error);
                                     if (!c.a || !c.b) return false;
                                     auto k = static_cast<std::size_t>(i % sockets_per_side);
                                     c.a->set_remote(localhost, port_a[k]);
                                     c.b->set_remote(localhost, port_b[k]);
                                     c.a->set_send_format(Format::ulaw, 0);
                                     c.b->set_send_format(Format::ulaw, 0);
                                     c.a->relay_to(c.b.get());
                                     c.b->relay_to(c.a.get());
                                     return true;
                                 }))
                          .get();
            if (!ok) {
                std::fprintf(stderr, "session %d: %s\n", i, error.c_str());
                return 1;
            }
            c.a_addr.sin_family = c.b_addr.sin_family = AF_INET;
            c.a_addr.sin_addr.s_addr = c.b_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            c.a_addr.sin_port = htons(c.a->local_port());
            c.b_addr.sin_port = htons(c.b->local_port());
        }
        // Warm-up: one second of traffic before measuring.
        auto sent_start = t.sent.load(), recv_start = t.received.load();
        t.sending = true;
        std::this_thread::sleep_for(1s);
        long rss_after = rss_kib();
        std::vector<double> cpu_per_call_s, cpu_share, rate;
        for (int r = 0; r < rounds; ++r) {
            auto r0 = t.received.load();
            auto c0 = loops_cpu(core);
            auto w0 = std::chrono::steady_clock::now();
            std::this_thread::sleep_for(std::chrono::seconds(seconds));
            auto c1 = loops_cpu(core);
            auto wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
            // Call-seconds actually relayed: 100 packets (50 each way) make one,
            // so a sender that falls behind on a busy machine does not flatter the figure.
            auto call_s = static_cast<double>(t.received.load() - r0) / 100.0;
            cpu_per_call_s.push_back(call_s > 0 ? (c1 - c0) * 1000.0 / call_s : 0.0);
            rate.push_back(call_s * 100.0 / (n * wall));
            cpu_share.push_back((c1 - c0) * 100.0 / wall);
        }
        t.sending = false;
        std::this_thread::sleep_for(300ms);  // what is in flight arrives
        auto sent_total = t.sent.load() - sent_start, recv_total = t.received.load() - recv_start;
        auto lost_total = sent_total > recv_total ? sent_total - recv_total : 0;
        for (auto& c : calls) {
            asio::post(c.a->loop(), asio::use_future([&c] {
                           c.a->close();
                           c.b->close();
                       }))
                .get();
        }
        calls.clear();
        std::printf("%6d %16.4f %13.1f%% %9.1f%% %12llu %13.4f%% %12ld\n", n, median(cpu_per_call_s), median(cpu_share),
                    median(rate), static_cast<unsigned long long>(lost_total),
                    sent_total ? lost_total * 100.0 / sent_total : 0.0, (rss_after - rss_before) * 1024 / (2 * n));
        std::this_thread::sleep_for(300ms);
    }
    t.stop = true;
    sender.join();
    receiver.join();
    core.shutdown(true);
    std::error_code ec;
    fs::remove_all(dir, ec);
    return 0;
}
