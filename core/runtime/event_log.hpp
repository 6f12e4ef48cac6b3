// EventLog: the recent system events, for `core show events [N]`.
//
// A core subscriber keeps the last `capacity` events that are not about one
// call — PeerStatus, Registry, Transfer, ModuleChanged, Reloaded, FaxDetect —
// each with the wall-clock time it was published. The per-call events
// (ChannelCreated, ChannelStateChanged, DialplanStep, VariableSet,
// ChannelHangup) would push the rare system events out of any ring within a
// few calls, so they are ignored with one check of the variant's alternative:
// no lock, no allocation. `core show channels` shows the calls in progress.
//
// Threading: record() runs on the publisher's thread (a loop, the Sofia
// thread, the module loader); everything is safe from any thread behind one
// lock held only to copy an entry in or out. Formatting happens outside it.
#pragma once

#include <tandem/events.hpp>
#include <tandem/registry.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace tandem {

class CoreImpl;

class EventLog {
public:
    using Clock = std::chrono::system_clock;
    static constexpr std::size_t default_capacity = 256;

    struct Entry {
        Clock::time_point at;
        Event event;
    };

    explicit EventLog(std::size_t capacity = default_capacity);

    // Whether the log keeps this kind of event (a system event, not a per-call one).
    static bool keeps(const Event& e) noexcept;

    // Keeps `e` if it is a system event, dropping the oldest when full.
    void record(const Event& e, Clock::time_point at = Clock::now());

    // The last `n` kept events, oldest first.
    std::vector<Entry> last(std::size_t n) const;
    std::size_t capacity() const { return capacity_; }
    // How many events were kept since the start (including those overwritten).
    std::uint64_t recorded() const;

    // One line: "2026-12-07T05:25:07.123Z PeerStatus tech=SIP peer=1001 ...".
    // Values with spaces, quotes or control characters are quoted and escaped,
    // so a line never breaks whatever a peer sent.
    static std::string format(const Entry& e);

private:
    std::size_t capacity_;
    mutable std::mutex mu_;
    std::vector<Entry> ring_;  // grows to capacity_, then wraps at next_
    std::size_t next_ = 0;
    std::uint64_t recorded_ = 0;
};

// Subscribes a core EventLog to the bus and adds `core show events`.
void register_event_log(CoreImpl& core, std::vector<Registration>& out);

}  // namespace tandem
