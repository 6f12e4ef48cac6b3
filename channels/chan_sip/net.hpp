// Addresses, CIDR ranges and permit/deny lists for chan_sip.
//
// Plain values with no I/O: the registrar, the auto-ban and the socket filter
// all compare addresses through these types. An IPv4-mapped IPv6 address
// (::ffff:192.0.2.1) is stored as the IPv4 address it carries, so a dual-stack
// socket and an IPv4 rule agree on who is who.
//
// Threading: values; safe to copy and share read-only.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::sip {

class IpAddress {
public:
    enum class Family : std::uint8_t { none, v4, v6 };

    IpAddress() = default;
    // "192.0.2.1", "2001:db8::1", "[2001:db8::1]". nullopt for anything else.
    static std::optional<IpAddress> parse(std::string_view text);
    // `host_order` as in 0xC0000201 for 192.0.2.1.
    static IpAddress v4(std::uint32_t host_order);
    // 16 bytes in network order; a mapped IPv4 address becomes IPv4.
    static IpAddress v6(const std::array<std::uint8_t, 16>& bytes);

    Family family() const { return family_; }
    bool is_v4() const { return family_ == Family::v4; }
    bool is_v6() const { return family_ == Family::v6; }
    bool valid() const { return family_ != Family::none; }
    bool is_unspecified() const;  // 0.0.0.0 or ::
    // Network order; an IPv4 address uses the first 4 bytes.
    const std::array<std::uint8_t, 16>& bytes() const { return bytes_; }
    std::uint32_t v4_host_order() const;
    // "192.0.2.1" or "2001:db8::1" (no brackets).
    std::string str() const;
    // "192.0.2.1" or "[2001:db8::1]", as a host part of a URI.
    std::string uri_host() const;

    friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

private:
    Family family_ = Family::none;
    std::array<std::uint8_t, 16> bytes_{};
};

// An address and a port, as seen on the wire.
struct SocketAddress {
    IpAddress ip;
    std::uint16_t port = 0;

    // "192.0.2.1:5060", "[2001:db8::1]:5060"; the port is optional when
    // `default_port` is given.
    static std::optional<SocketAddress> parse(std::string_view text, std::optional<std::uint16_t> default_port = {});
    std::string str() const;

    friend auto operator<=>(const SocketAddress&, const SocketAddress&) = default;
};

// "10.0.0.0/8", "10.0.0.0/255.0.0.0", "2001:db8::/32", or a bare address
// (a /32 or /128).
class Cidr {
public:
    static std::optional<Cidr> parse(std::string_view text);
    bool contains(const IpAddress& a) const;
    const IpAddress& network() const { return network_; }
    int prefix() const { return prefix_; }
    std::string str() const;

private:
    IpAddress network_;  // host bits cleared
    int prefix_ = 0;
};

// Asterisk's permit/deny semantics: rules are tried in order, the last one
// that matches decides, and an address no rule matches is allowed. So
// `deny=0.0.0.0/0` then `permit=192.168.1.0/24` admits only that subnet.
class Acl {
public:
    enum class Sense : std::uint8_t { permit, deny };
    struct Rule {
        Sense sense;
        Cidr range;
    };

    void add(Sense sense, Cidr range) { rules_.push_back({sense, range}); }
    bool allows(const IpAddress& a) const;
    bool empty() const { return rules_.empty(); }
    const std::vector<Rule>& rules() const { return rules_; }
    // "deny 0.0.0.0/0, permit 192.168.1.0/24"
    std::string str() const;

private:
    std::vector<Rule> rules_;
};

}  // namespace tandem::sip

template <>
struct std::hash<tandem::sip::IpAddress> {
    std::size_t operator()(const tandem::sip::IpAddress& a) const noexcept;
};
