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
// An incoming REGISTER is kept on this thread with a saved nua event under a
// numeric token; the loop that handles it answers with respond(token, ...),
// which queues the answer back here. So no Sofia object ever leaves the
// thread, and a loop only ever holds a number. Calls follow the same path:
// each INVITE dialog's handle stays here under a numeric call id, its events
// go out as CallOffer/CallEvent values, and the loops act on it with the
// call_* commands. This thread tracks each dialog's real state (answered,
// final answer sent, hung up), so call_hangup() always sends what the state
// allows (a final answer, CANCEL or BYE), and a 2xx that crosses our CANCEL
// is acknowledged and ended with a BYE. Sofia's own SDP engine is off: SDP is
// sdp.hpp's, carried here as text.
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
#include "outbound.hpp"
#include "qualify.hpp"

#include <tandem/channel.hpp>
#include <tandem/log.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tandem::sip {

// Keeps the Sofia-SIP library loaded until the process exits, whatever
// happens to chan_sip (see the .cpp for why); "" or what went wrong. Call
// once per load, from any thread, before any thread of the stack starts.
std::string pin_sofia_library();

struct AgentConfig {
    std::string bindaddr = "127.0.0.1";
    std::uint16_t port = 5060;
    std::vector<Transport> transports{Transport::udp};
    std::string user_agent = "Tandem";
    std::uint32_t udp_rcvbuf = 0;  // bytes for the UDP socket's receive buffer; 0: system default
    bool debug = false;            // log every message in and out
    bool force_rport = true;       // answer to the source port even without ;rport (nat=force_rport)
    // How long a TCP/TLS connection that authenticated may stay unused before
    // the stack closes it: at least a registration's life, so that a phone
    // behind NAT stays reachable over the connection it registered on.
    std::chrono::seconds stream_idle{1800};
    // TLS listener on tls_port when enabled: certificate and key (PEM files),
    // optional CA file for client certificates.
    bool tls = false;
    std::uint16_t tls_port = 5061;
    std::string tls_certfile, tls_keyfile, tls_cafile;
    bool tls_verify_client = false;
};

struct IncomingRequest {
    std::uint64_t token = 0;  // answer with SofiaAgent::respond(token, ...)
    SipRequest request;
};

// An initial INVITE, as plain values. The dialog stays on the Sofia thread
// under `call`; the loop answers with SofiaAgent::call_respond().
struct CallOffer {
    std::uint64_t call = 0;
    SipRequest request;        // method INVITE; authorization holds the Authorization values
    std::string request_user;  // user part of the Request-URI (the dialled number)
    std::string from_display, from_user;
    std::string asserted_display, asserted_user;  // P-Asserted-Identity, when present
    std::string sdp;                              // the offer, when the body is SDP
    bool has_body = false;                        // a body of another type than SDP
    bool reliable = false;                        // 100rel supported or required
    int max_forwards = default_max_forwards;      // the INVITE's Max-Forwards, at most 255
    // Replaces (RFC 3891): the dialog of ours it names, matched on this
    // thread; replaces_status is the refusal when it cannot be replaced (481
    // no such dialog, 486 confirmed but early-only, 603 already ending).
    bool has_replaces = false;
    std::uint64_t replaces = 0;
    int replaces_status = 0;
};

// Something that happened to a call dialog after its creation.
struct CallEvent {
    enum class Kind : std::uint8_t {
        progress,  // outgoing: 1xx with status/phrase (and SDP for early media)
        answered,  // outgoing: 2xx received (SDP answer); the stack sends the ACK
        failed,    // outgoing: final status >= 300 after authentication attempts
        reinvite,  // a re-INVITE with its SDP: answer with call_respond()
        ack,       // incoming: the ACK of our 2xx (SDP when we offered in the 2xx)
        info,      // INFO (content_type/body), already answered 200
        bye,       // the peer hung up (BYE, answered by the stack)
        cancel,    // the caller cancelled before the answer (487 sent by the stack)
        refer,     // REFER in the dialog: answer with call_refer_answer(), report with call_notify()
        ended,     // the dialog is gone on the Sofia thread: nothing more comes
        // The final answer to our re-INVITE (call_reinvite): 2xx with the
        // SDP answer (the stack sends the ACK), 491 on glare, or a failure.
        reinvite_answered,
    };
    std::uint64_t call = 0;
    Kind kind = Kind::ended;
    std::string sip_call_id;  // the message's Call-ID, when there is a message
    int status = 0;
    std::string phrase;
    std::string sdp;
    std::string content_type, body;
    // refer: Refer-To and Referred-By as written, and the dialog of ours the
    // Refer-To's Replaces names (0: none, or no such dialog).
    std::string refer_to, referred_by;
    std::uint64_t refer_replaces = 0;
};

// An outgoing INVITE.
struct OutgoingCall {
    std::string request_uri;               // sip:user@host:port
    std::string from, to;                  // header values: "Name" <sip:...>
    std::optional<SocketAddress> send_to;  // NAT: where the contact registered from
    Transport transport = Transport::udp;
    std::vector<std::string> route;  // the binding's Path
    std::string sdp;
    std::string auth_user, auth_secret;       // answer a 401/407 with these (trunks)
    std::string headers;                      // extra header lines
    int max_forwards = default_max_forwards;  // the INVITE's Max-Forwards: the channel's hops left
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
        // An initial INVITE; every later event of its dialog goes to on_call_event.
        std::function<void(CallOffer)> on_invite;
        std::function<void(CallEvent)> on_call_event;
        // An outbound registration changed state (registered, rejected, ...);
        // every failure is reported, and the end of one (unregistered).
        std::function<void(RegistryEntry)> on_registry_change;
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
    // The overload guard: while more than `percent` of the UDP receive
    // buffer holds datagrams not yet read, new INVITEs and REGISTERs get 503
    // with Retry-After (0: off).
    void set_overload_guard(unsigned percent, std::chrono::seconds retry_after);
    struct OverloadState {
        bool active = false;
        std::uint64_t refused = 0;                     // since start
        std::uint32_t udp_queued = 0, udp_buffer = 0;  // bytes, at the last look (each second at least)
    };
    OverloadState overload() const;
    // TCP and TLS connections opened to us that do not authenticate
    // (connection_guard.hpp): closed after `auth_timeout`, at most
    // `auth_limit` at a time (0: off); connections from `trusted` addresses
    // (peers known by address) count as authenticated.
    void set_connection_guard(std::chrono::seconds auth_timeout, unsigned auth_limit, std::vector<IpAddress> trusted);
    // A request that came over `transport` (TCP or TLS) from `source` passed
    // authentication: its connection stays.
    void connection_authenticated(Transport transport, const SocketAddress& source);
    struct ConnectionState {
        std::size_t unauthenticated = 0, authenticated = 0;  // open TCP/TLS connections at the last sweep
        std::uint64_t closed = 0;                            // by the guard, since start
    };
    ConnectionState connections() const;

    // --- calls, any thread ---
    // A fresh id for an outgoing dialog (never 0, never reused).
    std::uint64_t new_call_id();
    // Answers the INVITE (or re-INVITE) of `call`: 1xx, 2xx with SDP, or a
    // final failure. A 183 is sent reliably when the caller asked for 100rel.
    void call_respond(std::uint64_t call, int status, std::string phrase, std::string sdp = {},
                      std::string headers = {});
    void call_invite(std::uint64_t call, OutgoingCall invite);
    // Ends the dialog whatever its state: a final `status` to an unanswered
    // incoming INVITE, CANCEL to an unanswered outgoing one (BYE if its 2xx
    // crosses the CANCEL), BYE once answered. Nothing if already gone.
    void call_hangup(std::uint64_t call, int status);
    // A re-INVITE with `sdp` as our offer in the answered dialog `call`; its
    // final answer comes back as CallEvent::Kind::reinvite_answered (at once,
    // with 481, when the dialog is not answered or is ending).
    void call_reinvite(std::uint64_t call, std::string sdp);
    void call_info(std::uint64_t call, std::string content_type, std::string body);
    // Answers the REFER that `call` last reported (202, or a refusal).
    void call_refer_answer(std::uint64_t call, int status);
    // A NOTIFY of the REFER's implicit subscription (RFC 3515): `sipfrag` is
    // the status line of the transfer's progress ("SIP/2.0 100 Trying");
    // `final` ends the subscription.
    void call_notify(std::uint64_t call, std::string sipfrag, bool final);
    // Dialogs alive on the Sofia thread (for tests and the CLI).
    std::size_t dialogs() const;

    // --- outbound registrations (trunks), any thread ---
    // The registrations to keep: new ones start, removed or changed ones are
    // unregistered. On stop() every registered one is unregistered.
    void set_registrations(std::vector<OutboundRegistration> registrations);
    // Their state, for `sip show registry`.
    std::vector<RegistryEntry> registry() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::sip
