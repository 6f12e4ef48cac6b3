// The event bus: typed notifications for observers (CDR, statistics, the API).
//
// Events are plain structs in one std::variant: per-call ones (a channel was
// created, changed state, ran a dialplan step, set a variable, hung up) and
// system ones (modules, reloads, fax detection, SIP peer reachability and
// registrations, transfers). New kinds are appended at the end of the variant
// only, so the index of an existing kind never changes.
//
// Publishing calls every subscriber synchronously on the publisher's thread,
// which is usually a channel's event loop: a subscriber must be quick, must not
// block, and must be thread-safe (post heavier work to the worker pool).
// Subscribing returns a Registration; dropping it unsubscribes. With nobody
// subscribed, publishing costs one atomic load, so `has_subscribers()` lets hot
// paths skip building an event nobody reads.
#pragma once

#include <tandem/registry.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

namespace tandem {

enum class ChannelState : std::uint8_t { down, ring, ringing, up, hungup };

namespace event {
struct ChannelCreated {
    std::string channel, uniqueid, linkedid, caller_number, caller_name, exten, context;
};
struct ChannelStateChanged {
    std::string channel, uniqueid;
    ChannelState state;
};
struct DialplanStep {
    std::string channel, uniqueid, context, exten;
    int priority;
    std::string app, args;
};
struct VariableSet {
    std::string channel, uniqueid, name, value;
};
struct ChannelHangup {
    std::string channel, uniqueid;
    int cause;
};
struct ModuleChanged {
    std::string module;
    bool loaded;
};
struct Reloaded {
    std::string what;
};
// A fax machine heard on a channel by in-band detection (tandem/dsp.hpp).
struct FaxDetect {
    std::string channel, uniqueid;
    std::string tone;  // "cng": the caller is a fax; "ced": the callee is one
};
// A peer's reachability or registration changed: qualify (OPTIONS) found it
// "Reachable", "Lagged" or "Unreachable", or the registrar saw one of its
// devices "Registered" or a contact go away ("Unregistered": removed,
// expired or replaced). Published once per change, not per probe.
struct PeerStatus {
    std::string tech;     // "SIP"
    std::string peer;     // the endpoint's section name
    std::string status;   // "Reachable", "Unreachable", "Lagged", "Registered", "Unregistered"
    std::string address;  // the qualified URI, or host:port a device registered from
    int latency_ms = -1;  // the OPTIONS round trip; -1 when none was measured
};
// An outbound registration (a trunk registering with its provider) changed:
// "Registered", "Rejected" (a final refusal such as 403), "Failed" (no
// answer, 408/503, or given up after its attempts), "Unregistered".
struct Registry {
    std::string tech;      // "SIP"
    std::string peer;      // the trunk's section, or "" for a [general] register => line
    std::string domain;    // the registrar's host
    std::string username;  // the user registered
    std::string status;
    std::string cause;  // the last answer, "403 Forbidden"; "" when registered
};
// The end of a transfer a phone asked for (SIP REFER): a blind one to a
// dialplan extension, or an attended one joining two calls.
struct Transfer {
    std::string kind;            // "blind" or "attended"
    std::string channel;         // the transferer's channel
    std::string uniqueid;        // the transferer's channel's uniqueid
    std::string target_channel;  // attended: the party of the transferer's other call
    std::string context, exten;  // blind: where the transferee goes
    bool ok = false;
    std::string result;  // the final status told to the phone: "200", "404", "503", ...
};
}  // namespace event

using Event = std::variant<event::ChannelCreated, event::ChannelStateChanged, event::DialplanStep, event::VariableSet,
                           event::ChannelHangup, event::ModuleChanged, event::Reloaded, event::FaxDetect,
                           event::PeerStatus, event::Registry, event::Transfer>;
using EventHandler = std::function<void(const Event&)>;

class EventBus {
public:
    EventBus() : subs_(std::make_shared<const List>()) {}

    Registration subscribe(EventHandler h, ModuleUse* owner = nullptr) {
        std::lock_guard lock(write_mu_);
        auto id = ++next_id_;
        auto next = std::make_shared<List>(*subs_.load());
        next->push_back({id, std::make_shared<EventHandler>(std::move(h)), owner});
        subs_.store(std::move(next));
        return Registration([this, id] {
            std::lock_guard guard(write_mu_);
            auto rest = std::make_shared<List>(*subs_.load());
            std::erase_if(*rest, [id](const Sub& s) { return s.id == id; });
            subs_.store(std::move(rest));
        });
    }

    bool has_subscribers() const { return !subs_.load()->empty(); }

    void publish(const Event& e) const {
        auto list = subs_.load();
        for (auto& s : *list) (*s.handler)(e);
    }

private:
    struct Sub {
        std::uint64_t id;
        std::shared_ptr<EventHandler> handler;
        ModuleUse* owner;
    };
    using List = std::vector<Sub>;
    std::mutex write_mu_;
    std::uint64_t next_id_ = 0;
    std::atomic<std::shared_ptr<const List>> subs_;
};

}  // namespace tandem
