// Outbound registrations: Tandem registering with a provider (a trunk), as
// Asterisk's `register =>` lines in [general] or `register=yes` on a peer.
//
// This header holds the plain values: what to register (parsed from
// sip.conf) and the state shown by `sip show registry`. The Sofia thread
// (sofia_agent.cpp) runs the REGISTER transactions: it answers 401/407 with
// the secret, lets the stack refresh before expiry, retries with a growing
// delay after a failure and unregisters on stop.
//
// RegistryEvents turns the agent's reports into event::Registry, one per
// change of the published status, so a trunk that keeps failing the same way
// on every retry is announced once.
//
// Threading: plain values; RegistryEvents locks itself.
#pragma once

#include "message.hpp"

#include <tandem/events.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::sip {

struct OutboundRegistration {
    std::string user;       // user part of the address of record (To/From)
    std::string secret;     // answers a 401/407; empty: no authentication
    std::string auth_user;  // digest user name (default: user)
    std::string host;       // registrar host name or address
    std::uint16_t port = 5060;
    std::string contact_user;              // user part of our Contact (default: user); inbound calls use it
    std::string endpoint;                  // the peer whose register=yes made it, or ""
    Transport transport = Transport::udp;  // tcp:// or tls:// in the line, or the peer's transport=
    std::string proxy;                     // outboundproxy= as a Route value, "" for none
    std::chrono::seconds expiry{120};
    std::chrono::seconds retry{20};  // registertimeout: first retry after a failure
    int attempts = 0;                // registerattempts: failures before giving up (0: never)

    // "user@host:port": names it in logs and the CLI.
    std::string key() const;
    bool operator==(const OutboundRegistration&) const = default;
};

// Parses `[udp://|tcp://|tls://]user[:secret[:authuser]]@host[:port][/contact-user]`
// (tls:// without a port: 5061); nullopt with `error` set when malformed.
std::optional<OutboundRegistration> parse_register_line(std::string_view text, std::string& error);

// The request URI of a registrar, a trunk or a proxy reached over `t`:
// "sip:host[:port]" with ";transport=tcp|tls" unless UDP.
std::string sip_uri(std::string_view host_port, Transport t);

// outboundproxy=: `[udp://|tcp://|tls://]host[:port]` or a sip:/sips: URI.
// `route` is the Route header value that sends requests through it, a loose
// route (RFC 3261 8.1.2: the UAC's pre-loaded route set is the proxy):
// "<sip:host[:port];transport=tcp;lr>"; `transport` what reaches it. Without
// a port the proxy is found as RFC 3263 says (SRV, then 5060, or 5061 for
// TLS). nullopt with `error` set when malformed.
struct OutboundProxy {
    std::string route;
    Transport transport = Transport::udp;
};
std::optional<OutboundProxy> parse_outbound_proxy(std::string_view text, std::string& error);

enum class RegistryState : std::uint8_t {
    unregistered,
    request_sent,
    auth_sent,
    registered,
    rejected,
    timeout,
    failed
};
std::string_view to_string(RegistryState s);  // as Asterisk: "Registered", "Request Sent", ...

struct RegistryEntry {
    std::string key;
    std::string host, user;
    std::uint16_t port = 5060;
    RegistryState state = RegistryState::unregistered;
    int status = 0;                 // last final answer, 0 if none
    std::string reason;             // its phrase ("Forbidden")
    std::string endpoint;           // the peer whose register=yes made it, or ""
    std::int64_t expires_at = 0;    // wall clock, seconds; 0 when not registered
    std::int64_t next_attempt = 0;  // wall clock, seconds; 0 when none is planned
    int failures = 0;
};

// What an integrator sees of a RegistryState: "Registered", "Rejected",
// "Failed" (timeout, 408/503, given up), "Unregistered"; "" while a request
// is under way.
std::string_view registry_event_status(RegistryState s);

class RegistryEvents {
public:
    // The event to publish for this report, if its status differs from the
    // last one published for the same registration. "Unregistered" is
    // published only for a registration that published something before.
    std::optional<event::Registry> change(const RegistryEntry& e);

private:
    std::mutex mu_;
    std::map<std::string, std::string, std::less<>> last_;  // key -> status published
};

}  // namespace tandem::sip
