// chan_sip: the guard that closes TCP/TLS connections which never
// authenticate (tcpauthtimeout, tcpauthlimit), and the kernel listing and
// shutdown it relies on, against real loopback sockets.
#include <doctest/doctest.h>

#include "chan_sip/connection_guard.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

using namespace tandem::sip;
using namespace std::chrono_literals;

namespace {

StreamConnection conn(std::uint16_t remote_port, std::uint64_t inode, const char* ip = "192.0.2.10") {
    return {5060, {*IpAddress::parse(ip), remote_port}, inode};
}

bool has(const std::vector<StreamConnection>& v, std::uint16_t remote_port) {
    return std::any_of(v.begin(), v.end(), [&](auto& c) { return c.remote.port == remote_port; });
}

ConnectionGuard guard_with(std::chrono::seconds timeout, unsigned limit) {
    ConnectionGuard g;
    g.set_limits({timeout, limit});
    return g;
}

}  // namespace

TEST_CASE("sip connections: unauthenticated ones are closed at the deadline, counted from when first seen") {
    auto g = guard_with(30s, 0);
    auto t0 = ConnectionGuard::Clock::time_point{} + 1000s;
    auto a = conn(40001, 11), b = conn(40002, 12);
    auto s = g.sweep({a}, t0);
    CHECK(s.timed_out.empty());
    CHECK(s.unauthenticated == 1);
    s = g.sweep({a, b}, t0 + 10s);  // b first seen 10 s later
    CHECK(s.unauthenticated == 2);
    s = g.sweep({a, b}, t0 + 29s);
    CHECK(s.timed_out.empty());
    s = g.sweep({a, b}, t0 + 30s);
    REQUIRE(s.timed_out.size() == 1);
    CHECK(s.timed_out[0] == a);
    CHECK(s.unauthenticated == 1);
    s = g.sweep({b}, t0 + 40s);
    CHECK(s.timed_out == std::vector<StreamConnection>{b});
    CHECK(g.closed_total() == 2);
}

TEST_CASE("sip connections: an authenticated connection stays, a new socket on its address does not inherit it") {
    auto g = guard_with(30s, 0);
    auto t0 = ConnectionGuard::Clock::time_point{} + 1000s;
    auto a = conn(40001, 11);
    g.sweep({a}, t0);
    g.authenticated(5060, a.remote, t0 + 1s);
    auto s = g.sweep({a}, t0 + 100s);
    CHECK(s.timed_out.empty());
    CHECK(s.authenticated == 1);
    CHECK(s.unauthenticated == 0);
    // The client closed it and another socket came from the same address and port.
    auto again = conn(40001, 99);
    s = g.sweep({again}, t0 + 101s);
    CHECK(s.authenticated == 0);
    CHECK(s.unauthenticated == 1);
    s = g.sweep({again}, t0 + 131s);
    CHECK(s.timed_out == std::vector<StreamConnection>{again});
}

TEST_CASE("sip connections: a mark that comes before the kernel lists the connection is kept for it") {
    auto g = guard_with(5s, 0);
    auto t0 = ConnectionGuard::Clock::time_point{} + 1000s;
    auto a = conn(40001, 11);
    g.authenticated(5060, a.remote, t0);
    auto s = g.sweep({}, t0 + 1s);  // not listed yet: kept a while
    s = g.sweep({a}, t0 + 2s);
    CHECK(s.authenticated == 1);
    s = g.sweep({a}, t0 + 60s);
    CHECK(s.timed_out.empty());
    // Another port of the same address is another connection.
    auto b = conn(40002, 12);
    s = g.sweep({a, b}, t0 + 61s);
    CHECK(s.unauthenticated == 1);
    // A mark for a connection that never shows up is forgotten.
    g.authenticated(5060, conn(40003, 0).remote, t0 + 61s);
    s = g.sweep({a, b}, t0 + 70s);
    CHECK(s.timed_out == std::vector<StreamConnection>{b});
    s = g.sweep({a, conn(40003, 13)}, t0 + 71s);
    CHECK(s.authenticated == 1);
    CHECK(s.unauthenticated == 1);
}

TEST_CASE("sip connections: the newest beyond the limit are closed, the oldest and the authenticated kept") {
    auto g = guard_with(0s, 3);  // no deadline, a limit
    auto t0 = ConnectionGuard::Clock::time_point{} + 1000s;
    std::vector<StreamConnection> open{conn(1, 101), conn(2, 102)};
    g.sweep(open, t0);
    g.authenticated(5060, conn(3, 0).remote, t0);
    open.push_back(conn(3, 103));
    // Listed in an order unlike their age; 6 and 7 arrived last, in the same sweep.
    open.insert(open.begin(), {conn(7, 207), conn(4, 104), conn(6, 206), conn(5, 105)});
    auto s = g.sweep(open, t0 + 1s);
    CHECK(s.over_limit.size() == 3);
    CHECK(has(s.over_limit, 5));
    CHECK(has(s.over_limit, 6));
    CHECK(has(s.over_limit, 7));
    CHECK(s.unauthenticated == 3);
    CHECK(s.authenticated == 1);
    CHECK(s.timed_out.empty());
    // Once some go, others fit again.
    s = g.sweep({conn(1, 101), conn(3, 103), conn(8, 108)}, t0 + 2s);
    CHECK(s.over_limit.empty());
    CHECK(s.unauthenticated == 2);
}

TEST_CASE("sip connections: peers known by address count as authenticated; limits of 0 switch each part off") {
    auto g = guard_with(10s, 1);
    g.set_trusted({*IpAddress::parse("198.51.100.7")});
    auto t0 = ConnectionGuard::Clock::time_point{} + 1000s;
    auto gw1 = conn(5060, 1, "198.51.100.7"), gw2 = conn(5061, 2, "198.51.100.7"), other = conn(40000, 3);
    g.sweep({gw1, gw2, other}, t0);
    auto s = g.sweep({gw1, gw2, other}, t0 + 60s);
    CHECK(s.authenticated == 2);
    CHECK(s.timed_out == std::vector<StreamConnection>{other});

    auto off = guard_with(0s, 0);
    CHECK_FALSE(off.enabled());
    CHECK(guard_with(0s, 5).enabled());
    CHECK(guard_with(5s, 0).enabled());
}

TEST_CASE("sip connections: the kernel lists the connections on our address and port, and one can be shut down") {
    int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    auto port = ntohs(addr.sin_port);

    int clients[2], accepted[2];
    std::uint16_t client_ports[2];
    for (int i = 0; i < 2; ++i) {
        clients[i] = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(::connect(clients[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        accepted[i] = ::accept(listener, nullptr, nullptr);
        REQUIRE(accepted[i] >= 0);
        sockaddr_in local{};
        socklen_t l = sizeof local;
        ::getsockname(clients[i], reinterpret_cast<sockaddr*>(&local), &l);
        client_ports[i] = ntohs(local.sin_port);
    }

    // Another server on the same port at another address: not ours.
    int other = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in other_addr = addr;
    other_addr.sin_addr.s_addr = htonl(0x7f000002);  // 127.0.0.2
    REQUIRE(::bind(other, reinterpret_cast<sockaddr*>(&other_addr), sizeof other_addr) == 0);
    REQUIRE(::listen(other, 8) == 0);
    int other_client = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(other_client, reinterpret_cast<sockaddr*>(&other_addr), sizeof other_addr) == 0);
    int other_accepted = ::accept(other, nullptr, nullptr);
    REQUIRE(other_accepted >= 0);

    std::string error;
    auto everything = established_connections({port}, std::nullopt, error);
    REQUIRE_MESSAGE(everything, error);
    CHECK(everything->size() >= 3);                                                           // any local address
    CHECK(established_connections({port}, IpAddress::parse("0.0.0.0"), error)->size() >= 3);  // a wildcard
    auto listed = established_connections({port}, IpAddress::parse("127.0.0.1"), error);
    REQUIRE_MESSAGE(listed, error);
    REQUIRE(listed->size() == 2);  // the accepted ends; the clients' ends have other local ports
    for (auto& c : *listed) {
        CHECK(c.local_port == port);
        CHECK(c.remote.ip.str() == "127.0.0.1");
        CHECK(c.inode != 0);
    }
    CHECK(has(*listed, client_ports[0]));
    CHECK(has(*listed, client_ports[1]));

    auto first =
        std::find_if(listed->begin(), listed->end(), [&](auto& c) { return c.remote.port == client_ports[0]; });
    CHECK(shut_down_connections({*first}, error) == 1);
    char byte;
    CHECK(::recv(clients[0], &byte, 1, 0) == 0);  // end of stream, as if the server hung up
    // The other one is untouched.
    CHECK(::send(accepted[1], "x", 1, 0) == 1);
    CHECK(::recv(clients[1], &byte, 1, 0) == 1);
    // Nothing to shut for a connection without a descriptor here.
    CHECK(shut_down_connections({conn(1, 1)}, error) == 0);

    for (int i = 0; i < 2; ++i) ::close(clients[i]), ::close(accepted[i]);
    ::close(other_client), ::close(other_accepted), ::close(other);
    ::close(listener);
}
