#include "service.hpp"

#include <tandem/kvstore.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace tandem::sip {

namespace {

std::string describe(std::chrono::seconds s) {
    return fmt::format("{} s", s.count());
}

}  // namespace

// --- LoopWork ----------------------------------------------------------------

std::optional<LoopWork::Pass> LoopWork::pass() {
    {
        std::lock_guard lock(mu_);
        if (closed_) return std::nullopt;
        ++passes_;
    }
    return Pass(shared_from_this());
}

void LoopWork::release() {
    std::lock_guard lock(mu_);
    if (--passes_ == 0) idle_.notify_all();
}

std::size_t LoopWork::pending() const {
    std::lock_guard lock(mu_);
    return passes_;
}

std::shared_ptr<boost::asio::steady_timer> LoopWork::timer(boost::asio::io_context& loop) {
    auto t = std::make_shared<boost::asio::steady_timer>(loop);
    std::lock_guard lock(mu_);
    timers_.push_back({t, &loop});
    // Timers of ended calls go when the list has doubled, not at every call:
    // a scan per set-up would cost O(calls in progress) under the lock.
    if (timers_.size() >= prune_at_) {
        std::erase_if(timers_, [](const Listed& l) { return l.timer.expired(); });
        prune_at_ = std::max<std::size_t>(64, 2 * timers_.size());
    }
    return t;
}

bool LoopWork::close(std::chrono::milliseconds bound) {
    std::vector<Listed> timers;
    std::unique_lock lock(mu_);
    closed_ = true;
    timers.swap(timers_);
    // The cancels are work too: they hold passes that close() itself waits for.
    passes_ += timers.size();
    lock.unlock();
    for (auto& l : timers)
        boost::asio::post(*l.loop, [weak = l.timer, pass = Pass(shared_from_this())] {
            // A cancelled timer's handler is queued behind this one on the same
            // loop: its pass is released when it has run.
            if (auto t = weak.lock()) t->cancel();
        });
    lock.lock();
    return idle_.wait_for(lock, bound, [this] { return passes_ == 0; });
}

// --- SipService ---------------------------------------------------------------

SipService::SipService(Core& core, Log log)
    : core_(core),
      log_(log),
      settings_(std::make_shared<const Settings>()),
      auth_(NonceFactory::with_random_secret()),
      registrar_(log),
      agent_(log),
      calls_(*this, core, log, work_) {}

SipService::~SipService() {
    agent_.stop();
}

std::int64_t SipService::wall_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::vector<std::string> SipService::set_settings(std::shared_ptr<const Settings> s) {
    std::vector<std::string> kept;
    auto old = settings_.load();
    if (running()) {
        auto& a = old->general;
        auto& b = s->general;
        if (a.bindaddr != b.bindaddr || a.bindport != b.bindport || a.transports != b.transports || a.tls != b.tls)
            kept.push_back(
                fmt::format("bindaddr, bindport, transport and tls* changes take effect when chan_sip is loaded "
                            "again (still listening on {}:{})",
                            a.bindaddr, a.bindport));
        if (a.useragent != b.useragent) kept.push_back("useragent changes take effect when chan_sip is loaded again");
        if (a.listens_on_streams() && a.maxexpiry != b.maxexpiry)
            kept.push_back(
                fmt::format("maxexpiry applies to new registrations now; how long an unused TCP/TLS "
                            "connection is kept ({} s, from maxexpiry) changes when chan_sip is loaded "
                            "again",
                            agent_.config().stream_idle.count()));
    }
    bans_.set_policy(s->general.bans);
    settings_.store(s);
    for (auto& b : registrar_.prune(*s))
        log_.notice("{} is no longer an endpoint that registers: dropped its contact {}", b.endpoint, b.contact);
    if (running() && old->general.sipdebug != s->general.sipdebug) agent_.set_debug(s->general.sipdebug);
    if (running()) agent_.set_registrations(s->registrations);
    agent_.set_overload_guard(s->general.overload_queue, s->general.overload_retry_after);
    std::vector<IpAddress> known_peers;
    for (auto& [name, e] : s->endpoints)
        if (e.type != EndpointType::user && e.host_ip) known_peers.push_back(*e.host_ip);
    agent_.set_connection_guard(s->general.tcp_auth_timeout, s->general.tcp_auth_limit, std::move(known_peers));
    return kept;
}

void SipService::start() {
    auto s = settings_.load();
    registrar_.set_store(&core_.kv());
    registrar_.set_events(&core_.events());
    qualify_.set_events(&core_.events());
    registrar_.restore(*s, wall_now());

    AgentConfig config;
    config.bindaddr = s->general.bindaddr;
    config.port = s->general.bindport;
    config.transports = s->general.transports;
    config.user_agent = s->general.useragent;
    config.udp_rcvbuf = s->general.udp_rcvbuf;
    config.debug = s->general.sipdebug;
    config.force_rport = s->general.nat.force_rport;
    // The stack's own idle limit (30 minutes) would close a registered
    // phone's connection while its registration still runs; the phone,
    // behind NAT, could then not be called. Unauthenticated connections are
    // the connection guard's (tcpauthtimeout).
    config.stream_idle =
        std::max<std::chrono::seconds>(std::chrono::minutes(30), s->general.maxexpiry + std::chrono::seconds(64));
    config.tls = s->general.tls.enabled;
    config.tls_port = s->general.tls.port;
    config.tls_certfile = s->general.tls.certfile;
    config.tls_keyfile = s->general.tls.keyfile;
    config.tls_cafile = s->general.tls.cafile;
    config.tls_verify_client = s->general.tls.verify_client;

    SofiaAgent::Callbacks cb;
    cb.on_register = [this, weak = weak_from_this()](IncomingRequest in) {
        work_->post(core_.pick_loop(), [weak, in = std::move(in)]() mutable {
            if (auto self = weak.lock()) self->handle_register(std::move(in));
        });
    };
    cb.is_banned = [this](const IpAddress& ip) { return bans_.banned(ip, BanList::Clock::now()); };
    cb.on_tick = [this] { return tick(); };
    cb.on_probe_result = [this](ProbeResult r) { probe_result(r); };
    cb.on_invite = [this](CallOffer offer) { calls_.on_invite(std::move(offer)); };
    cb.on_call_event = [this](CallEvent e) { calls_.on_event(std::move(e)); };
    cb.on_registry_change = [this, seen = std::make_shared<RegistryEvents>()](RegistryEntry e) {
        if (auto ev = seen->change(e)) core_.events().publish(std::move(*ev));
    };
    std::string error;
    if (!agent_.start(config, std::move(cb), error)) throw std::runtime_error(error);
    agent_.set_registrations(s->registrations);
    std::string transports;
    for (auto t : config.transports) transports += (transports.empty() ? "" : ", ") + std::string(to_string(t));
    if (config.tls) transports += fmt::format(", tls on port {}", config.tls_port);
    log_.notice("listening for SIP on {}:{} ({}), realm \"{}\", {} endpoints", config.bindaddr, config.port, transports,
                s->general.realm, s->endpoints.size());
}

void SipService::stop() {
    // First the Sofia thread, the source of new work; then the calls the
    // dialog table still holds (a call whose last dialog never ended is freed
    // here, and its members go back to their loops through work_); then the
    // timers, and a wait until every loop is done with chan_sip's handlers.
    agent_.stop();
    calls_.stop();
    if (!work_->close(std::chrono::seconds(10)))
        log_.error("chan_sip: {} handlers still pending on the event loops after 10 s", work_->pending());
}

void SipService::handle_register(IncomingRequest in) {
    auto s = settings_.load();
    auto& rq = in.request;
    auto now = wall_now();
    auto outcome = auth_.authenticate(rq, *s, now);
    SipResponse response;
    switch (outcome.kind) {
        case AuthOutcome::Kind::challenged:
            log_.debug("REGISTER {} from {}: challenged ({})", rq.to_user, rq.source.str(), outcome.reason);
            response = std::move(outcome.response);
            break;
        case AuthOutcome::Kind::rejected: {
            log_.notice("REGISTER {} from {}: authentication failed for '{}' ({})", rq.to_user, rq.source.str(),
                        outcome.username, outcome.reason);
            response = std::move(outcome.response);
            if (bans_.record_failure(rq.source.ip, BanList::Clock::now())) {
                auto& p = s->general.bans;
                log_.warning("banned {} for {}: {} authentication failures within {}", rq.source.ip.str(),
                             describe(p.duration), p.failures, describe(p.window));
                sync_bans();
            }
            break;
        }
        case AuthOutcome::Kind::authenticated: {
            auto& allowed = outcome.endpoint->transports;
            if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), rq.transport) == allowed.end()) {
                // As Asterisk: a device must register over a transport its
                // endpoint allows (a TLS-only phone never over plain UDP).
                log_.notice("REGISTER {} from {}: transport {} is not allowed for this endpoint", rq.to_user,
                            rq.source.str(), to_string(rq.transport));
                response = SipResponse(403, "Forbidden");
                break;
            }
            agent_.connection_authenticated(rq.transport, rq.source);
            response = registrar_.apply(rq, *outcome.endpoint, s->general, now);
            break;
        }
    }
    agent_.respond(in.token, std::move(response));
}

void SipService::sync_bans() {
    auto generation = bans_.generation();
    if (synced_ban_generation_.exchange(generation) == generation) return;
    agent_.set_banned(bans_.banned_addresses(BanList::Clock::now()));
}

std::vector<QualifyTarget> SipService::tick() {
    auto s = settings_.load();
    for (auto& b : registrar_.expire(wall_now())) log_.info("{}: registration of {} expired", b.endpoint, b.contact);
    for (auto& ip : bans_.expire(BanList::Clock::now())) log_.notice("ban on {} lifted: it expired", ip.str());
    sync_bans();
    return qualify_.due(*s, registrar_.all(), QualifyTable::Clock::now());
}

void SipService::probe_result(const ProbeResult& r) {
    if (auto line = qualify_.report(r.key, r.rtt, QualifyTable::Clock::now())) log_.notice("{}", *line);
}

}  // namespace tandem::sip
