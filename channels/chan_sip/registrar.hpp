// The registrar: where each endpoint can be reached (RFC 3261 §10.3).
//
// An endpoint may register several contacts at once (a desk phone, a
// softphone, a mobile app: multi-presence); each binding keeps the contact,
// its expiry, the address and transport it came from (to reach a device behind
// NAT), its Path (RFC 3327) and its User-Agent. Bindings are written through
// to the key/value store (family SIP/Registry/<endpoint>), so a restart finds
// them again; expired ones are dropped on the way in.
//
// apply() implements the REGISTER rules once the request is authenticated:
// Expires within [minexpiry, maxexpiry] (423 below), Call-ID/CSeq ordering,
// `Contact: *` with Expires: 0, a query without Contact, +sip.instance to
// replace a device's old contact, and maxcontacts (the soonest to expire go).
//
// With an event bus set, a device's new binding is published as
// event::PeerStatus "Registered" and every binding that goes away (removed,
// expired, pushed out by maxcontacts, its endpoint gone) as "Unregistered";
// refreshes publish nothing.
//
// Threading: every member is safe from any thread (one lock; the store's
// writes do not wait for the disk; events are published after the lock is
// released).
#pragma once

#include "message.hpp"
#include "settings.hpp"

#include <tandem/events.hpp>
#include <tandem/kvstore.hpp>
#include <tandem/log.hpp>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::sip {

inline constexpr std::string_view registry_family = "SIP/Registry";

struct Binding {
    std::string endpoint;
    std::string contact;   // contact URI
    std::string instance;  // +sip.instance, when the device sent one
    std::string call_id;
    std::uint32_t cseq = 0;
    std::int64_t expires_at = 0;     // seconds since the epoch
    std::int64_t registered_at = 0;  // last refresh
    SocketAddress source;            // where the REGISTER came from
    Transport transport = Transport::udp;
    std::string user_agent;
    std::string q;
    std::vector<std::string> path;

    // Key under registry_family/<endpoint> in the key/value store.
    std::string store_key() const;
};

std::string serialize_binding(const Binding& b);
std::optional<Binding> parse_binding(std::string_view text);

class Registrar {
public:
    explicit Registrar(Log log, KvStore* store = nullptr) : log_(std::move(log)), store_(store) {}

    // Where bindings are persisted (none in `tandem -t`); set before use.
    void set_store(KvStore* store) { store_ = store; }
    // Where registrations and their ends are published (none by default).
    void set_events(EventBus* bus) { events_.store(bus); }

    // Loads stored bindings of endpoints that may register; expired or
    // orphaned ones are deleted from the store. Returns how many were kept.
    std::size_t restore(const Settings& s, std::int64_t now);

    // The REGISTER rules for an authenticated `ep`; `now` in epoch seconds.
    SipResponse apply(const SipRequest& rq, const Endpoint& ep, const GeneralSettings& g, std::int64_t now);

    // Drops expired bindings; returns them (for logging and qualify).
    std::vector<Binding> expire(std::int64_t now);
    // Drops bindings of endpoints that no longer exist or may not register.
    std::vector<Binding> prune(const Settings& s);

    std::vector<Binding> bindings(std::string_view endpoint) const;
    std::vector<Binding> all() const;
    std::size_t count() const;

private:
    void save(const Binding& b);
    void erase(const Binding& b);
    void publish(const std::vector<Binding>& bindings, std::string_view status) const;

    Log log_;
    KvStore* store_;
    std::atomic<EventBus*> events_{nullptr};
    mutable std::mutex mu_;
    std::map<std::string, std::vector<Binding>, std::less<>> by_endpoint_;
};

}  // namespace tandem::sip
