#include "rtp/engine.hpp"

#include "cli/server.hpp"

#include <tandem/config.hpp>

#include <boost/asio/ip/udp.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <system_error>

#include <fmt/format.h>

namespace asio = boost::asio;

namespace tandem::rtp {

namespace {

const config::OptionSpec general_schema[] = {
    {"rtpstart", config::OptionType::integer, "10000", 1024, 65534, {}, "First RTP port (rounded up to even)."},
    {"rtpend", config::OptionType::integer, "20000", 1025, 65535, {}, "Last port of the RTP/RTCP range."},
    {"bindaddr", config::OptionType::string, "0.0.0.0", 0, 0, {}, "Address RTP sockets bind to."},
    {"strictrtp",
     config::OptionType::boolean,
     "yes",
     0,
     0,
     {},
     "Accept media only from the learnt source (after `probation` consecutive packets)."},
    {"probation", config::OptionType::integer, "4", 1, 100, {}, "Packets in sequence that make a new source learnt."},
    {"rtcpinterval",
     config::OptionType::integer,
     "5000",
     0,
     60000,
     {},
     "Milliseconds between RTCP reports; 0 turns periodic reports off."},
    {"jbenable", config::OptionType::boolean, "no", 0, 0, {}, "Jitter buffer on received voice (not when relaying)."},
    {"jbminsize", config::OptionType::integer, "40", 0, 1000, {}, "Jitter buffer initial/minimum delay, ms."},
    {"jbmaxsize", config::OptionType::integer, "200", 20, 2000, {}, "Jitter buffer maximum delay, ms."},
    {"jbresyncthreshold",
     config::OptionType::integer,
     "1000",
     100,
     60000,
     {},
     "Timestamp jump (ms) that restarts the jitter buffer."},
};

}  // namespace

void forget_session(SessionList& list, const SessionImpl* s, std::uint16_t rtp_port) {
    std::lock_guard lock(list.mu);
    list.sessions.erase(s);
    if (rtp_port) list.ports_in_use[rtp_port / 2] = false;
}

EngineImpl::EngineImpl(LogSink& sink) : log_(sink, "rtp") {}
EngineImpl::~EngineImpl() = default;

bool EngineImpl::load(const std::filesystem::path& file, std::vector<std::string>& problems, bool do_apply) {
    RtpSettings s;
    std::error_code ec;
    if (std::filesystem::exists(file, ec)) {
        auto parsed = config::parse_file(file);
        bool ok = parsed.ok();
        for (auto& d : parsed.errors) problems.push_back(d.str());
        static const config::Section empty;
        const auto* sec = parsed.file.section("general");
        config::Options o;
        auto diags = config::bind(sec ? *sec : empty, general_schema, o);
        for (auto& d : diags) problems.push_back(d.str());
        ok = ok && diags.empty();
        for (auto& sect : parsed.file.sections)
            if (sect.name != "general" && !sect.name.empty()) {
                problems.push_back(fmt::format("{}: unknown section [{}] in rtp.conf", sect.where.str(), sect.name));
                ok = false;
            }
        auto start = o.integer("rtpstart"), end = o.integer("rtpend");
        if (start % 2) ++start;
        if (start + 1 > end) {
            problems.push_back(fmt::format("{}: rtpstart ({}) must be below rtpend ({})",
                                           (o.where("rtpend") ? o.where("rtpend")->str() : file.string()), start, end));
            ok = false;
            start = 10000;
            end = 20000;
        }
        s.rtp_start = static_cast<std::uint16_t>(start);
        s.rtp_end = static_cast<std::uint16_t>(end);
        s.bind_address = o.str("bindaddr");
        boost::system::error_code aec;
        asio::ip::make_address(s.bind_address, aec);
        if (aec) {
            problems.push_back(fmt::format("{}: bindaddr '{}' is not an IP address",
                                           o.where("bindaddr") ? o.where("bindaddr")->str() : file.string(),
                                           s.bind_address));
            s.bind_address = "0.0.0.0";
            ok = false;
        }
        s.strict_rtp = o.boolean("strictrtp");
        s.probation = static_cast<unsigned>(o.integer("probation"));
        s.rtcp_interval = std::chrono::milliseconds(o.integer("rtcpinterval"));
        s.jitter_buffer = o.boolean("jbenable");
        s.jitter.min_delay = std::chrono::milliseconds(o.integer("jbminsize"));
        s.jitter.max_delay = std::chrono::milliseconds(o.integer("jbmaxsize"));
        s.jitter.resync = std::chrono::milliseconds(o.integer("jbresyncthreshold"));
        if (s.jitter.max_delay < s.jitter.min_delay) s.jitter.max_delay = s.jitter.min_delay;
        if (do_apply) apply(s);
        return ok;
    }
    if (do_apply) apply(s);
    return true;
}

void EngineImpl::apply(const RtpSettings& s) {
    std::lock_guard lock(mu_);
    if (s.rtp_start != settings_.rtp_start || s.rtp_end != settings_.rtp_end) next_port_ = 0;
    settings_ = s;
}

RtpSettings EngineImpl::settings() const {
    std::lock_guard lock(mu_);
    return settings_;
}

std::size_t EngineImpl::session_count() const {
    std::lock_guard lock(list_->mu);
    return list_->sessions.size();
}

std::vector<std::shared_ptr<SessionImpl>> EngineImpl::sessions() const {
    std::vector<std::shared_ptr<SessionImpl>> out;
    std::lock_guard lock(list_->mu);
    out.reserve(list_->sessions.size());
    for (auto& [k, w] : list_->sessions)
        if (auto s = w.lock()) out.push_back(std::move(s));
    return out;
}

std::shared_ptr<LoopScratch> scratch_for(SessionList& list, asio::io_context& loop) {
    std::lock_guard lock(list.scratch_mu);
    auto& w = list.scratch[&loop];
    auto s = w.lock();
    if (!s) {
        s = std::make_shared<LoopScratch>();
        s->poller = std::make_shared<MediaPoller>(loop);
        s->poller->start();
        w = s;
    }
    return s;
}

std::shared_ptr<RtpSession> EngineImpl::create(asio::io_context& loop, const RtpSessionOptions& options,
                                               std::string& error) {
    using udp = asio::ip::udp;
    std::unique_lock lock(mu_);
    auto st = settings_;
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(options.bind_address.empty() ? st.bind_address : options.bind_address, ec);
    if (ec) {
        error = "bad bind address '" + (options.bind_address.empty() ? st.bind_address : options.bind_address) + "'";
        return nullptr;
    }
    std::uint32_t first = st.rtp_start, last = st.rtp_end;  // pairs p, p+1 with p+1 <= last
    if (first % 2) ++first;
    if (first + 1 > last) {
        error = "empty RTP port range";
        return nullptr;
    }
    std::uint32_t pairs = (last - first + 1) / 2;
    if (next_port_ < first || next_port_ + 1 > last) next_port_ = first;
    std::shared_ptr<LoopScratch> scratch;
    try {
        scratch = scratch_for(*list_, loop);  // the loop's buffers and MediaPoller
    } catch (const std::exception& e) {
        error = e.what();
        log_.warning("{}", error);
        return nullptr;
    }
    const int family = addr.is_v6() ? AF_INET6 : AF_INET;
    auto open_socket = [&] { return MediaSocket(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)); };
    MediaSocket rtp = open_socket(), rtcp = open_socket();
    if (!rtp.is_open() || !rtcp.is_open()) {
        error = fmt::format("cannot open RTP sockets: {}", std::system_category().message(errno));
        log_.warning("{}", error);
        return nullptr;
    }
    auto bind_to = [&](const MediaSocket& s, std::uint32_t p) {
        udp::endpoint ep(addr, static_cast<std::uint16_t>(p));
        return ::bind(s.fd(), ep.data(), static_cast<socklen_t>(ep.size())) == 0;
    };
    bool found = false;
    std::uint32_t port = 0;
    // Ports our own sessions hold are skipped from the table; any other user
    // of a port (another program) fails the bind, and the same unbound socket
    // tries the next pair: no socket is made per attempt. With the range
    // nearly full (calls piling up) this is what keeps the search cheap.
    // Only create() sets bits, under mu_, so a pair read as free stays free
    // while we bind it; the table's own lock is held for the reads alone, not
    // across the binds, since closing sessions on every loop take it.
    for (std::uint32_t i = 0; i < pairs && !found; ++i) {
        port = next_port_;
        next_port_ += 2;
        if (next_port_ + 1 > last) next_port_ = first;
        {
            std::lock_guard l(list_->mu);
            if (list_->ports_in_use[port / 2]) continue;
        }
        if (!bind_to(rtp, port)) continue;
        if (!bind_to(rtcp, port + 1)) {
            // The RTP socket is bound now: it cannot try another port.
            rtp = open_socket();
            if (!rtp.is_open()) break;
            continue;
        }
        found = true;
    }
    if (!found) {
        error = fmt::format("no free RTP port pair in {}-{} on {}", first, last, addr.to_string());
        log_.warning("{}", error);
        return nullptr;
    }
    {
        std::lock_guard l(list_->mu);
        list_->ports_in_use[port / 2] = true;
    }
    lock.unlock();

    SessionConfig cfg;
    cfg.strict = options.strict_rtp.value_or(st.strict_rtp);
    cfg.symmetric = options.symmetric;
    cfg.probation = st.probation;
    cfg.rtcp_interval = options.rtcp_interval.value_or(st.rtcp_interval);
    bool jitter_buffer = options.jitter_buffer.value_or(st.jitter_buffer);
    auto s = std::make_shared<SessionImpl>(list_, loop, std::move(scratch), std::move(rtp), std::move(rtcp),
                                           options.name, cfg, jitter_buffer ? &st.jitter : nullptr);
    {
        std::lock_guard l(list_->mu);
        list_->sessions[s.get()] = s;
    }
    s->start();
    return s;
}

void EngineImpl::register_commands(Registry<CliCommand>& registry, ModuleUse* owner, std::vector<Registration>& out) {
    auto add = [&](CliCommand c) { out.push_back(add_command(registry, std::move(c), owner)); };
    add({{"rtp", "show", "settings"},
         "Show the RTP settings",
         "Usage: rtp show settings\n  Port range, bind address, strict RTP, RTCP interval and jitter buffer from "
         "rtp.conf.",
         [this](CliRequest& r) -> awaitable<int> {
             if (!r.args.empty()) co_return cli_status::usage;
             auto s = settings();
             r.out.print("Port range:        {}-{}\n", s.rtp_start, s.rtp_end);
             r.out.print("Bind address:      {}\n", s.bind_address);
             r.out.print("Strict RTP:        {} (probation {} packets)\n", s.strict_rtp ? "yes" : "no", s.probation);
             r.out.print("RTCP interval:     {} ms\n", s.rtcp_interval.count());
             r.out.print("Jitter buffer:     {} (min {} ms, max {} ms, resync {} ms)\n", s.jitter_buffer ? "yes" : "no",
                         s.jitter.min_delay.count(), s.jitter.max_delay.count(), s.jitter.resync.count());
             r.out.print("Sessions:          {}\n", session_count());
             co_return cli_status::ok;
         },
         nullptr});
    add({{"rtp", "show", "sessions"},
         "List RTP sessions with their statistics",
         "Usage: rtp show sessions\n"
         "  One line per open session: local port, remote, packets sent and received, lost,\n"
         "  jitter and round-trip time (ms), and whether it relays.",
         [this](CliRequest& r) -> awaitable<int> {
             if (!r.args.empty()) co_return cli_status::usage;
             auto list = sessions();
             r.out.print("{:<28} {:>6} {:>9} {:>9} {:>6} {:>7} {:>7} {:>9} {}\n", "Name", "Port", "Sent", "Received",
                         "Lost", "Jitter", "RTT", "Malformed", "SRTP-fail");
             for (auto& s : list) {
                 auto st = s->stats();
                 r.out.print("{:<28} {:>6} {:>9} {:>9} {:>6} {:>7.1f} {:>7} {:>9} {}\n", s->name().substr(0, 28),
                             s->local_port(), st.packets_sent, st.packets_received, st.packets_lost, st.jitter_ms,
                             st.rtt_ms < 0 ? std::string("-") : fmt::format("{:.1f}", st.rtt_ms), st.malformed,
                             st.srtp_failed);
             }
             r.out.print("{} sessions\n", list.size());
             co_return cli_status::ok;
         },
         nullptr});
}

}  // namespace tandem::rtp
