// The Sofia-SIP thread: the only thread that ever calls into Sofia.
//
// Sofia-SIP is not thread-safe, so one dedicated thread runs an su_root with
// the nua stack, bound to the configured address (UDP and/or TCP). Other
// threads reach it only through a command queue: a command is pushed under a
// mutex and an eventfd registered with the su_root wakes the thread, which
// runs the queued commands in order. In the other direction the thread never
// does Tandem work itself: it converts what Sofia reports into plain values
// (SipRequest, probe results) and hands them to callbacks that post to
// Tandem's event loops.
//
// An incoming request that needs an answer from Tandem (REGISTER now, INVITE
// in the calls step) is kept on this thread with a saved nua event under a
// numeric token; the loop that handles it answers with respond(token, ...),
// which queues the answer back here. So no Sofia object ever leaves the
// thread, and a loop only ever holds a number. Calls will follow the same
// path: each dialog's handle stays here, keyed by the Channel it belongs to,
// and its events are posted to that channel's loop.
//
// Start and stop are synchronous: start() returns once the sockets are bound
// (or failed to bind); stop() answers what is pending, shuts nua down
// (bounded in time), destroys every Sofia object on the thread and joins it.
//
// Threading: start(), stop() and running() from one controlling thread (the
// module's); everything else from any thread.
#pragma once

#include "message.hpp"
#include "net.hpp"
#include "qualify.hpp"

#include <tandem/log.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tandem::sip {

struct AgentConfig {
    std::string bindaddr = "127.0.0.1";
    std::uint16_t port = 5060;
    std::vector<Transport> transports{Transport::udp};
    std::string user_agent = "Tandem";
    bool debug = false;       // log every message in and out
    bool force_rport = true;  // answer to the source port even without ;rport (nat=force_rport)
};

struct IncomingRequest {
    std::uint64_t token = 0;  // answer with SofiaAgent::respond(token, ...)
    SipRequest request;
};

struct ProbeResult {
    std::string key;                               // QualifyTarget::key
    std::optional<std::chrono::milliseconds> rtt;  // nullopt: no answer
    int status = 0;                                // the answer's status, 0 if none
};

class SofiaAgent {
public:
    // Every callback runs on the Sofia thread: be quick, post real work away.
    struct Callbacks {
        std::function<void(IncomingRequest)> on_register;
        // Requests from a banned address are dropped without an answer.
        std::function<bool(const IpAddress&)> is_banned;
        // About once a second: housekeeping; returns the OPTIONS probes to send.
        std::function<std::vector<QualifyTarget>()> on_tick;
        std::function<void(ProbeResult)> on_probe_result;
    };

    explicit SofiaAgent(Log log);
    ~SofiaAgent();
    SofiaAgent(const SofiaAgent&) = delete;
    SofiaAgent& operator=(const SofiaAgent&) = delete;

    // Starts the thread and binds; false with `error` when it could not.
    bool start(const AgentConfig& config, Callbacks callbacks, std::string& error);
    void stop();
    bool running() const;
    const AgentConfig& config() const;

    // --- any thread ---
    void respond(std::uint64_t token, SipResponse response);
    void set_debug(bool on);
    bool debug() const;
    // Replaces the kernel filter that drops banned sources.
    void set_banned(std::vector<IpAddress> banned);
    // Runs the tick now (after `sip qualify`).
    void wake();
    // Requests waiting for an answer from a loop.
    std::size_t pending() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::sip
