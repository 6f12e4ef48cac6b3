// Qualify: is each endpoint reachable, and how far away?
//
// Targets are the registered contacts of qualify=yes endpoints and the static
// hosts of qualify=yes peers. Every qualifyfreq each is sent an OPTIONS (by
// the Sofia thread); any answer means reachable, with the round trip measured;
// an answer slower than the endpoint's limit is "lagged"; no answer by the
// limit is "unreachable". A change of state is logged and, when an event bus
// is set, published as event::PeerStatus (once per change, after the lock is
// released). `sip qualify NAME` asks for one probe now, even when qualify=no.
//
// Threading: every member is safe from any thread (one lock).
#pragma once

#include "message.hpp"
#include "registrar.hpp"
#include "settings.hpp"

#include <tandem/events.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::sip {

struct QualifyTarget {
    std::string key;  // endpoint and URI: unique per target
    std::string endpoint;
    std::string uri;                       // Request-URI: the contact, or sip:host:port
    std::optional<SocketAddress> send_to;  // where to send instead (NAT: where it registered from)
    Transport transport = Transport::udp;
    std::vector<std::string> route;  // the binding's Path
    std::chrono::milliseconds limit{2000};
};

enum class Reachability : std::uint8_t { unknown, reachable, lagged, unreachable };
std::string_view to_string(Reachability r);

struct QualifyStatus {
    QualifyTarget target;
    Reachability state = Reachability::unknown;
    std::optional<std::chrono::milliseconds> rtt;
    std::uint64_t reports = 0;  // how many probes ended so far
};

class QualifyTable {
public:
    using Clock = std::chrono::steady_clock;

    // Brings the target set up to date and returns the targets to probe now;
    // they count as in flight until report() or forget_in_flight().
    std::vector<QualifyTarget> due(const Settings& s, const std::vector<Binding>& bindings, Clock::time_point now);
    // The end of a probe: the round trip, or nullopt when nothing came back.
    // Returns a line to log when the state changed.
    std::optional<std::string> report(const std::string& key, std::optional<std::chrono::milliseconds> rtt,
                                      Clock::time_point now);
    // Where state changes are published (none by default); set before use.
    void set_events(EventBus* bus) { events_.store(bus); }
    // Probe every target of `endpoint` at the next due() (even with qualify=no).
    void request(std::string_view endpoint);
    void forget_in_flight();

    std::vector<QualifyStatus> status(std::string_view endpoint) const;
    // Summary for lists: "OK (12 ms)", "UNREACHABLE", "LAGGED (2500 ms)", "Unmonitored".
    std::string summary(std::string_view endpoint) const;

private:
    struct Entry {
        QualifyStatus status;
        Clock::time_point next_due{};
        Clock::time_point reported_at{};
        bool in_flight = false;
        bool manual = false;  // exists only for a one-off `sip qualify`
    };
    std::optional<std::string> report_locked(const std::string& key, std::optional<std::chrono::milliseconds> rtt,
                                             Clock::time_point now, event::PeerStatus& change);
    static std::vector<QualifyTarget> targets_of(const Endpoint& e, const std::vector<Binding>& bindings);

    std::atomic<EventBus*> events_{nullptr};
    mutable std::mutex mu_;
    std::map<std::string, Entry, std::less<>> entries_;
    std::set<std::string, std::less<>> requested_;
};

}  // namespace tandem::sip
