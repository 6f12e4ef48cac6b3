#include "registrar.hpp"

#include "digest.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace tandem::sip {

namespace {

constexpr std::size_t max_contact_length = 1024;

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '%' || c == '\t' || c == '\n' || c == '\r' || c == '|')
            out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
        else
            out += c;
    }
    return out;
}

std::optional<std::string> unescape(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        unsigned v = 0;
        auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        if (ec != std::errc() || p != s.data() + i + 3) return std::nullopt;
        out += static_cast<char>(v);
        i += 2;
    }
    return out;
}

std::vector<std::string_view> split_exact(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i)
        if (i == s.size() || s[i] == sep) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    return out;
}

template <class T>
bool to_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

std::string family_of(std::string_view endpoint) {
    return std::string(registry_family) + "/" + std::string(endpoint);
}

bool same_device(const Binding& b, const ContactHeader& c) {
    if (!c.instance.empty() && !b.instance.empty()) return b.instance == c.instance;
    return b.contact == c.uri;
}

}  // namespace

std::string Binding::store_key() const {
    return digest_hash(DigestAlgorithm::sha256, contact).substr(0, 16);
}

// Version 1: tab-separated fields, each %-escaped; Path entries joined by '|'.
std::string serialize_binding(const Binding& b) {
    std::string path;
    for (auto& p : b.path) {
        if (!path.empty()) path += '|';
        path += escape(p);
    }
    return fmt::format("1\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}", escape(b.endpoint), escape(b.contact),
                       escape(b.instance), escape(b.call_id), b.cseq, b.expires_at, b.registered_at, b.source.str(),
                       to_string(b.transport), escape(b.user_agent), escape(b.q), path);
}

std::optional<Binding> parse_binding(std::string_view text) {
    auto f = split_exact(text, '\t');
    if (f.size() != 13 || f[0] != "1") return std::nullopt;
    Binding b;
    auto endpoint = unescape(f[1]), contact = unescape(f[2]), instance = unescape(f[3]), call_id = unescape(f[4]),
         ua = unescape(f[10]), q = unescape(f[11]);
    if (!endpoint || !contact || !instance || !call_id || !ua || !q || endpoint->empty() || contact->empty())
        return std::nullopt;
    b.endpoint = *endpoint;
    b.contact = *contact;
    b.instance = *instance;
    b.call_id = *call_id;
    b.user_agent = *ua;
    b.q = *q;
    if (!to_number(f[5], b.cseq) || !to_number(f[6], b.expires_at) || !to_number(f[7], b.registered_at))
        return std::nullopt;
    auto src = SocketAddress::parse(f[8]);
    auto tr = parse_transport(f[9]);
    if (!src || !tr) return std::nullopt;
    b.source = *src;
    b.transport = *tr;
    if (!f[12].empty())
        for (auto p : split_exact(f[12], '|')) {
            auto v = unescape(p);
            if (!v) return std::nullopt;
            b.path.push_back(*v);
        }
    return b;
}

void Registrar::save(const Binding& b) {
    if (!store_) return;
    std::string error;
    if (!store_->put(family_of(b.endpoint), b.store_key(), serialize_binding(b), &error))
        log_.warning("cannot store the registration of {} ({}): {}", b.endpoint, b.contact, error);
}

void Registrar::erase(const Binding& b) {
    if (store_) store_->del(family_of(b.endpoint), b.store_key());
}

void Registrar::publish(const std::vector<Binding>& bindings, std::string_view status) const {
    auto* bus = events_.load();
    if (!bus) return;
    for (auto& b : bindings) bus->publish(event::PeerStatus{"SIP", b.endpoint, std::string(status), b.source.str()});
}

std::size_t Registrar::restore(const Settings& s, std::int64_t now) {
    if (!store_) return 0;
    std::size_t kept = 0, dropped = 0;
    auto prefix = "/" + std::string(registry_family) + "/";
    for (auto& [path, value] : store_->list(registry_family)) {
        auto slash = path.rfind('/');
        if (slash == std::string::npos || slash < prefix.size()) continue;
        auto family = path.substr(1, slash - 1);
        auto key = path.substr(slash + 1);
        auto b = parse_binding(value);
        const Endpoint* ep = b ? s.find(b->endpoint) : nullptr;
        if (!b || !ep || !ep->can_register() || b->expires_at <= now || family != family_of(b->endpoint) ||
            key != b->store_key()) {
            store_->del(family, key);
            ++dropped;
            continue;
        }
        std::lock_guard lock(mu_);
        auto& list = by_endpoint_[b->endpoint];
        if (std::any_of(list.begin(), list.end(), [&](const Binding& o) { return o.contact == b->contact; })) continue;
        list.push_back(std::move(*b));
        ++kept;
    }
    if (kept || dropped)
        log_.notice("restored {} registration{} from the store ({} expired or orphaned dropped)", kept,
                    kept == 1 ? "" : "s", dropped);
    return kept;
}

SipResponse Registrar::apply(const SipRequest& rq, const Endpoint& ep, const GeneralSettings& g, std::int64_t now) {
    if (rq.to_user != ep.name) {
        log_.notice("{} may not register the address of record '{}' (from {})", ep.name, rq.to_user, rq.source.str());
        return {403, "Forbidden"};
    }
    if (!ep.can_register()) {
        log_.notice("{} tried to register but is {} (from {})", ep.name,
                    ep.type == EndpointType::user ? "type=user" : "not host=dynamic", rq.source.str());
        return {403, "Forbidden"};
    }

    struct Change {
        const ContactHeader* contact;
        long long expires;
    };
    std::vector<Change> changes;
    if (rq.contact_star) {
        if (!rq.contacts.empty() || !rq.expires || *rq.expires != 0)
            return {400, "Contact * Requires Expires 0 And No Other Contact"};
    } else {
        for (auto& c : rq.contacts) {
            if (c.uri.empty() || c.uri.size() > max_contact_length) return {400, "Bad Contact"};
            long long e = c.expires ? *c.expires : rq.expires ? *rq.expires : g.defaultexpiry.count();
            if (e < 0) return {400, "Bad Expires"};
            if (e > 0 && e < g.minexpiry.count()) {
                SipResponse r(423, "Interval Too Brief");
                r.add("Min-Expires", std::to_string(g.minexpiry.count()));
                return r;
            }
            changes.push_back({&c, std::min<long long>(e, g.maxexpiry.count())});
        }
    }

    std::vector<std::string> notes;            // logged once the lock is released
    std::vector<Binding> registered, removed;  // published once the lock is released
    SipResponse ok(200, "OK");
    {
        std::lock_guard lock(mu_);
        auto& list = by_endpoint_[ep.name];
        if (rq.contact_star) {
            for (auto& b : list) {
                erase(b);
                notes.push_back(fmt::format("{} unregistered {} (Contact: *)", ep.name, b.contact));
            }
            removed.insert(removed.end(), list.begin(), list.end());
            list.clear();
        }
        // RFC 3261 §10.3 step 7: a request older than the binding it touches fails whole.
        for (auto& ch : changes)
            for (auto& b : list)
                if (same_device(b, *ch.contact) && b.call_id == rq.call_id && rq.cseq <= b.cseq)
                    return {500, "Request Out Of Order"};

        std::vector<std::string> touched;
        for (auto& ch : changes) {
            auto it =
                std::find_if(list.begin(), list.end(), [&](const Binding& b) { return same_device(b, *ch.contact); });
            if (ch.expires == 0) {
                if (it != list.end()) {
                    erase(*it);
                    notes.push_back(fmt::format("{} unregistered {}", ep.name, it->contact));
                    removed.push_back(std::move(*it));
                    list.erase(it);
                }
                continue;
            }
            bool fresh = it == list.end();
            if (fresh) {
                list.emplace_back();
                it = std::prev(list.end());
            } else if (it->contact != ch.contact->uri) {
                erase(*it);  // the device moved: its stored key follows the contact
            }
            auto& b = *it;
            b.endpoint = ep.name;
            b.contact = ch.contact->uri;
            b.instance = ch.contact->instance;
            b.call_id = rq.call_id;
            b.cseq = rq.cseq;
            b.expires_at = now + ch.expires;
            b.registered_at = now;
            b.source = rq.source;
            b.transport = rq.transport;
            b.user_agent = rq.user_agent;
            b.q = ch.contact->q;
            b.path = rq.path;
            save(b);
            touched.push_back(b.contact);
            if (fresh) registered.push_back(b);
            if (fresh)
                notes.push_back(fmt::format("{} registered {} from {}/{} for {} s ({})", ep.name, b.contact,
                                            b.source.str(), to_string(b.transport), ch.expires,
                                            b.user_agent.empty() ? "no User-Agent" : b.user_agent));
        }

        // maxcontacts: the bindings closest to expiry make room, this request's last.
        while (static_cast<int>(list.size()) > ep.max_contacts) {
            auto victim = list.end();
            for (auto it = list.begin(); it != list.end(); ++it) {
                bool mine = std::find(touched.begin(), touched.end(), it->contact) != touched.end();
                bool victim_mine =
                    victim != list.end() && std::find(touched.begin(), touched.end(), victim->contact) != touched.end();
                if (victim == list.end() || (victim_mine && !mine) ||
                    (victim_mine == mine && it->expires_at < victim->expires_at))
                    victim = it;
            }
            erase(*victim);
            notes.push_back(
                fmt::format("{} has more than {} contacts: dropped {}", ep.name, ep.max_contacts, victim->contact));
            removed.push_back(std::move(*victim));
            list.erase(victim);
        }

        for (auto& b : list) {
            auto left = std::max<std::int64_t>(b.expires_at - now, 0);
            std::string value = "<" + b.contact + ">;expires=" + std::to_string(left);
            if (!b.instance.empty()) value += ";+sip.instance=\"" + b.instance + "\"";
            ok.add("Contact", std::move(value));
        }
        if (list.empty()) by_endpoint_.erase(ep.name);
    }
    ok.add("Date", http_date(now));
    if (!rq.path.empty() && rq.supports("path"))
        for (auto& p : rq.path) ok.add("Path", p);
    for (auto& n : notes) log_.info("{}", n);
    publish(removed, "Unregistered");
    publish(registered, "Registered");
    return ok;
}

std::vector<Binding> Registrar::expire(std::int64_t now) {
    std::vector<Binding> gone;
    std::unique_lock lock(mu_);
    for (auto it = by_endpoint_.begin(); it != by_endpoint_.end();) {
        auto& list = it->second;
        for (auto b = list.begin(); b != list.end();) {
            if (b->expires_at <= now) {
                erase(*b);
                gone.push_back(std::move(*b));
                b = list.erase(b);
            } else {
                ++b;
            }
        }
        it = list.empty() ? by_endpoint_.erase(it) : std::next(it);
    }
    lock.unlock();
    publish(gone, "Unregistered");
    return gone;
}

std::vector<Binding> Registrar::prune(const Settings& s) {
    std::vector<Binding> gone;
    std::unique_lock lock(mu_);
    for (auto it = by_endpoint_.begin(); it != by_endpoint_.end();) {
        const Endpoint* ep = s.find(it->first);
        if (ep && ep->can_register()) {
            ++it;
            continue;
        }
        for (auto& b : it->second) {
            erase(b);
            gone.push_back(b);
        }
        it = by_endpoint_.erase(it);
    }
    lock.unlock();
    publish(gone, "Unregistered");
    return gone;
}

std::vector<Binding> Registrar::bindings(std::string_view endpoint) const {
    std::lock_guard lock(mu_);
    auto it = by_endpoint_.find(endpoint);
    return it == by_endpoint_.end() ? std::vector<Binding>{} : it->second;
}

std::vector<Binding> Registrar::all() const {
    std::lock_guard lock(mu_);
    std::vector<Binding> out;
    for (auto& [name, list] : by_endpoint_) out.insert(out.end(), list.begin(), list.end());
    return out;
}

std::size_t Registrar::count() const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (auto& [name, list] : by_endpoint_) n += list.size();
    return n;
}

}  // namespace tandem::sip
