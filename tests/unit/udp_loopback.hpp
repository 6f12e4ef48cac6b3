// A UDP socket bound to 127.0.0.1 on a port the kernel picks, and a client
// socket that sends to it: for tests of what the kernel lets through to a
// socket (filters, buffers). Closes both when destroyed.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

namespace tandem::test {

struct UdpLoopback {
    int server = -1, client = -1;
    sockaddr_in addr{};
    std::uint16_t port = 0;

    UdpLoopback() {
        server = ::socket(AF_INET, SOCK_DGRAM, 0);
        client = ::socket(AF_INET, SOCK_DGRAM, 0);
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (server < 0 || ::bind(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
            return;
        port = ntohs(addr.sin_port);
        timeval tv{0, 200000};  // a datagram the kernel dropped is given up after 200 ms
        ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~UdpLoopback() {
        if (server >= 0) ::close(server);
        if (client >= 0) ::close(client);
    }
    UdpLoopback(const UdpLoopback&) = delete;
    UdpLoopback& operator=(const UdpLoopback&) = delete;

    bool ok() const { return port != 0 && client >= 0; }

    // Sends `datagram` and tells whether the server socket received it whole.
    bool passes(const std::vector<std::uint8_t>& datagram) const {
        ::sendto(client, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
        std::uint8_t buf[2048];
        return ::recv(server, buf, sizeof buf, 0) == static_cast<ssize_t>(datagram.size());
    }
};

}  // namespace tandem::test
