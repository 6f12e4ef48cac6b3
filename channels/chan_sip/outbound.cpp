#include "outbound.hpp"

#include "text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tandem::sip {

namespace {

bool safe(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) <= ' ' || c == '"' || c == '<' || c == '>' || c == '\\' || c == ';' ||
            c == ',')
            return false;
    return true;
}

}  // namespace

std::string OutboundRegistration::key() const {
    return fmt::format("{}@{}:{}", user, host, port);
}

namespace {

// A "name://" at the front of `text` (letters only), or "" when there is none.
std::string_view scheme_of(std::string_view text) {
    auto sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) return {};
    for (char c : text.substr(0, sep))
        if (!std::isalpha(static_cast<unsigned char>(c))) return {};
    return text.substr(0, sep);
}

// "udp://", "tcp://" or "tls://" at the front of `text`: taken off and
// returned. `unknown` is set when another name:// is there.
std::optional<Transport> take_scheme(std::string_view& text, bool& unknown) {
    auto scheme = scheme_of(text);
    unknown = false;
    if (scheme.empty()) return std::nullopt;
    auto t = parse_transport(scheme);
    if (t)
        text.remove_prefix(scheme.size() + 3);
    else
        unknown = true;
    return t;
}

// host, host:port or [v6]:port, each part checked; false when malformed.
bool valid_host_port(std::string_view hp) {
    if (hp.empty()) return false;
    std::string_view host = hp, port;
    if (hp.front() == '[') {
        auto close = hp.find(']');
        if (close == std::string_view::npos) return false;
        host = hp.substr(1, close - 1);
        auto rest = hp.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return false;
            port = rest.substr(1);
            if (port.empty()) return false;
        }
        for (char c : host)
            if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
    } else {
        auto colon = hp.find(':');
        if (colon != std::string_view::npos) {
            host = hp.substr(0, colon);
            port = hp.substr(colon + 1);
            if (port.empty()) return false;
        }
        for (char c : host)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') return false;
    }
    if (host.empty()) return false;
    if (!port.empty()) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
        if (ec != std::errc() || end != port.data() + port.size() || v == 0 || v > 65535) return false;
    }
    return true;
}

}  // namespace

std::string sip_uri(std::string_view host_port, Transport t) {
    if (t == Transport::udp) return fmt::format("sip:{}", host_port);
    return fmt::format("sip:{};transport={}", host_port, to_string(t));
}

std::optional<OutboundProxy> parse_outbound_proxy(std::string_view text, std::string& error) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    OutboundProxy out;
    if (text.starts_with("sip:") || text.starts_with("sips:")) {
        // A URI as written; only what would break the Route header is refused.
        for (char c : text)
            if (static_cast<unsigned char>(c) <= ' ' || c == '"' || c == '<' || c == '>' || c == ',' || c == '\\') {
                error = fmt::format("outboundproxy: unusable character in '{}'", text);
                return std::nullopt;
            }
        auto rest = text.substr(text.find(':') + 1);
        auto host_port = rest.substr(0, rest.find(';'));
        if (auto at = host_port.rfind('@'); at != std::string_view::npos) host_port.remove_prefix(at + 1);
        if (!valid_host_port(host_port)) {
            error = fmt::format("outboundproxy: expected sip:host[:port][;params], not '{}'", text);
            return std::nullopt;
        }
        if (text.starts_with("sips:")) out.transport = Transport::tls;
        bool lr = false;
        for (auto params = rest.substr(std::min(rest.size(), host_port.size())); !params.empty();) {
            params.remove_prefix(1);  // the ';'
            auto param = params.substr(0, params.find(';'));
            params.remove_prefix(param.size());
            auto eq = param.find('=');
            auto name = param.substr(0, eq);
            if (iequals(name, "lr")) lr = true;
            if (!iequals(name, "transport") || eq == std::string_view::npos) continue;
            auto t = parse_transport(param.substr(eq + 1));
            if (!t) {
                error = fmt::format("outboundproxy: unknown transport in '{}' (udp, tcp, tls)", text);
                return std::nullopt;
            }
            out.transport = *t;
        }
        out.route = fmt::format("<{}{}>", text, lr ? "" : ";lr");
        return out;
    }
    bool unknown = false;
    auto t = take_scheme(text, unknown);
    if (unknown) {
        error = fmt::format("outboundproxy: unknown transport in '{}' (udp://, tcp://, tls://)", text);
        return std::nullopt;
    }
    if (!valid_host_port(text)) {
        error = fmt::format("outboundproxy: expected [udp://|tcp://|tls://]host[:port], not '{}'", text);
        return std::nullopt;
    }
    out.transport = t.value_or(Transport::udp);
    out.route = fmt::format("<{};lr>", sip_uri(text, out.transport));
    return out;
}

std::optional<OutboundRegistration> parse_register_line(std::string_view text, std::string& error) {
    OutboundRegistration r;
    bool unknown = false;
    if (auto t = take_scheme(text, unknown)) {
        r.transport = *t;
        if (*t == Transport::tls) r.port = 5061;
    } else if (unknown) {
        error = "register: unknown transport (udp://, tcp://, tls://)";
        return std::nullopt;
    }
    // The secret may contain '@' or '/': split at the last '@'.
    auto at = text.rfind('@');
    if (at == std::string_view::npos || at == 0) {
        error = "register: expected user[:secret[:authuser]]@host[:port][/contact]";
        return std::nullopt;
    }
    auto credentials = text.substr(0, at);
    auto rest = text.substr(at + 1);
    auto colon = credentials.find(':');
    r.user = std::string(credentials.substr(0, colon));
    if (colon != std::string_view::npos) {
        auto more = credentials.substr(colon + 1);
        auto second = more.rfind(':');
        if (second != std::string_view::npos) {
            r.secret = std::string(more.substr(0, second));
            r.auth_user = std::string(more.substr(second + 1));
        } else {
            r.secret = std::string(more);
        }
    }
    auto slash = rest.find('/');
    if (slash != std::string_view::npos) {
        r.contact_user = std::string(rest.substr(slash + 1));
        rest = rest.substr(0, slash);
    }
    // A bracketed IPv6 address keeps its colons: the port follows "]:".
    auto close = rest.rfind(']');
    auto port_colon = rest.rfind(':');
    if (port_colon != std::string_view::npos && (close == std::string_view::npos || port_colon > close) &&
        (close != std::string_view::npos || rest.find(':') == port_colon)) {
        auto p = rest.substr(port_colon + 1);
        unsigned v = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
        if (ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535) {
            error = fmt::format("register: bad port '{}'", p);
            return std::nullopt;
        }
        r.port = static_cast<std::uint16_t>(v);
        rest = rest.substr(0, port_colon);
    }
    r.host = std::string(rest);
    if (r.auth_user.empty()) r.auth_user = r.user;
    if (r.contact_user.empty()) r.contact_user = r.user;
    if (r.user.empty() || r.host.empty() || !safe(r.user) || !safe(r.host) || !safe(r.auth_user) ||
        !safe(r.contact_user) || r.secret.find_first_of("\"\r\n\\") != std::string::npos) {
        error = "register: empty or unusable user, host or contact";
        return std::nullopt;
    }
    return r;
}

std::string_view to_string(RegistryState s) {
    switch (s) {
        case RegistryState::unregistered:
            return "Unregistered";
        case RegistryState::request_sent:
            return "Request Sent";
        case RegistryState::auth_sent:
            return "Auth. Sent";
        case RegistryState::registered:
            return "Registered";
        case RegistryState::rejected:
            return "Rejected";
        case RegistryState::timeout:
            return "Timeout";
        case RegistryState::failed:
            return "Failed";
    }
    return "Unregistered";
}

std::string_view registry_event_status(RegistryState s) {
    switch (s) {
        case RegistryState::registered:
            return "Registered";
        case RegistryState::rejected:
            return "Rejected";
        case RegistryState::timeout:
        case RegistryState::failed:
            return "Failed";
        case RegistryState::unregistered:
            return "Unregistered";
        case RegistryState::request_sent:
        case RegistryState::auth_sent:
            break;
    }
    return {};
}

std::optional<event::Registry> RegistryEvents::change(const RegistryEntry& e) {
    auto status = registry_event_status(e.state);
    if (status.empty()) return std::nullopt;
    {
        std::lock_guard lock(mu_);
        auto it = last_.find(e.key);
        if (e.state == RegistryState::unregistered) {
            if (it == last_.end()) return std::nullopt;
            last_.erase(it);
        } else if (it != last_.end() && it->second == status) {
            return std::nullopt;
        } else {
            last_.insert_or_assign(e.key, std::string(status));
        }
    }
    std::string cause;
    if (e.state != RegistryState::registered && e.state != RegistryState::unregistered && e.status >= 300)
        cause = e.reason.empty() ? std::to_string(e.status) : fmt::format("{} {}", e.status, e.reason);
    return event::Registry{"SIP", e.endpoint, e.host, e.user, std::string(status), std::move(cause)};
}

}  // namespace tandem::sip
