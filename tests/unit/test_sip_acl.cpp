// chan_sip: addresses, CIDR ranges and permit/deny lists.
#include <doctest/doctest.h>

#include "chan_sip/net.hpp"

using namespace tandem::sip;

namespace {
IpAddress ip(const char* s) {
    auto a = IpAddress::parse(s);
    REQUIRE(a.has_value());
    return *a;
}
Cidr cidr(const char* s) {
    auto c = Cidr::parse(s);
    REQUIRE(c.has_value());
    return *c;
}
}  // namespace

TEST_CASE("sip acl: addresses parse and print, IPv4-mapped IPv6 is IPv4") {
    CHECK(ip("192.0.2.1").is_v4());
    CHECK(ip("192.0.2.1").str() == "192.0.2.1");
    CHECK(ip("192.0.2.1").v4_host_order() == 0xC0000201u);
    CHECK(ip("2001:db8::1").is_v6());
    CHECK(ip("[2001:db8::1]").str() == "2001:db8::1");
    CHECK(ip("2001:db8::1").uri_host() == "[2001:db8::1]");
    CHECK(ip("::ffff:192.0.2.1") == ip("192.0.2.1"));
    CHECK(ip("0.0.0.0").is_unspecified());
    CHECK(ip("::").is_unspecified());
    CHECK_FALSE(ip("127.0.0.1").is_unspecified());
    CHECK_FALSE(IpAddress::parse("").has_value());
    CHECK_FALSE(IpAddress::parse("1.2.3").has_value());
    CHECK_FALSE(IpAddress::parse("256.1.1.1").has_value());
    CHECK_FALSE(IpAddress::parse("example.com").has_value());
    CHECK_FALSE(IpAddress::parse("1.2.3.4 ").has_value());
}

TEST_CASE("sip acl: socket addresses") {
    auto a = SocketAddress::parse("192.0.2.1:5062");
    REQUIRE(a);
    CHECK(a->ip == ip("192.0.2.1"));
    CHECK(a->port == 5062);
    CHECK(a->str() == "192.0.2.1:5062");
    auto b = SocketAddress::parse("[2001:db8::2]:5060");
    REQUIRE(b);
    CHECK(b->str() == "[2001:db8::2]:5060");
    CHECK(SocketAddress::parse("192.0.2.1", 5060)->port == 5060);
    CHECK(SocketAddress::parse("::1", 5060)->ip == ip("::1"));
    CHECK_FALSE(SocketAddress::parse("192.0.2.1").has_value());
    CHECK_FALSE(SocketAddress::parse("192.0.2.1:0").has_value());
    CHECK_FALSE(SocketAddress::parse("192.0.2.1:65536").has_value());
    CHECK_FALSE(SocketAddress::parse("192.0.2.1:").has_value());
    CHECK_FALSE(SocketAddress::parse("[2001:db8::2]5060").has_value());
}

TEST_CASE("sip acl: CIDR ranges with prefix lengths or netmasks") {
    auto c = cidr("192.168.1.77/24");
    CHECK(c.str() == "192.168.1.0/24");
    CHECK(c.contains(ip("192.168.1.1")));
    CHECK(c.contains(ip("192.168.1.255")));
    CHECK_FALSE(c.contains(ip("192.168.2.1")));
    CHECK_FALSE(c.contains(ip("2001:db8::1")));

    CHECK(cidr("10.0.0.0/255.0.0.0").prefix() == 8);
    CHECK(cidr("10.0.0.0/255.0.0.0").contains(ip("10.200.3.4")));
    CHECK_FALSE(Cidr::parse("10.0.0.0/255.0.255.0").has_value());  // not contiguous
    CHECK_FALSE(Cidr::parse("10.0.0.0/33").has_value());
    CHECK_FALSE(Cidr::parse("10.0.0.0/").has_value());
    CHECK_FALSE(Cidr::parse("nope/8").has_value());

    CHECK(cidr("192.0.2.9").prefix() == 32);
    CHECK(cidr("192.0.2.9").contains(ip("192.0.2.9")));
    CHECK_FALSE(cidr("192.0.2.9").contains(ip("192.0.2.10")));

    CHECK(cidr("0.0.0.0/0").contains(ip("203.0.113.5")));
    CHECK(cidr("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
    CHECK_FALSE(cidr("2001:db8::/32").contains(ip("2001:db9::1")));
    CHECK(cidr("2001:db8:1:2::/63").contains(ip("2001:db8:1:3::1")));
    CHECK_FALSE(cidr("2001:db8:1:2::/63").contains(ip("2001:db8:1:4::1")));
    CHECK(cidr("::ffff:10.1.2.3/104").str() == "10.0.0.0/8");  // a mapped range is the IPv4 range
    CHECK_FALSE(Cidr::parse("::ffff:10.1.2.3/64").has_value());
    CHECK(cidr("10.1.2.0/24").contains(ip("::ffff:10.1.2.3")));  // mapped sources match v4 rules
}

TEST_CASE("sip acl: permit/deny, last match wins, default allow") {
    Acl none;
    CHECK(none.allows(ip("203.0.113.1")));

    Acl office;
    office.add(Acl::Sense::deny, cidr("0.0.0.0/0"));
    office.add(Acl::Sense::permit, cidr("192.168.1.0/24"));
    CHECK(office.allows(ip("192.168.1.20")));
    CHECK_FALSE(office.allows(ip("192.168.2.20")));
    CHECK_FALSE(office.allows(ip("203.0.113.1")));
    CHECK(office.allows(ip("2001:db8::1")));  // no IPv6 rule matched
    CHECK(office.str() == "deny 0.0.0.0/0, permit 192.168.1.0/24");

    Acl carve;
    carve.add(Acl::Sense::permit, cidr("10.0.0.0/8"));
    carve.add(Acl::Sense::deny, cidr("10.66.0.0/16"));
    CHECK(carve.allows(ip("10.1.1.1")));
    CHECK_FALSE(carve.allows(ip("10.66.1.1")));
}
