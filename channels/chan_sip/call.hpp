// Calls: SIP INVITE dialogs bound to Tandem channels (technology "SIP").
//
// Every dialog lives on the Sofia thread under a numeric id (SofiaAgent);
// everything else about a call lives in a SipCall on its channel's loop. The
// Sofia thread reports through CallManager::on_invite()/on_event(), which
// find the call's loop in a locked table and post there, so the events of one
// call run in order on one loop; the loop acts back through the agent's
// command queue (call_respond, call_invite, call_hangup, call_info). Neither
// side ever waits for the other, and the agent's view of a dialog's state is
// the one that decides what a hangup sends (final answer, CANCEL or BYE), so
// a BYE crossing a local hangup or a CANCEL crossing a 200 ends cleanly.
//
// A SipCall leaves the table when its last dialog is gone on the Sofia thread
// ("ended"); the channel holds it through its driver until the channel ends.
// Incoming: authentication (digest, or address for insecure=invite peers),
// ACL, call-limit, SDP answer, then a channel that runs the dialplan (or,
// for an INVITE with Replaces, that takes over the replaced call's peer).
// Transfers: a REFER in a call's dialog redirects the call's bridge peer
// (Core::redirect) to an extension (blind) or to the peer of the phone's
// other call named by the Refer-To's Replaces (attended), and reports with
// NOTIFYs of message/sipfrag (RFC 3515, RFC 5589).
// Outgoing: SIP/endpoint rings every registered contact (first 2xx wins, the
// others are cancelled), SIP/peer/number calls number@host of a trunk,
// SIP/number@host[:port] calls an address directly.
//
// Threading: CallManager's public methods are safe from any thread.
#pragma once

#include "settings.hpp"
#include "sofia_agent.hpp"

#include <tandem/channel.hpp>
#include <tandem/core.hpp>
#include <tandem/log.hpp>

#include <cstdint>
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace tandem::sip {

class LoopWork;
class SipService;
struct SipCall;

// One line of `sip show channels`.
struct CallSummary {
    std::string channel;
    std::string endpoint;
    std::string call_id;  // the SIP Call-ID ("-" before an outgoing call hears back)
    std::string dialogs;  // Tandem's dialog id(s)
    std::string state;
    std::string codec;
    std::string peer;  // remote RTP address
    bool outbound = false;
};

// The table shared by the manager and its calls (which may outlive it
// briefly, in work still queued on a loop).
struct CallTable {
    std::mutex mu;
    std::unordered_map<std::uint64_t, std::shared_ptr<SipCall>> by_dialog;
    std::map<std::string, int, std::less<>> per_endpoint;  // calls in progress, for call-limit
    // The loop of an endpoint's calls while it has any: its next ones go
    // there too, so a transfer between two of them bridges on one loop.
    std::map<std::string, boost::asio::io_context*, std::less<>> endpoint_loop;
    std::vector<std::weak_ptr<SipCall>> all;
    std::size_t prune_at = 64;

    // Lists a new call (with `mu` held). Ended calls are pruned only when the
    // list has doubled since the last pruning: scanning every call at every
    // set-up made each one cost O(calls in progress) under the lock.
    void add(std::weak_ptr<SipCall> call) {
        all.push_back(std::move(call));
        if (all.size() < prune_at) return;
        std::erase_if(all, [](auto& w) { return w.expired(); });
        prune_at = std::max<std::size_t>(64, 2 * all.size());
    }
};

class CallManager {
public:
    CallManager(SipService& service, Core& core, Log log, std::shared_ptr<LoopWork> work);
    ~CallManager();

    // After the Sofia thread stopped: lets go of the calls still in the table.
    void stop();

    // --- Sofia thread ---
    void on_invite(CallOffer offer);
    void on_event(CallEvent event);

    // --- any thread: the "SIP" channel technology ---
    std::shared_ptr<Channel> request(const ChannelRequest& req, int& cause);

    std::vector<CallSummary> summaries() const;
    std::size_t active() const;
    // Calls in progress per endpoint (those that count towards call-limit).
    std::map<std::string, int, std::less<>> per_endpoint() const;

private:
    void handle_invite(const std::shared_ptr<SipCall>& call, CallOffer offer);
    void take_over(const std::shared_ptr<SipCall>& call, const std::shared_ptr<Channel>& chan,
                   const std::shared_ptr<Channel>& replaced, const std::shared_ptr<Channel>& peer);

    SipService& service_;
    Core& core_;
    Log log_;
    std::shared_ptr<LoopWork> work_;
    std::shared_ptr<CallTable> table_;
};

}  // namespace tandem::sip
