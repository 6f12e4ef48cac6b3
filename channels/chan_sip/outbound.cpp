#include "outbound.hpp"

#include <fmt/format.h>

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

std::optional<OutboundRegistration> parse_register_line(std::string_view text, std::string& error) {
    OutboundRegistration r;
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
