#include "net.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace tandem::sip {

namespace {

bool is_mapped_v4(const std::array<std::uint8_t, 16>& b) {
    for (int i = 0; i < 10; ++i)
        if (b[static_cast<std::size_t>(i)] != 0) return false;
    return b[10] == 0xff && b[11] == 0xff;
}

std::optional<int> parse_int(std::string_view s, int lo, int hi) {
    int v = 0;
    if (s.empty()) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
    return v;
}

// Number of leading one bits of a contiguous netmask, or nullopt.
std::optional<int> mask_prefix(const IpAddress& mask) {
    std::size_t n = mask.is_v4() ? 4 : 16;
    int prefix = 0;
    bool zero_seen = false;
    for (std::size_t i = 0; i < n; ++i) {
        for (int bit = 7; bit >= 0; --bit) {
            bool one = (mask.bytes()[i] >> bit) & 1;
            if (one && zero_seen) return std::nullopt;
            if (one)
                ++prefix;
            else
                zero_seen = true;
        }
    }
    return prefix;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    if (text.empty() || text.size() > 64) return std::nullopt;
    char buf[65];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    in_addr a4{};
    if (::inet_pton(AF_INET, buf, &a4) == 1) return v4(ntohl(a4.s_addr));
    in6_addr a6{};
    if (::inet_pton(AF_INET6, buf, &a6) == 1) {
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &a6, 16);
        return v6(b);
    }
    return std::nullopt;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
    IpAddress a;
    a.family_ = Family::v4;
    a.bytes_[0] = static_cast<std::uint8_t>(host_order >> 24);
    a.bytes_[1] = static_cast<std::uint8_t>(host_order >> 16);
    a.bytes_[2] = static_cast<std::uint8_t>(host_order >> 8);
    a.bytes_[3] = static_cast<std::uint8_t>(host_order);
    return a;
}

IpAddress IpAddress::v6(const std::array<std::uint8_t, 16>& bytes) {
    if (is_mapped_v4(bytes))
        return v4(static_cast<std::uint32_t>(bytes[12]) << 24 | static_cast<std::uint32_t>(bytes[13]) << 16 |
                  static_cast<std::uint32_t>(bytes[14]) << 8 | bytes[15]);
    IpAddress a;
    a.family_ = Family::v6;
    a.bytes_ = bytes;
    return a;
}

bool IpAddress::is_unspecified() const {
    std::size_t n = is_v4() ? 4 : 16;
    for (std::size_t i = 0; i < n; ++i)
        if (bytes_[i]) return false;
    return valid();
}

std::uint32_t IpAddress::v4_host_order() const {
    return static_cast<std::uint32_t>(bytes_[0]) << 24 | static_cast<std::uint32_t>(bytes_[1]) << 16 |
           static_cast<std::uint32_t>(bytes_[2]) << 8 | bytes_[3];
}

std::string IpAddress::str() const {
    char buf[INET6_ADDRSTRLEN] = "";
    if (is_v4())
        ::inet_ntop(AF_INET, bytes_.data(), buf, sizeof buf);
    else if (is_v6())
        ::inet_ntop(AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
}

std::string IpAddress::uri_host() const {
    return is_v6() ? "[" + str() + "]" : str();
}

std::optional<SocketAddress> SocketAddress::parse(std::string_view text, std::optional<std::uint16_t> default_port) {
    SocketAddress out;
    std::string_view host = text, port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = text.substr(0, close + 1);
        auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
            if (port.empty()) return std::nullopt;
        }
    } else if (auto colon = text.rfind(':'); colon != std::string_view::npos && text.find(':') == colon) {
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (port.empty()) return std::nullopt;
    }
    auto ip = IpAddress::parse(host);
    if (!ip) return std::nullopt;
    out.ip = *ip;
    if (port.empty()) {
        if (!default_port) return std::nullopt;
        out.port = *default_port;
    } else {
        auto p = parse_int(port, 1, 65535);
        if (!p) return std::nullopt;
        out.port = static_cast<std::uint16_t>(*p);
    }
    return out;
}

std::string SocketAddress::str() const {
    return ip.uri_host() + ":" + std::to_string(port);
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
    auto slash = text.find('/');
    auto ip = IpAddress::parse(text.substr(0, slash));
    if (!ip) return std::nullopt;
    // An IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) is the IPv4 range it maps.
    bool mapped = ip->is_v4() && text.substr(0, slash).find(':') != std::string_view::npos;
    int width = ip->is_v4() ? 32 : 128;
    int prefix = width;
    if (slash != std::string_view::npos) {
        auto rest = text.substr(slash + 1);
        if (auto n = parse_int(rest, mapped ? 96 : 0, mapped ? 128 : width)) {
            prefix = mapped ? *n - 96 : *n;
        } else {
            auto mask = IpAddress::parse(rest);
            if (!mask || mask->family() != ip->family()) return std::nullopt;
            auto p = mask_prefix(*mask);
            if (!p) return std::nullopt;
            prefix = *p;
        }
    }
    Cidr c;
    auto bytes = ip->bytes();
    for (int i = 0; i < 16; ++i) {
        int keep = prefix - i * 8;
        auto& b = bytes[static_cast<std::size_t>(i)];
        if (keep <= 0)
            b = 0;
        else if (keep < 8)
            b = static_cast<std::uint8_t>(b & (0xff << (8 - keep)));
    }
    c.network_ = ip->is_v4() ? IpAddress::v4(static_cast<std::uint32_t>(bytes[0]) << 24 |
                                             static_cast<std::uint32_t>(bytes[1]) << 16 |
                                             static_cast<std::uint32_t>(bytes[2]) << 8 | bytes[3])
                             : IpAddress::v6(bytes);
    c.prefix_ = prefix;
    return c;
}

bool Cidr::contains(const IpAddress& a) const {
    if (a.family() != network_.family()) return false;
    int left = prefix_;
    for (std::size_t i = 0; left > 0; ++i, left -= 8) {
        std::uint8_t mask = left >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - left));
        if ((a.bytes()[i] & mask) != network_.bytes()[i]) return false;
    }
    return true;
}

std::string Cidr::str() const {
    return network_.str() + "/" + std::to_string(prefix_);
}

bool Acl::allows(const IpAddress& a) const {
    bool allowed = true;
    for (auto& r : rules_)
        if (r.range.contains(a)) allowed = r.sense == Sense::permit;
    return allowed;
}

std::string Acl::str() const {
    std::string out;
    for (auto& r : rules_) {
        if (!out.empty()) out += ", ";
        out += r.sense == Sense::permit ? "permit " : "deny ";
        out += r.range.str();
    }
    return out;
}

}  // namespace tandem::sip

std::size_t std::hash<tandem::sip::IpAddress>::operator()(const tandem::sip::IpAddress& a) const noexcept {
    std::size_t h = static_cast<std::size_t>(a.family()) * 1469598103934665603ull;
    for (auto b : a.bytes()) h = (h ^ b) * 1099511628211ull;
    return h;
}
