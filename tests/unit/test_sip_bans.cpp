// chan_sip: auto-ban bookkeeping, and the kernel filter that enforces it.
#include <doctest/doctest.h>

#include "chan_sip/bans.hpp"
#include "chan_sip/socket_filter.hpp"
#include "udp_loopback.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace tandem::sip;
using namespace std::chrono_literals;

namespace {
IpAddress ip(const char* s) {
    return *IpAddress::parse(s);
}
BanPolicy policy(int failures, std::chrono::seconds window, std::chrono::seconds duration) {
    BanPolicy p;
    p.failures = failures;
    p.window = window;
    p.duration = duration;
    return p;
}
}  // namespace

TEST_CASE("sip bans: N failures within the window ban, for the duration") {
    BanList bans;
    bans.set_policy(policy(3, 60s, 600s));
    auto t = BanList::Clock::time_point{} + 1000s;
    auto attacker = ip("203.0.113.9");
    CHECK_FALSE(bans.record_failure(attacker, t));
    CHECK_FALSE(bans.record_failure(attacker, t + 10s));
    CHECK_FALSE(bans.banned(attacker, t + 10s));
    auto g = bans.generation();
    CHECK(bans.record_failure(attacker, t + 20s));  // the third one bans
    CHECK(bans.generation() != g);
    CHECK(bans.banned(attacker, t + 20s));
    CHECK(bans.banned(attacker, t + 619s));
    CHECK_FALSE(bans.banned(attacker, t + 620s));
    CHECK_FALSE(bans.banned(ip("203.0.113.10"), t + 20s));
    // More failures while banned change nothing.
    CHECK_FALSE(bans.record_failure(attacker, t + 30s));

    auto listed = bans.list(t + 30s);
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].ip == attacker);
    CHECK(listed[0].banned_until == t + 620s);
    CHECK(bans.banned_addresses(t + 30s) == std::vector<IpAddress>{attacker});

    g = bans.generation();
    auto lifted = bans.expire(t + 620s);
    CHECK(lifted == std::vector<IpAddress>{attacker});
    CHECK(bans.generation() != g);
    CHECK(bans.list(t + 620s).empty());
    CHECK(bans.banned_addresses(t + 620s).empty());
}

TEST_CASE("sip bans: failures outside the window do not add up") {
    BanList bans;
    bans.set_policy(policy(3, 60s, 600s));
    auto t = BanList::Clock::time_point{} + 1000s;
    auto a = ip("198.51.100.7");
    CHECK_FALSE(bans.record_failure(a, t));
    CHECK_FALSE(bans.record_failure(a, t + 30s));
    CHECK_FALSE(bans.record_failure(a, t + 61s));  // the first fell out of the window
    CHECK_FALSE(bans.banned(a, t + 61s));
    CHECK(bans.list(t + 61s).at(0).recent_failures == 2);
    CHECK(bans.record_failure(a, t + 62s));
    // Old failures are forgotten by expire() as well.
    BanList quiet;
    quiet.set_policy(policy(3, 60s, 600s));
    CHECK_FALSE(quiet.record_failure(a, t));
    quiet.expire(t + 61s);
    CHECK(quiet.list(t + 61s).empty());
}

TEST_CASE("sip bans: unban one or all, manual bans, exemptions, disabled") {
    BanList bans;
    auto p = policy(1, 60s, 600s);
    p.exempt.push_back(*Cidr::parse("10.0.0.0/8"));
    bans.set_policy(p);
    auto t = BanList::Clock::time_point{} + 5s;
    CHECK(bans.record_failure(ip("192.0.2.1"), t));
    CHECK(bans.record_failure(ip("192.0.2.2"), t));
    CHECK_FALSE(bans.record_failure(ip("10.1.2.3"), t));  // exempt
    CHECK_FALSE(bans.banned(ip("10.1.2.3"), t));
    CHECK(bans.unban(ip("192.0.2.1")));
    CHECK_FALSE(bans.banned(ip("192.0.2.1"), t));
    CHECK_FALSE(bans.unban(ip("192.0.2.1")));  // not banned any more
    bans.ban(ip("2001:db8::66"), t, 30s);
    CHECK(bans.banned(ip("2001:db8::66"), t + 29s));
    CHECK_FALSE(bans.banned(ip("2001:db8::66"), t + 30s));
    CHECK(bans.unban_all() == 2);
    CHECK(bans.banned_addresses(t).empty());

    BanList off;
    auto disabled = policy(1, 60s, 600s);
    disabled.enabled = false;
    off.set_policy(disabled);
    CHECK_FALSE(off.record_failure(ip("192.0.2.1"), t));
    CHECK(off.list(t).empty());
}

TEST_CASE("sip bans: the table stays bounded and keeps bans in force") {
    BanList bans(4);
    bans.set_policy(policy(2, 60s, 600s));
    auto t = BanList::Clock::time_point{} + 5s;
    bans.record_failure(ip("192.0.2.1"), t);
    CHECK(bans.record_failure(ip("192.0.2.1"), t));  // banned
    for (int i = 10; i < 40; ++i) {
        auto a = IpAddress::v4(0xC6336400u + static_cast<unsigned>(i));  // 198.51.100.x
        bans.record_failure(a, t + std::chrono::seconds(i));
    }
    CHECK(bans.list(t + 40s).size() <= 4);
    CHECK(bans.banned(ip("192.0.2.1"), t + 40s));
}

TEST_CASE("sip bans: the socket filter program covers IPv4 and IPv6") {
    CHECK(build_ban_filter({}).program.empty());
    auto f = build_ban_filter({ip("192.0.2.1"), ip("2001:db8::1")});
    CHECK(f.addresses == 2);
    CHECK(f.program.size() < 30);
    std::vector<IpAddress> many;
    for (unsigned i = 0; i < 10000; ++i) many.push_back(IpAddress::v4(0x0A000000u + i));
    auto big = build_ban_filter(many);
    CHECK(big.program.size() <= 4096);
    CHECK(big.addresses > 3000);
    CHECK(big.addresses < many.size());
}

TEST_CASE("sip bans: the kernel drops packets from banned sources on the SIP port") {
    tandem::test::UdpLoopback udp;
    REQUIRE(udp.ok());
    auto exchange = [&] { return udp.passes({'x'}); };

    std::string error;
    CHECK(exchange());
    CHECK(apply_ban_filter(udp.port, build_ban_filter({ip("127.0.0.1")}), error) == 1);
    CHECK(error.empty());
    CHECK_FALSE(exchange());
    CHECK(apply_ban_filter(udp.port, build_ban_filter({ip("192.0.2.1"), ip("2001:db8::1")}), error) == 1);
    CHECK(exchange());  // another address banned: loopback passes
    CHECK(apply_ban_filter(udp.port, build_ban_filter({}), error) == 1);
    CHECK(exchange());
}

TEST_CASE("sip bans: the UDP socket drops STUN other than a bare Binding request") {
    tandem::test::UdpLoopback udp;
    REQUIRE(udp.ok());
    auto passes = [&](const std::vector<std::uint8_t>& datagram) { return udp.passes(datagram); };
    // A Binding request as RFC 5626 keep-alives send it: type 0x0001, length 0, cookie, transaction id.
    std::vector<std::uint8_t> binding = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
    for (int i = 0; i < 12; ++i) binding.push_back(static_cast<std::uint8_t>(i + 1));
    std::string sip = "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n";
    std::vector<std::uint8_t> request(sip.begin(), sip.end());
    std::vector<std::uint8_t> junk;
    for (int i = 0; i < 700; ++i) junk.push_back(static_cast<std::uint8_t>(i));  // starts 00 01 02...
    auto classic = binding;                                                      // RFC 3489: no cookie
    classic[4] = classic[5] = classic[6] = classic[7] = 0x55;
    auto with_attribute = binding;  // an attribute Sofia's STUN code would parse
    with_attribute[3] = 8;
    for (std::uint8_t b : {0x80, 0x22, 0x00, 0x04, 0x41, 0x42, 0x43, 0x44}) with_attribute.push_back(b);
    auto response = binding;  // a Binding success response
    response[0] = 0x01;

    std::string error;
    REQUIRE(passes(binding));  // nothing attached yet
    REQUIRE(passes(junk));
    CHECK(apply_ban_filter(udp.port, build_ban_filter({}), error) == 1);
    CHECK(error.empty());
    CHECK(passes(request));
    CHECK(passes(binding));
    CHECK_FALSE(passes(junk));
    CHECK_FALSE(passes(classic));
    CHECK_FALSE(passes(with_attribute));
    CHECK_FALSE(passes(response));
    // With bans the guard stays in front of them.
    CHECK(apply_ban_filter(udp.port, build_ban_filter({ip("192.0.2.1")}), error) == 1);
    CHECK(passes(request));
    CHECK(passes(binding));
    CHECK_FALSE(passes(junk));
    CHECK(apply_ban_filter(udp.port, build_ban_filter({ip("127.0.0.1")}), error) == 1);
    CHECK_FALSE(passes(request));
    CHECK_FALSE(passes(binding));
}
