#include "cli.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace tandem::sip {

namespace {

using namespace std::chrono_literals;
using Service = std::weak_ptr<SipService>;

std::string expires_in(std::int64_t at, std::int64_t now) {
    return std::to_string(std::max<std::int64_t>(at - now, 0));
}

std::string host_of(const Endpoint& e, const std::vector<Binding>& bindings) {
    if (!e.dynamic) return fmt::format("{}:{}", e.host_ip ? e.host_ip->uri_host() : e.host, e.port);
    for (auto& b : bindings)
        if (b.endpoint == e.name) return b.source.str();
    return "(Unspecified)";
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
    std::string out;
    for (auto& s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

std::string rtt_text(const QualifyStatus& q) {
    return q.rtt ? fmt::format(" ({} ms)", q.rtt->count()) : "";
}

awaitable<int> show_endpoints(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    std::string like = r.args.size() == 2 && r.args[0] == "like" ? r.args[1] : "";
    if (!r.args.empty() && like.empty()) co_return cli_status::usage;
    auto s = svc->settings();
    auto bindings = svc->registrar().all();
    constexpr auto row = "{:<20} {:<28} {:<7} {:<4} {:<17} {:<4} {:<9} {}\n";
    r.out.print(row, "Name", "Host", "Type", "Dyn", "NAT", "ACL", "Contacts", "Status");
    int n = 0, dynamic = 0, contacts = 0;
    for (auto& [name, e] : s->endpoints) {
        if (!like.empty() && name.find(like) == std::string::npos) continue;
        auto c = std::count_if(bindings.begin(), bindings.end(), [&](const Binding& b) { return b.endpoint == name; });
        r.out.print(row, name, host_of(e, bindings), to_string(e.type), e.dynamic ? "D" : "", e.nat.str(),
                    e.acl.empty() ? "" : "A", e.dynamic ? std::to_string(c) : "-", svc->qualify().summary(name));
        ++n;
        dynamic += e.dynamic;
        contacts += static_cast<int>(c);
    }
    r.out.print("{} SIP endpoint{} [{} dynamic, {} registered contact{}]\n", n, n == 1 ? "" : "s", dynamic, contacts,
                contacts == 1 ? "" : "s");
    co_return cli_status::ok;
}

awaitable<int> show_endpoint(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (r.args.size() != 1) co_return cli_status::usage;
    auto s = svc->settings();
    const Endpoint* e = s->find(r.args[0]);
    if (!e) {
        r.out.print("No SIP endpoint '{}'\n", r.args[0]);
        co_return cli_status::failure;
    }
    auto row = [&](std::string_view k, const std::string& v) { r.out.print("  {:<16}: {}\n", k, v); };
    std::vector<std::string> insecure, transports;
    if (e->insecure_port) insecure.push_back("port");
    if (e->insecure_invite) insecure.push_back("invite");
    for (auto t : e->transports) transports.emplace_back(to_string(t));

    r.out.print("\n  * Endpoint {}{}\n", e->name, e->description.empty() ? "" : " (" + e->description + ")");
    row("Type", std::string(to_string(e->type)));
    row("Host", e->dynamic ? "dynamic" : fmt::format("{} port {}", e->host, e->port));
    row("Secret", e->secret.empty() ? "<not set>" : "<set>");
    row("Context", e->context);
    row("Caller ID", e->callerid.empty() ? "<none>" : e->callerid);
    row("Mailbox", e->mailboxes.empty() ? "<none>" : join(e->mailboxes));
    row("Codecs", e->codecs.empty() ? "<none>" : join(e->codecs));
    row("DTMF mode", e->dtmfmode);
    row("NAT", e->nat.str());
    row("Qualify", e->qualify.enabled ? fmt::format("yes ({} ms)", e->qualify.max.count()) : "no");
    row("Call limit", e->call_limit ? std::to_string(e->call_limit) : "none");
    row("ACL", e->acl.empty() ? "<none>" : e->acl.str());
    row("Insecure", insecure.empty() ? "no" : join(insecure));
    row("Transports", join(transports));
    if (!e->outboundproxy.empty()) row("Outbound proxy", e->outboundproxy);
    row("Max contacts", std::to_string(e->max_contacts));
    if (!e->language.empty()) row("Language", e->language);
    if (!e->accountcode.empty()) row("Account code", e->accountcode);
    row("Status", svc->qualify().summary(e->name));
    row("Defined at", e->where.str());
    if (e->dynamic) {
        auto now = SipService::wall_now();
        auto bindings = svc->registrar().bindings(e->name);
        row("Contacts", std::to_string(bindings.size()));
        for (auto& b : bindings)
            r.out.print("    {} expires in {} s, from {}/{}, {}\n", b.contact, expires_in(b.expires_at, now),
                        b.source.str(), to_string(b.transport), b.user_agent.empty() ? "no User-Agent" : b.user_agent);
    }
    for (auto& q : svc->qualify().status(e->name))
        r.out.print("    qualify {}: {}{}\n", q.target.uri, to_string(q.state), rtt_text(q));
    r.out.print("\n");
    co_return cli_status::ok;
}

awaitable<int> show_registrations(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (r.args.size() > 1) co_return cli_status::usage;
    auto list = r.args.empty() ? svc->registrar().all() : svc->registrar().bindings(r.args[0]);
    auto now = SipService::wall_now();
    constexpr auto row = "{:<16} {:<44} {:>7}  {:<24} {:<9} {}\n";
    r.out.print(row, "Endpoint", "Contact", "Expires", "Source", "Transport", "User-Agent");
    for (auto& b : list)
        r.out.print(row, b.endpoint, b.contact, expires_in(b.expires_at, now), b.source.str(), to_string(b.transport),
                    b.user_agent);
    r.out.print("{} registered contact{}\n", list.size(), list.size() == 1 ? "" : "s");
    co_return cli_status::ok;
}

awaitable<int> show_registry(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (!r.args.empty()) co_return cli_status::usage;
    auto list = svc->agent().registry();
    auto now = SipService::wall_now();
    constexpr auto row = "{:<28} {:<20} {:<14} {:>7}  {}\n";
    r.out.print(row, "Host", "Username", "State", "Expires", "Last answer");
    for (auto& e : list) {
        std::string expires = e.expires_at ? std::to_string(std::max<std::int64_t>(e.expires_at - now, 0)) : "-";
        std::string last = e.status ? std::to_string(e.status) : "-";
        if (e.next_attempt) last += fmt::format(", retry in {} s", std::max<std::int64_t>(e.next_attempt - now, 0));
        r.out.print(row, fmt::format("{}:{}", e.host, e.port), e.user, to_string(e.state), expires, last);
    }
    r.out.print("{} SIP registration{}\n", list.size(), list.size() == 1 ? "" : "s");
    co_return cli_status::ok;
}

awaitable<int> show_trunks(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (!r.args.empty()) co_return cli_status::usage;
    auto s = svc->settings();
    auto registry = svc->agent().registry();
    auto calls = svc->calls().per_endpoint();
    auto now = SipService::wall_now();
    auto registration = [&](const RegistryEntry& e) {
        std::string text(to_string(e.state));
        if (e.expires_at)
            text += fmt::format(" {} s", std::max<std::int64_t>(e.expires_at - now, 0));
        else if (e.status)
            text += fmt::format(" ({})", e.status);
        return text;
    };
    constexpr auto row = "{:<20} {:<30} {:<9} {:<10} {:<22} {:<20} {}\n";
    r.out.print(row, "Name", "Host", "Transport", "Inbound", "Registration", "Status", "Calls");
    int n = 0, up = 0, down = 0;
    // A trunk is an endpoint Tandem reaches at a fixed host: a provider, a
    // gateway, another PBX. Its state is what qualify last found.
    for (auto& [name, e] : s->endpoints) {
        if (!e.has_static_host()) continue;
        std::string reg = "-";
        for (auto& x : registry)
            if (x.endpoint == name) reg = registration(x);
        auto status = svc->qualify().status(name);
        bool is_up = !status.empty() && std::all_of(status.begin(), status.end(), [](auto& q) {
            return q.state == Reachability::reachable || q.state == Reachability::lagged;
        });
        bool is_down =
            std::any_of(status.begin(), status.end(), [](auto& q) { return q.state == Reachability::unreachable; });
        up += is_up;
        down += is_down;
        auto it = calls.find(name);
        int active = it == calls.end() ? 0 : it->second;
        r.out.print(row, name, fmt::format("{}:{}", e.host_ip ? e.host_ip->uri_host() : e.host, e.port),
                    to_string(e.transport()), e.insecure_invite ? "by address" : "digest", reg,
                    svc->qualify().summary(name),
                    e.call_limit ? fmt::format("{}/{}", active, e.call_limit) : std::to_string(active));
        ++n;
    }
    // register => lines belong to no endpoint: listed for their registration.
    for (auto& x : registry) {
        if (!x.endpoint.empty()) continue;
        r.out.print(row, fmt::format("register {}", x.user), fmt::format("{}:{}", x.host, x.port), "-", "-",
                    registration(x), "-", "-");
    }
    r.out.print("{} SIP trunk{} [{} up, {} down, {} unknown]\n", n, n == 1 ? "" : "s", up, down, n - up - down);
    co_return cli_status::ok;
}

awaitable<int> show_bans(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (!r.args.empty()) co_return cli_status::usage;
    auto p = svc->bans().policy();
    r.out.print("Auto-ban {}: {} failures within {} s ban an address for {} s\n", p.enabled ? "on" : "off", p.failures,
                p.window.count(), p.duration.count());
    auto now = BanList::Clock::now();
    constexpr auto row = "{:<40} {:<8} {:<7} {}\n";
    r.out.print(row, "Address", "Failures", "Banned", "Expires in");
    int banned = 0;
    for (auto& e : svc->bans().list(now)) {
        std::string left = "-";
        if (e.banned_until) {
            ++banned;
            left = fmt::format("{} s", std::chrono::ceil<std::chrono::seconds>(*e.banned_until - now).count());
        }
        r.out.print(row, e.ip.str(), e.recent_failures, e.banned_until ? "yes" : "no", left);
    }
    r.out.print("{} banned address{}\n", banned, banned == 1 ? "" : "es");
    co_return cli_status::ok;
}

awaitable<int> show_status(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (!r.args.empty()) co_return cli_status::usage;
    auto& agent = svc->agent();
    auto o = agent.overload();
    auto settings = svc->settings();
    const auto& g = settings->general;
    r.out.print("Dialogs:            {}\n", agent.dialogs());
    r.out.print("Requests pending:   {} (waiting for an event loop's answer)\n", agent.pending());
    if (o.udp_buffer)
        r.out.print("UDP receive queue:  {} KiB of {} KiB ({}%)\n", o.udp_queued / 1024, o.udp_buffer / 1024,
                    std::uint64_t{o.udp_queued} * 100 / o.udp_buffer);
    else
        r.out.print("UDP receive queue:  -\n");
    if (g.overload_queue)
        r.out.print("Overload guard:     on above {}% of the buffer, Retry-After {} s; now {}\n", g.overload_queue,
                    g.overload_retry_after.count(), o.active ? "REFUSING new calls and registrations" : "accepting");
    else
        r.out.print("Overload guard:     off (overloadqueue=0)\n");
    r.out.print("Refused (overload): {}\n", o.refused);
    if (g.listens_on_streams()) {
        auto c = agent.connections();
        r.out.print(
            "TCP/TLS connections: {} authenticated, {} not yet (limit {}, closed after {})\n", c.authenticated,
            c.unauthenticated, g.tcp_auth_limit ? std::to_string(g.tcp_auth_limit) : std::string("none"),
            g.tcp_auth_timeout.count() ? fmt::format("{} s", g.tcp_auth_timeout.count()) : std::string("never"));
        r.out.print("Closed unauthenticated: {}\n", c.closed);
    }
    co_return cli_status::ok;
}

awaitable<int> unban(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (r.args.size() != 1) co_return cli_status::usage;
    if (r.args[0] == "all") {
        auto n = svc->bans().unban_all();
        svc->sync_bans();
        svc->log().notice("all bans lifted from the console ({})", n);
        r.out.print("Unbanned {} address{}\n", n, n == 1 ? "" : "es");
        co_return cli_status::ok;
    }
    auto ip = IpAddress::parse(r.args[0]);
    if (!ip) {
        r.out.print("'{}' is not an IP address\n", r.args[0]);
        co_return cli_status::usage;
    }
    if (!svc->bans().unban(*ip)) {
        r.out.print("{} is not banned\n", ip->str());
        co_return cli_status::failure;
    }
    svc->sync_bans();
    svc->log().notice("ban on {} lifted from the console", ip->str());
    r.out.print("Unbanned {}\n", ip->str());
    co_return cli_status::ok;
}

// Asks the Sofia thread for a probe now, then waits (polling the table, never
// blocking the loop) until every target has reported or the time is up.
awaitable<int> qualify(Service weak, CliRequest& r) {
    if (r.args.size() != 1) co_return cli_status::usage;
    std::string name = r.args[0];
    std::map<std::string, std::uint64_t> before;
    std::chrono::steady_clock::time_point deadline;
    {
        auto svc = weak.lock();
        if (!svc) co_return cli_status::failure;
        auto s = svc->settings();
        const Endpoint* e = s->find(name);
        if (!e) {
            r.out.print("No SIP endpoint '{}'\n", name);
            co_return cli_status::failure;
        }
        if (!svc->running()) {
            r.out.print("chan_sip is not running\n");
            co_return cli_status::failure;
        }
        if (e->dynamic && svc->registrar().bindings(name).empty()) {
            r.out.print("{} has no registered contact\n", name);
            co_return cli_status::failure;
        }
        for (auto& q : svc->qualify().status(name)) before[q.target.key] = q.reports;
        deadline = std::chrono::steady_clock::now() + std::max<std::chrono::milliseconds>(2 * e->qualify.max, 3s) + 1s;
        svc->qualify().request(name);
        svc->agent().wake();
    }
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
    std::vector<QualifyStatus> now;
    for (;;) {
        timer.expires_after(50ms);
        co_await timer.async_wait(boost::asio::use_awaitable);
        auto svc = weak.lock();
        if (!svc) co_return cli_status::failure;
        now = svc->qualify().status(name);
        bool done = !now.empty() && std::all_of(now.begin(), now.end(), [&](const QualifyStatus& q) {
            auto it = before.find(q.target.key);
            return q.reports > (it == before.end() ? 0 : it->second);
        });
        if (done || std::chrono::steady_clock::now() > deadline) break;
    }
    int reachable = 0;
    for (auto& q : now) {
        r.out.print("{} {}: {}{}\n", name, q.target.uri, to_string(q.state), rtt_text(q));
        reachable += q.state == Reachability::reachable || q.state == Reachability::lagged;
    }
    co_return reachable ? cli_status::ok : cli_status::failure;
}

awaitable<int> set_debug(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (r.args.size() != 1 || (r.args[0] != "on" && r.args[0] != "off")) co_return cli_status::usage;
    bool on = r.args[0] == "on";
    svc->agent().set_debug(on);
    r.out.print("SIP debugging {}\n", on ? "enabled" : "disabled");
    co_return cli_status::ok;
}

awaitable<int> show_channels(Service weak, CliRequest& r) {
    auto svc = weak.lock();
    if (!svc) co_return cli_status::failure;
    if (!r.args.empty()) co_return cli_status::usage;
    auto calls = svc->calls().summaries();
    constexpr auto row = "{:<28} {:<32} {:<4} {:<5} {:<6} {:<10} {:<21} {}\n";
    r.out.print(row, "Channel", "Call-ID", "Dir", "State", "Codec", "Endpoint", "Peer address", "Dialogs");
    for (auto& c : calls)
        r.out.print(row, c.channel, c.call_id.size() > 32 ? c.call_id.substr(0, 31) + "~" : c.call_id,
                    c.outbound ? "out" : "in", c.state, c.codec, c.endpoint.empty() ? "-" : c.endpoint, c.peer,
                    c.dialogs);
    r.out.print("{} active SIP channel{} ({} dialogs)\n", calls.size(), calls.size() == 1 ? "" : "s",
                svc->agent().dialogs());
    co_return cli_status::ok;
}

using Handler = awaitable<int> (*)(Service, CliRequest&);
using Completion =
    std::function<std::vector<std::string>(const std::vector<std::string>&, std::size_t, std::string_view)>;

}  // namespace

std::vector<Registration> register_cli(Host& host, std::shared_ptr<SipService> service) {
    Service weak = service;
    auto add = [&](std::vector<std::string> words, std::string summary, std::string usage, Handler handler,
                   Completion complete = {}) {
        return host.add(CliCommand{std::move(words), std::move(summary), std::move(usage),
                                   [weak, handler](CliRequest& r) { return handler(weak, r); }, std::move(complete)});
    };
    Completion endpoints = [weak](const std::vector<std::string>&, std::size_t index, std::string_view) {
        std::vector<std::string> out;
        if (auto svc = weak.lock(); svc && index == 0)
            for (auto& [name, e] : svc->settings()->endpoints) out.push_back(name);
        return out;
    };
    Completion banned = [weak](const std::vector<std::string>&, std::size_t index, std::string_view) {
        std::vector<std::string> out;
        if (auto svc = weak.lock(); svc && index == 0) {
            out.push_back("all");
            for (auto& ip : svc->bans().banned_addresses(BanList::Clock::now())) out.push_back(ip.str());
        }
        return out;
    };
    Completion on_off = [](const std::vector<std::string>&, std::size_t index, std::string_view) {
        return index == 0 ? std::vector<std::string>{"on", "off"} : std::vector<std::string>{};
    };

    std::vector<Registration> regs;
    regs.push_back(add({"sip", "show", "endpoints"}, "List SIP endpoints",
                       "Usage: sip show endpoints [like TEXT]\n"
                       "  Lists the endpoints of sip.conf with their address, type, NAT mode, ACL,\n"
                       "  registered contacts and qualify status.",
                       show_endpoints));
    regs.push_back(add({"sip", "show", "endpoint"}, "Show one SIP endpoint in detail",
                       "Usage: sip show endpoint NAME\n"
                       "  Settings (never the secret), contacts and qualify state of one endpoint.",
                       show_endpoint, endpoints));
    regs.push_back(add({"sip", "show", "registrations"}, "List registered SIP contacts",
                       "Usage: sip show registrations [ENDPOINT]\n"
                       "  Every contact an endpoint registered: seconds until it expires, the\n"
                       "  address and transport it came from, and its User-Agent.",
                       show_registrations, endpoints));
    regs.push_back(add({"sip", "show", "registry"}, "List Tandem's own registrations with providers",
                       "Usage: sip show registry\n"
                       "  Each register => line and register=yes peer: registrar, user, state\n"
                       "  (Registered, Request Sent, Auth. Sent, Rejected, Timeout, Failed,\n"
                       "  Unregistered), seconds until the binding expires and the last answer.",
                       show_registry));
    regs.push_back(add({"sip", "show", "trunks"}, "List SIP trunks: providers, gateways, other PBXs",
                       "Usage: sip show trunks\n"
                       "  Each endpoint with a static host: its address and transport, how its calls\n"
                       "  in are recognised (digest, or by address with insecure=invite), its\n"
                       "  registration with the provider (register=yes), its qualify status (up:\n"
                       "  OK or LAGGED; down: UNREACHABLE) and its calls in progress against\n"
                       "  call-limit. register => lines are listed after them.",
                       show_trunks));
    regs.push_back(add({"sip", "show", "channels"}, "List SIP calls in progress",
                       "Usage: sip show channels\n"
                       "  Each SIP channel with its SIP Call-ID, direction, state (Setup, Early, Up,\n"
                       "  Hold), codec, endpoint, remote RTP address and Tandem's dialog id(s).",
                       show_channels));
    regs.push_back(add({"sip", "show", "bans"}, "List addresses banned (or close to it) for failed authentication",
                       "Usage: sip show bans", show_bans));
    regs.push_back(add({"sip", "show", "status"}, "Show the SIP stack's load and its overload guard",
                       "Usage: sip show status\n"
                       "  Dialogs alive, requests waiting for the dialplan, the UDP socket's unread\n"
                       "  queue (at the last look, each second at least), and the overload guard:\n"
                       "  whether it is refusing new calls and registrations now, and how many it\n"
                       "  refused since start. With TCP or TLS: the connections open, authenticated\n"
                       "  or not yet, and how many tcpauthtimeout and tcpauthlimit closed.",
                       show_status));
    regs.push_back(add({"sip", "unban"}, "Lift an auto-ban", "Usage: sip unban ADDRESS|all", unban, banned));
    regs.push_back(add({"sip", "qualify"}, "Send OPTIONS to an endpoint now and show the answer",
                       "Usage: sip qualify NAME\n"
                       "  Probes every registered contact (or the static host) of NAME, even with\n"
                       "  qualify=no, and waits for the answers.",
                       qualify, endpoints));
    regs.push_back(add({"sip", "set", "debug"}, "Log every SIP message in and out",
                       "Usage: sip set debug {on|off}\n"
                       "  Messages are logged at info level, with the address they came from or went to.",
                       set_debug, on_off));
    return regs;
}

}  // namespace tandem::sip
