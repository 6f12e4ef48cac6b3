// TCP and TLS connections that never authenticate are closed.
//
// A SIP connection costs Tandem a file descriptor and some memory as long as
// it is open, and the SIP stack keeps an idle one for 30 minutes. So anyone
// who can reach the TCP or TLS port could hold descriptors up to the process
// limit without ever authenticating: open connections and send nothing, or
// half a request, or a request now and then that never passes. Asterisk's
// answer, which integrators know from sip.conf, is kept here:
//
//   tcpauthtimeout  a connection a client opened to us must carry an
//                   authenticated request (a REGISTER or INVITE that passes
//                   digest, or anything from an address-authenticated peer)
//                   within this time, or it is closed;
//   tcpauthlimit    at most this many such connections are open at a time;
//                   the newest beyond the limit are closed at once.
//
// Once a connection has authenticated it stays as long as the client and the
// stack keep it (registered phones reuse it). Connections Tandem opened
// itself (to trunks) are not watched.
//
// The guard does not need the stack's cooperation: it reads the kernel's
// list of established connections on the listening ports (sock_diag), keeps
// when it first saw each, and closes a connection by shutting its socket down,
// exactly as if the client had hung up, which the stack then handles as
// usual.
//
// Threading: ConnectionGuard is a value touched by one thread (the Sofia
// thread). established_connections() and shut_down_connections() may be
// called from any thread; the latter only from the thread that owns the
// sockets (the Sofia thread), so that no descriptor is reused between finding
// it and shutting it down.
#pragma once

#include "net.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tandem::sip {

// One established TCP connection to a listening port of ours.
struct StreamConnection {
    std::uint16_t local_port = 0;
    SocketAddress remote;
    std::uint64_t inode = 0;  // the socket's inode: how its descriptor is found

    friend bool operator==(const StreamConnection&, const StreamConnection&) = default;
};

class ConnectionGuard {
public:
    using Clock = std::chrono::steady_clock;
    struct Limits {
        std::chrono::seconds auth_timeout{30};  // 0: never close for want of authentication
        unsigned auth_limit = 100;              // 0: no limit
    };

    void set_limits(Limits limits) { limits_ = limits; }
    const Limits& limits() const { return limits_; }
    bool enabled() const { return limits_.auth_timeout.count() > 0 || limits_.auth_limit > 0; }
    // Addresses whose connections count as authenticated from the start:
    // peers configured by address (gateways, IP-authenticated trunks).
    void set_trusted(std::vector<IpAddress> trusted);

    // A request from `remote` on the connection to `local_port` passed
    // authentication: the connection stays.
    void authenticated(std::uint16_t local_port, const SocketAddress& remote, Clock::time_point now);

    struct Sweep {
        std::vector<StreamConnection> timed_out;   // unauthenticated past auth_timeout
        std::vector<StreamConnection> over_limit;  // the newest beyond auth_limit
        std::size_t unauthenticated = 0;           // open and unauthenticated after the sweep
        std::size_t authenticated = 0;             // open and authenticated
    };
    // `open` is every established connection on the watched ports now; what
    // is no longer in it is forgotten. Returns what to close.
    Sweep sweep(const std::vector<StreamConnection>& open, Clock::time_point now);

    // Connections swept out (timed out or over the limit) since start.
    std::uint64_t closed_total() const { return closed_total_; }

private:
    struct Seen {
        Clock::time_point since;
        bool authenticated = false;
        bool listed = false;      // seen in the kernel's list at least once
        std::uint64_t inode = 0;  // of the socket it was listed with
    };
    using Key = std::pair<std::uint16_t, SocketAddress>;
    Limits limits_;
    std::vector<IpAddress> trusted_;
    std::map<Key, Seen> seen_;
    std::uint64_t closed_total_ = 0;
};

// The established TCP connections (IPv4 and IPv6) whose local port is one of
// `ports` and, unless `local` is unset or a wildcard, whose local address is
// `local` (another server may listen on the same port at another address),
// from the kernel (sock_diag); nullopt with `error` when the kernel cannot
// tell.
std::optional<std::vector<StreamConnection>> established_connections(const std::vector<std::uint16_t>& ports,
                                                                     const std::optional<IpAddress>& local,
                                                                     std::string& error);

// Shuts down (both ways) the sockets of this process that are `connections`,
// found by inode. A connection still waiting in the listen queue has no
// descriptor yet and is left for the next sweep. Returns how many were shut.
std::size_t shut_down_connections(const std::vector<StreamConnection>& connections, std::string& error);

}  // namespace tandem::sip
