#include "qualify.hpp"

#include <fmt/format.h>

namespace tandem::sip {

std::string_view to_string(Reachability r) {
    switch (r) {
        case Reachability::unknown:
            return "unknown";
        case Reachability::reachable:
            return "reachable";
        case Reachability::lagged:
            return "lagged";
        case Reachability::unreachable:
            return "unreachable";
    }
    return "unknown";
}

namespace {

// The host part of a contact URI ("sip:1001@192.0.2.1:5062;ob" -> 192.0.2.1).
std::optional<IpAddress> contact_host(std::string_view uri) {
    auto colon = uri.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto rest = uri.substr(colon + 1);
    if (auto at = rest.find('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
    if (rest.empty()) return std::nullopt;
    std::size_t end = rest.find_first_of(":;>?");
    if (rest.front() == '[') {
        end = rest.find(']');
        if (end == std::string_view::npos) return std::nullopt;
        ++end;
    }
    return IpAddress::parse(rest.substr(0, end));
}

// Whether requests to this binding go to where it registered from rather than
// to its contact: always with force_rport, and with auto_force_rport when the
// contact names another address than the one the REGISTER came from.
bool send_to_source(const Endpoint& e, const Binding& b) {
    if (!e.nat.force_rport) return false;
    if (!e.nat.automatic) return true;
    auto host = contact_host(b.contact);
    return !host || *host != b.source.ip;
}

}  // namespace

std::vector<QualifyTarget> QualifyTable::targets_of(const Endpoint& e, const std::vector<Binding>& bindings) {
    std::vector<QualifyTarget> out;
    if (e.dynamic) {
        for (auto& b : bindings) {
            if (b.endpoint != e.name) continue;
            QualifyTarget t;
            t.key = e.name + " " + b.contact;
            t.endpoint = e.name;
            t.uri = b.contact;
            if (b.path.empty() && send_to_source(e, b)) t.send_to = b.source;
            t.transport = b.transport;
            t.route = b.path;
            if (!e.outboundproxy.empty()) t.route.insert(t.route.begin(), e.outboundproxy);
            t.limit = e.qualify.max;
            out.push_back(std::move(t));
        }
    } else if (!e.host.empty()) {
        QualifyTarget t;
        auto host = e.host_ip ? e.host_ip->uri_host() : e.host;
        t.uri = fmt::format("sip:{}:{}", host, e.port);
        t.transport = e.transport();
        if (t.transport != Transport::udp) t.uri += ";transport=" + std::string(to_string(t.transport));
        if (!e.outboundproxy.empty()) t.route.push_back(e.outboundproxy);
        t.key = e.name + " " + t.uri;
        t.endpoint = e.name;
        t.limit = e.qualify.max;
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<QualifyTarget> QualifyTable::due(const Settings& s, const std::vector<Binding>& bindings,
                                             Clock::time_point now) {
    std::lock_guard lock(mu_);
    std::set<std::string, std::less<>> live;
    std::vector<QualifyTarget> out;
    for (auto& [name, e] : s.endpoints) {
        bool manual = requested_.count(name) != 0;
        if (!e.qualify.enabled && !manual) continue;
        for (auto& t : targets_of(e, bindings)) {
            live.insert(t.key);
            auto it = entries_.find(t.key);
            if (it == entries_.end()) {
                it = entries_.emplace(t.key, Entry{}).first;
                it->second.next_due = now;
                it->second.manual = !e.qualify.enabled;
            }
            auto& entry = it->second;
            entry.status.target = t;
            if (manual) entry.next_due = now;
            if (entry.in_flight || entry.next_due > now) continue;
            entry.in_flight = true;
            entry.next_due = now + s.general.qualifyfreq;
            out.push_back(t);
        }
    }
    requested_.clear();
    // Targets that went away (unregistered, qualify turned off) are forgotten;
    // a one-off probe stays a minute so `sip qualify` can show its result.
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto& e = it->second;
        bool keep =
            live.count(it->first) || (e.manual && (e.in_flight || now - e.reported_at < std::chrono::minutes(1)));
        it = keep ? std::next(it) : entries_.erase(it);
    }
    return out;
}

std::optional<std::string> QualifyTable::report(const std::string& key, std::optional<std::chrono::milliseconds> rtt,
                                                Clock::time_point now) {
    event::PeerStatus change;
    auto line = report_locked(key, rtt, now, change);
    // Subscribers run after the lock is released: one may well ask for the table.
    if (auto* bus = events_.load(); line && bus) bus->publish(std::move(change));
    return line;
}

std::optional<std::string> QualifyTable::report_locked(const std::string& key,
                                                       std::optional<std::chrono::milliseconds> rtt,
                                                       Clock::time_point now, event::PeerStatus& change) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    auto& e = it->second;
    e.in_flight = false;
    e.reported_at = now;
    auto before = e.status.state;
    e.status.rtt = rtt;
    e.status.state = !rtt                           ? Reachability::unreachable
                     : *rtt > e.status.target.limit ? Reachability::lagged
                                                    : Reachability::reachable;
    ++e.status.reports;
    if (before == e.status.state) return std::nullopt;
    if (before == Reachability::unknown && e.status.state == Reachability::reachable && e.manual) return std::nullopt;
    auto& t = e.status.target;
    change = event::PeerStatus{"SIP", t.endpoint,
                               !rtt                                     ? "Unreachable"
                               : e.status.state == Reachability::lagged ? "Lagged"
                                                                        : "Reachable",
                               t.uri, rtt ? static_cast<int>(rtt->count()) : -1};
    if (!rtt) return fmt::format("{} ({}) is UNREACHABLE", t.endpoint, t.uri);
    return fmt::format("{} ({}) is {} ({} ms)", t.endpoint, t.uri,
                       e.status.state == Reachability::lagged ? "LAGGED" : "reachable", rtt->count());
}

void QualifyTable::request(std::string_view endpoint) {
    std::lock_guard lock(mu_);
    requested_.emplace(endpoint);
}

void QualifyTable::forget_in_flight() {
    std::lock_guard lock(mu_);
    for (auto& [k, e] : entries_) e.in_flight = false;
}

std::vector<QualifyStatus> QualifyTable::status(std::string_view endpoint) const {
    std::lock_guard lock(mu_);
    std::vector<QualifyStatus> out;
    for (auto& [k, e] : entries_)
        if (e.status.target.endpoint == endpoint) out.push_back(e.status);
    return out;
}

std::string QualifyTable::summary(std::string_view endpoint) const {
    auto list = status(endpoint);
    const QualifyStatus* best = nullptr;
    for (auto& s : list) {
        if (s.state == Reachability::unknown) continue;
        if (!best || s.state < best->state || (s.state == best->state && s.rtt && best->rtt && *s.rtt < *best->rtt))
            best = &s;
    }
    if (!best) return list.empty() ? "Unmonitored" : "Unknown";
    switch (best->state) {
        case Reachability::reachable:
            return fmt::format("OK ({} ms)", best->rtt->count());
        case Reachability::lagged:
            return fmt::format("LAGGED ({} ms)", best->rtt->count());
        case Reachability::unreachable:
            return "UNREACHABLE";
        case Reachability::unknown:
            break;
    }
    return "Unknown";
}

}  // namespace tandem::sip
