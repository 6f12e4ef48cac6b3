// SipService: chan_sip's state and the work done on Tandem's loops.
//
// It owns the settings snapshot, the registrar, the ban list, the qualify
// table, the authenticator and the Sofia thread. The Sofia thread hands each
// REGISTER to it through a callback that posts the request to a loop
// (Core::pick_loop()); handle_register() runs there, authenticates, applies
// the registration and sends the answer back with SofiaAgent::respond().
// Housekeeping (expiring registrations and bans, choosing qualify probes)
// runs from the Sofia thread's one-second tick and touches only the locked
// tables, never a Sofia object outside that thread.
//
// Calls (INVITE dialogs and their channels) are the CallManager's (call.hpp);
// the Sofia thread's call events go straight to it.
//
// Everything chan_sip puts on a loop (posted work, timers) goes through its
// LoopWork, so that stop() can cancel it and wait until none of it can run:
// the module's code is unmapped once its unload returns, and a handler left
// behind on a loop (a 5 s timer of a transfer, say) would crash the PBX when
// it ran or when the loop was destroyed at stop.
//
// Threading: settings() and set_settings() from any thread (an atomic
// shared_ptr swap); the tables lock themselves. start()/stop() from the
// module's thread, never from a loop (stop() waits for the loops). Posted work
// holds a weak_ptr, so work still queued on a loop after the agent stopped
// finds it stopped and does nothing.
#pragma once

#include "auth.hpp"
#include "bans.hpp"
#include "call.hpp"
#include "qualify.hpp"
#include "registrar.hpp"
#include "settings.hpp"
#include "sofia_agent.hpp"

#include <tandem/core.hpp>
#include <tandem/log.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace tandem::sip {

// The work chan_sip has on Tandem's event loops: closures it posts and
// timers it arms. Each holds a Pass while it is queued or armed (the pass is
// part of the handler, so it goes when the loop has run or destroyed it), and
// every timer is listed. close() refuses new work, cancels the listed timers
// on their own loops, and waits until no pass is left. Work offered after
// close() is dropped on the spot, on the caller's thread.
//
// Threading: post(), timer() and wait() from any thread (a timer is armed
// and cancelled only on its loop); close() from a thread that is not a loop.
class LoopWork : public std::enable_shared_from_this<LoopWork> {
public:
    class Pass {
    public:
        explicit Pass(std::shared_ptr<LoopWork> owner) : owner_(std::move(owner)) {}
        Pass(Pass&& o) noexcept = default;
        Pass& operator=(Pass&&) = delete;
        Pass(const Pass&) = delete;
        Pass& operator=(const Pass&) = delete;
        ~Pass() {
            if (owner_) owner_->release();
        }

    private:
        std::shared_ptr<LoopWork> owner_;
    };

    // A pass for one piece of work, or nothing once closed.
    std::optional<Pass> pass();

    // Runs `f` on `loop`, unless closed (then `f` is destroyed here).
    template <class F>
    void post(boost::asio::io_context& loop, F f) {
        auto p = pass();
        if (!p) return;
        boost::asio::post(loop, [pass = std::move(*p), f = std::move(f)]() mutable { f(); });
    }

    // A timer on `loop` that close() cancels.
    std::shared_ptr<boost::asio::steady_timer> timer(boost::asio::io_context& loop);
    // Arms `t` (a timer of timer(), on its loop) with `h(error_code)`; after
    // close() the timer is not armed and `h` never runs.
    template <class H>
    void wait(boost::asio::steady_timer& t, H h) {
        auto p = pass();
        if (!p) return;
        t.async_wait([pass = std::move(*p), h = std::move(h)](const boost::system::error_code& ec) mutable { h(ec); });
    }

    // Refuses new work, cancels every timer and waits (at most `bound`) until
    // no work is left on any loop. False when some was still left.
    bool close(std::chrono::milliseconds bound);
    // Passes held now (queued closures and armed timers).
    std::size_t pending() const;

private:
    void release();

    struct Listed {
        std::weak_ptr<boost::asio::steady_timer> timer;
        boost::asio::io_context* loop;
    };
    mutable std::mutex mu_;
    std::condition_variable idle_;
    std::size_t passes_ = 0;
    bool closed_ = false;
    std::vector<Listed> timers_;
    std::size_t prune_at_ = 64;
};

class SipService : public std::enable_shared_from_this<SipService> {
public:
    SipService(Core& core, Log log);
    ~SipService();
    SipService(const SipService&) = delete;
    SipService& operator=(const SipService&) = delete;

    std::shared_ptr<const Settings> settings() const { return settings_.load(); }
    // Publishes new settings: ban policy, endpoints gone from the file lose
    // their registrations. Returns what could not change while running.
    std::vector<std::string> set_settings(std::shared_ptr<const Settings> s);

    // Restores stored registrations, then binds and starts the Sofia thread.
    // Throws std::runtime_error when it cannot listen.
    void start();
    // Stops the Sofia thread, lets go of the calls and waits until none of
    // chan_sip's work is left on a loop (see LoopWork). Not from a loop.
    void stop();
    bool running() const { return agent_.running(); }

    // On a loop: one REGISTER from the Sofia thread.
    void handle_register(IncomingRequest in);

    Registrar& registrar() { return registrar_; }
    const Authenticator& authenticator() const { return auth_; }
    CallManager& calls() { return calls_; }
    BanList& bans() { return bans_; }
    QualifyTable& qualify() { return qualify_; }
    SofiaAgent& agent() { return agent_; }
    LoopWork& work() { return *work_; }
    Log& log() { return log_; }
    // Pushes the current ban list to the socket filter if it changed.
    void sync_bans();

    static std::int64_t wall_now();

private:
    std::vector<QualifyTarget> tick();
    void probe_result(const ProbeResult& r);

    Core& core_;
    Log log_;
    // Shared with the calls, whose last owner may be a handler on a loop.
    std::shared_ptr<LoopWork> work_ = std::make_shared<LoopWork>();
    std::atomic<std::shared_ptr<const Settings>> settings_;
    Authenticator auth_;
    Registrar registrar_;
    BanList bans_;
    QualifyTable qualify_;
    SofiaAgent agent_;
    CallManager calls_;
    std::atomic<std::uint64_t> synced_ban_generation_{0};
};

}  // namespace tandem::sip
