// chan_sip's socket tuning: the receive buffer of the SIP UDP socket is
// raised on the real socket found by its port.
#include "chan_sip/socket_filter.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace tandem::sip;

TEST_CASE("sip: the UDP receive buffer is raised on the socket bound to the port") {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    const std::uint16_t port = ntohs(a.sin_port);

    int before = 0;
    socklen_t blen = sizeof before;
    REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &before, &blen) == 0);

    std::string error;
    const int target = 2 * before + 65536;
    CHECK(set_receive_buffer(port, static_cast<std::uint32_t>(target), error) == 1);
    int after = 0;
    socklen_t alen = sizeof after;
    REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &after, &alen) == 0);
    // The kernel doubles the value asked for (bookkeeping); without the
    // privilege to pass rmem_max it stops there, which is still an increase.
    CHECK(after > before);

    // Another port is left alone.
    CHECK(set_receive_buffer(static_cast<std::uint16_t>(port == 65535 ? 1 : port + 1), 1u << 20, error) == 0);
    ::close(fd);
}
