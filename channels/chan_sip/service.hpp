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
// Threading: settings() and set_settings() from any thread (an atomic
// shared_ptr swap); the tables lock themselves. start()/stop() from the
// module's thread. Posted work holds a weak_ptr, so work still queued on a
// loop after stop() finds the service gone or the agent stopped, and does
// nothing.
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

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace tandem::sip {

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
    Log& log() { return log_; }
    // Pushes the current ban list to the socket filter if it changed.
    void sync_bans();

    static std::int64_t wall_now();

private:
    std::vector<QualifyTarget> tick();
    void probe_result(const ProbeResult& r);

    Core& core_;
    Log log_;
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
