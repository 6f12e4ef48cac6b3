// Banned addresses dropped by the kernel, before the SIP stack sees them.
//
// Sofia-SIP creates a server transaction for every request it parses, and an
// unanswered one would linger, so an address that is ignored must never reach
// it. chan_sip therefore attaches a classic BPF socket filter to the SIP
// sockets (the UDP socket, the TCP listener, whose accepted connections
// inherit it, and connections already open) that drops packets whose source is
// banned. Requests that slip through (more bans than fit in one program, or a
// kernel without socket filters) are still ignored by chan_sip itself.
//
// The UDP socket's program also drops datagrams that look like STUN (first
// byte 0 or 1) unless they are a bare Binding request (RFC 5389: 20 bytes,
// the magic cookie), the RFC 5626 keep-alive a phone sends: Sofia-SIP's STUN
// code leaks memory and writes to stderr for every other one, and Tandem
// serves no STUN beyond those keep-alives.
//
// The same sockets are sized here (set_receive_buffer) and watched: the
// unread queue of the UDP socket is the overload guard's measure of how far
// the SIP stack is behind.
//
// Threading: build_ban_filter() is pure. apply_ban_filter() changes sockets
// the Sofia thread owns: call it only there.
#pragma once

#include "net.hpp"

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::sip {

struct BanFilter {
    std::vector<sock_filter> program;      // stream sockets; empty: accept everything (detach)
    std::vector<sock_filter> udp_program;  // datagram sockets: the STUN guard, then `program`
    std::size_t addresses = 0;             // how many of the banned addresses it covers
};

// A program that drops IPv4 and IPv6 packets from `banned` and accepts the
// rest; it stays within the kernel's instruction limit, covering as many
// addresses as fit (IPv4 first). Its UDP version guards against STUN too.
BanFilter build_ban_filter(const std::vector<IpAddress>& banned);

// Attaches `filter` to every socket of this process bound to local `port`,
// the UDP program to datagram sockets (a stream socket's filter is detached
// when its program is empty). Returns how many sockets changed;
// `error` tells why one could not.
int apply_ban_filter(std::uint16_t port, const BanFilter& filter, std::string& error);

// Sets the receive buffer of the UDP sockets `fds` (datagram_sockets_on_port)
// to `bytes` (above the system's rmem_max too when the process may).
// The default buffer (about 200 KiB) overflows under bursts of requests, and
// the kernel then drops datagrams before the SIP stack sees them. Returns how
// many sockets changed; `error` tells why one could not.
int set_receive_buffer(const std::vector<int>& fds, std::uint32_t bytes, std::string& error);

// The UDP sockets of this process bound to local `port` (the SIP stack's
// own: read them, never close them); `error` says why none could be listed.
std::vector<int> datagram_sockets_on_port(std::uint16_t port, std::string& error);

// How much of a socket's receive buffer holds datagrams not yet read, and
// the buffer's size, in the kernel's accounting (each datagram counts with
// its overhead). Zeros when the kernel cannot tell (SO_MEMINFO, Linux 3.9).
struct ReceiveQueue {
    std::uint32_t queued = 0;
    std::uint32_t buffer = 0;
};
ReceiveQueue receive_queue(int fd);

}  // namespace tandem::sip
