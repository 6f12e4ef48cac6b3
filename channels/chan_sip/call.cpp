#include "call.hpp"

#include "causes.hpp"
#include "dtmf_info.hpp"
#include "inband_dtmf.hpp"
#include "sdp.hpp"
#include "service.hpp"
#include "transfer.hpp"

#include <tandem/dsp.hpp>
#include <tandem/moh.hpp>
#include <tandem/rtp.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fmt/format.h>

#include <strings.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>

namespace tandem::sip {

namespace {

namespace asio = boost::asio;

// The RTP engine of the core. (A pointer: calls are refused media, not
// crashed, should a core ever come without one.)
RtpEngine* rtp_engine(Core& core) {
    return &core.rtp();
}

std::int64_t wall_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

MediaPolicy policy_of(const Endpoint* ep) {
    MediaPolicy p;
    std::vector<std::string> names = ep ? ep->codecs : std::vector<std::string>{"ulaw", "alaw"};
    for (auto& n : names)
        if (auto f = format_by_name(n))
            (format_info(*f).kind == MediaKind::video ? p.video_codecs : p.codecs).push_back(*f);
    if (p.codecs.empty()) p.codecs = {Format::ulaw, Format::alaw};
    if (ep) {
        p.telephone_event = ep->dtmfmode == "rfc4733" || ep->dtmfmode == "auto";
        p.require_srtp = ep->media_encryption == "sdes";
        p.video = ep->videosupport && !p.video_codecs.empty();
    }
    return p;
}

// The base64 key of a generated SDES crypto ("1 SUITE inline:KEY").
std::string key_of(const SrtpCrypto& c) {
    auto text = c.to_sdp();
    auto pos = text.find("inline:");
    if (pos == std::string::npos) return {};
    auto key = text.substr(pos + 7);
    if (auto bar = key.find_first_of("| "); bar != std::string::npos) key.resize(bar);
    return key;
}

}  // namespace

// --- the call, on its loop --------------------------------------------------

struct SipCall : std::enable_shared_from_this<SipCall> {
    enum class State { setup, early, up, ended };

    SipCall(std::weak_ptr<SipService> svc, std::shared_ptr<CallTable> t, std::shared_ptr<LoopWork> w,
            asio::io_context& l, Log lg, bool out)
        : service(std::move(svc)),
          table(std::move(t)),
          work(std::move(w)),
          loop(&l),
          log(std::move(lg)),
          outbound(out) {}
    ~SipCall() {
        // The sessions and timers belong to the call's loop; the last owner
        // may be elsewhere.
        if (rtp) on_loop([r = std::move(rtp)] { r->close(); });
        if (video_rtp) on_loop([r = std::move(video_rtp)] { r->close(); });
        if (media_watch) on_loop([t = std::move(media_watch)] {});
        if (glare_timer) on_loop([t = std::move(glare_timer)] {});
        if (counted.empty()) return;
        std::lock_guard lock(table->mu);
        if (auto it = table->per_endpoint.find(counted); it != table->per_endpoint.end() && --it->second <= 0) {
            table->per_endpoint.erase(it);
            table->endpoint_loop.erase(counted);
        }
    }

    std::weak_ptr<SipService> service;
    std::shared_ptr<CallTable> table;
    // Every closure and timer the call puts on its loop goes through here
    // (service.hpp), so that chan_sip's unload can cancel and wait for them.
    std::shared_ptr<LoopWork> work;
    // Changes only when the channel moves (move_channel), on the old loop and
    // under the table's lock, which the Sofia thread holds to read it.
    asio::io_context* loop;
    Log log;
    bool outbound;
    std::weak_ptr<Channel> channel;
    std::string endpoint;  // name, "" for a direct call
    std::string counted;   // endpoint counted in per_endpoint
    State state = State::setup;
    bool final_sent = false;
    int refused_with = 0;  // the final failure we answered, if any
    bool reliable = false;
    bool late_offer = false;  // an INVITE without SDP: we offered in the 200, the ACK answers
    bool held = false;
    std::string dtmfmode = "rfc4733";
    std::string mohsuggest;  // the endpoint's mohsuggest=, offered to the party it holds
    std::string faxdetect = "no";
    std::string remote_party;
    std::string sip_call_id;
    // Our phone transferred this call away (REFER): it sends the BYE after
    // the final NOTIFY; ours follows only if it does not (bye_later()).
    bool transferred = false;
    // Dialogs: one for an incoming call, one per contact for an outgoing one.
    std::vector<std::uint64_t> dialogs;
    std::size_t live = 0;
    std::uint64_t winner = 0;
    int best_failure = 0;
    std::vector<OutgoingCall> invites;  // prepared by request(), sent by call()
    MediaPolicy policy;
    LocalMedia local;
    std::string answer_sdp;
    std::optional<MediaPlan> plan;
    std::shared_ptr<RtpSession> rtp;
    // Video (videosupport=yes): relayed by a bridge to a peer with the same
    // codec, never decoded; without one its packets are dropped.
    std::shared_ptr<RtpSession> video_rtp;
    // rtptimeout: an answered call whose peer stopped sending RTP is hung up.
    std::chrono::seconds rtptimeout{60};
    std::shared_ptr<asio::steady_timer> media_watch;
    std::uint64_t seen_packets = 0;
    std::chrono::seconds silent_for{0};
    std::optional<SrtpCrypto> srtp_local;
    int local_version = 1;
    // The SDP we sent last (offer or answer): the base of our own re-INVITEs,
    // and what an answer (in a 200 or, after a late offer, the ACK) answers.
    SdpSession last_sdp;
    // mohinterpret=passthrough: a hold of the other party is passed on to
    // the phone by re-INVITE instead of music. `holding` is what the phone
    // was last told, `want_hold` the latest wish; one re-INVITE at a time
    // (`reoffering`, also while a 491's retry waits), and the last wish wins.
    bool passthrough = false;
    bool holding = false, want_hold = false, reoffering = false;
    bool reoffer_failure_logged = false;
    std::unique_ptr<SdpSession> reoffer;  // the offer of our re-INVITE in flight
    bool reoffer_holds = false;           // ... and whether it holds the phone or resumes it
    std::shared_ptr<asio::steady_timer> glare_timer;
    // What `sip show channels` shows, published from the loop.
    mutable std::mutex info_mu;
    CallSummary info;

    void publish() {
        CallSummary s;
        if (auto c = chan()) s.channel = c->name();
        s.endpoint = endpoint;
        s.call_id = sip_call_id.empty() ? "-" : sip_call_id;
        for (auto id : dialogs) s.dialogs += (s.dialogs.empty() ? "" : ",") + std::to_string(id);
        s.state = state == State::up      ? (held ? "Hold" : "Up")
                  : state == State::early ? "Early"
                  : state == State::ended ? "Down"
                                          : "Setup";
        s.codec = plan ? std::string(format_info(plan->format).name) : "-";
        s.peer = plan ? fmt::format("{}:{}", plan->remote_address, plan->remote_port) : remote_party;
        s.outbound = outbound;
        std::lock_guard lock(info_mu);
        info = std::move(s);
    }

    // Runs `f` on the call's loop: at once when already there, else posted.
    template <class F>
    void on_loop(F f) {
        if (loop->get_executor().running_in_this_thread())
            f();
        else
            work->post(*loop, std::move(f));
    }

    SofiaAgent* agent() {
        auto s = service.lock();
        return s && s->running() ? &s->agent() : nullptr;
    }
    std::shared_ptr<Channel> chan() { return channel.lock(); }

    // mohsuggest=: the party this call puts on hold hears the suggested class
    // unless it has a class of its own. The bridge passes the hold on at once
    // (same loop), so the peer's music has just started, in its own class or
    // "default": switch it before its first frame.
    void suggest_music(Channel& c) {
        if (mohsuggest.empty() || c.peer_name().empty()) return;
        auto peer = c.core().find_channel(c.peer_name());
        if (!peer || &peer->loop() != &c.loop() || !peer->music_playing()) return;
        if (!peer->music_class().empty()) return;
        start_music_on_hold(*peer, mohsuggest);
    }

    void send_respond(int status, std::string sdp = {}) {
        if (dialogs.empty()) return;
        if (status >= 300) refused_with = status;
        if (auto* a = agent())
            a->call_respond(dialogs.front(), status, std::string(status_phrase(status)), std::move(sdp));
    }

    // Applies a negotiated plan to the RTP session and the channel.
    // `peer_holds` overrides what the plan says about the peer holding us
    // (an answer to our own hold re-INVITE is no hold of the peer's).
    bool apply(const MediaPlan& p, std::optional<bool> peer_holds = std::nullopt) {
        bool was_held = held;
        plan = p;
        if (auto c = chan()) c->set_native_format(p.format);
        if (rtp) {
            rtp->map_payload(static_cast<std::uint8_t>(p.pt), p.format);
            rtp->set_send_format(p.format, static_cast<std::uint8_t>(p.pt), p.ptime ? p.ptime : 20);
            if (p.telephone_event_pt >= 0) rtp->set_dtmf_payload(p.telephone_event_pt, p.telephone_event_pt, 8000);
            boost::system::error_code ec;
            auto addr = asio::ip::make_address(p.remote_address, ec);
            if (!ec && !addr.is_unspecified() && p.remote_port) {
                rtp->set_remote(addr, p.remote_port);
                if (p.remote_rtcp_port) rtp->set_remote_rtcp(addr, *p.remote_rtcp_port);
            }
            if (p.srtp && srtp_local) {
                auto remote = SrtpCrypto::parse(p.remote_crypto);
                if (!remote || !rtp->set_srtp(*srtp_local, *remote)) {
                    log.warning("{}: the peer's SRTP key was refused", name());
                    return false;
                }
            }
        }
        if (video_rtp && p.video) {
            auto& v = *p.video;
            video_rtp->clear_payloads();
            for (auto& c : v.codecs)
                if (auto f = format_by_encoding(c.encoding, c.clock))
                    video_rtp->map_payload(static_cast<std::uint8_t>(c.pt), *f);
            video_rtp->set_send_format(v.format, static_cast<std::uint8_t>(v.pt));
            boost::system::error_code ec;
            auto addr = asio::ip::make_address(v.remote_address, ec);
            if (!ec && !addr.is_unspecified() && v.remote_port) video_rtp->set_remote(addr, v.remote_port);
        }
        update_detection();
        bool now_held = peer_holds.value_or(p.on_hold());
        if (now_held != was_held && state == State::up)
            if (auto c = chan()) {
                c->on_indication(now_held ? Indication::hold : Indication::unhold);
                if (now_held) suggest_music(*c);
            }
        held = now_held;
        return true;
    }

    // In-band detection (tandem/dsp.hpp): DTMF for dtmfmode=inband, and for
    // auto when the peer offered no telephone-event; fax tones for faxdetect=.
    void update_detection() {
        auto c = chan();
        if (!c) return;
        auto what = parse_faxdetect(faxdetect).value_or(ToneDetection{});
        what.dtmf = dtmfmode == "inband" || (dtmfmode == "auto" && plan && plan->telephone_event_pt < 0);
        c->set_tone_detection(what);
    }

    std::string name() {
        auto c = chan();
        return c ? c->name() : fmt::format("SIP call {}", dialogs.empty() ? 0 : dialogs.front());
    }

    void hangup_channel(int cause) {
        if (auto c = chan()) c->on_hangup(cause);
    }

    // Once a second on the call's loop while it is up: counts the seconds
    // without a new RTP packet (hold pauses the count, as a held phone may
    // send nothing) and hangs up at rtptimeout.
    void watch_media() {
        if (rtptimeout.count() == 0 || !rtp || media_watch) return;
        media_watch = work->timer(*loop);
        seen_packets = rtp->stats().packets_received;
        silent_for = std::chrono::seconds(0);
        arm_media_watch();
    }
    void arm_media_watch() {
        media_watch->expires_after(std::chrono::seconds(1));
        work->wait(*media_watch, [weak = weak_from_this(), at = loop](const boost::system::error_code& ec) {
            auto self = weak.lock();
            // A call that has moved to another loop watches from there.
            if (ec || !self || self->loop != at || self->state != State::up || !self->rtp) return;
            auto received = self->rtp->stats().packets_received;
            // Either side holding may stop the phone's RTP.
            if (received != self->seen_packets || self->held || self->holding || self->want_hold) {
                self->seen_packets = received;
                self->silent_for = std::chrono::seconds(0);
            } else if (++self->silent_for >= self->rtptimeout) {
                if (auto c = self->chan()) {
                    self->log.notice("{}: no RTP for {} s: hanging up", c->name(), self->rtptimeout.count());
                    c->request_hangup(cause::normal_clearing);
                }
                return;
            }
            self->arm_media_watch();
        });
    }

    void attach_media_handler() {
        if (!rtp) return;
        rtp->set_frame_handler([weak = channel](const Frame& f) {
            if (auto c = weak.lock()) c->on_frame(f);
        });
    }

    // A transferred call's channel has ended: give the phone a few seconds
    // to send its BYE (RFC 5589), then send ours (nothing if it did).
    // The timer is cancelled when chan_sip stops (the agent is gone then).
    void bye_later() {
        auto timer = work->timer(*loop);
        timer->expires_after(std::chrono::seconds(5));
        work->wait(*timer, [timer, self = shared_from_this()](const boost::system::error_code& ec) {
            if (ec) return;
            if (auto* a = self->agent())
                for (auto id : self->dialogs) a->call_hangup(id, 0);
        });
    }

    void on_event(const CallEvent& e);
    void handle(const CallEvent& e);
    void hold_peer(bool hold);
    void send_reoffer();
    void on_reoffer_answer(const CallEvent& e);
    void on_refer(const CallEvent& e);
    void on_reinvite(const CallEvent& e);
    void stats_to_variables();
};

void SipCall::stats_to_variables() {
    auto c = chan();
    if (!c || !rtp) return;
    auto st = rtp->stats();
    c->set_variable("RTPAUDIOQOS",
                    fmt::format("ssrc={};themssrc={};lp={};rxjitter={:.4f};rxcount={};txjitter={:.4f};txcount={};"
                                "rlp={};rtt={:.4f}",
                                st.local_ssrc, st.remote_ssrc, st.packets_lost, st.jitter_ms / 1000.0,
                                st.packets_received, st.remote_jitter_ms / 1000.0, st.packets_sent,
                                st.remote_packets_lost, st.rtt_ms < 0 ? 0.0 : st.rtt_ms / 1000.0));
    c->set_variable("RTPAUDIOQOSLOSS", fmt::format("minrxlost={};maxrxlost={}", st.packets_lost, st.packets_lost));
}

void SipCall::on_reinvite(const CallEvent& e) {
    auto* a = agent();
    if (!a) return;
    auto id = e.call;
    if (e.sdp.empty()) {
        // An offerless re-INVITE: offer again; the answer comes in the ACK.
        ++local_version;
        local.session_version = std::to_string(local_version);
        last_sdp = make_offer(policy, local, holding ? Direction::sendonly : Direction::sendrecv);
        late_offer = true;
        a->call_respond(id, 200, "OK", format_sdp(last_sdp));
        return;
    }
    std::string error;
    auto sdp = parse_sdp(e.sdp, &error);
    if (!sdp) {
        a->call_respond(id, 488, "Not Acceptable Here");
        return;
    }
    ++local_version;
    local.session_version = std::to_string(local_version);
    auto out = answer_offer(*sdp, policy, local);
    if (out.status != 200) {
        log.notice("{}: re-INVITE refused: {}", name(), out.reason);
        a->call_respond(id, 488, "Not Acceptable Here");
        return;
    }
    // While we hold the phone its own re-INVITE does not resume it.
    if (holding) keep_holding(out.answer, out.plan);
    if (!apply(out.plan)) {
        a->call_respond(id, 488, "Not Acceptable Here");
        return;
    }
    last_sdp = out.answer;
    a->call_respond(id, 200, "OK", format_sdp(out.answer));
}

// --- holding the phone (mohinterpret=passthrough) ---------------------------

void SipCall::hold_peer(bool hold) {
    want_hold = hold;
    send_reoffer();
}

void SipCall::send_reoffer() {
    if (reoffering || state != State::up || want_hold == holding || last_sdp.media.empty()) return;
    auto id = outbound ? winner : (dialogs.empty() ? 0 : dialogs.front());
    auto* a = agent();
    if (!a || !id) return;
    ++local_version;
    local.session_version = std::to_string(local_version);
    reoffer = std::make_unique<SdpSession>(hold_reoffer(last_sdp, want_hold, local.session_version));
    reoffer_holds = want_hold;
    reoffering = true;
    log.debug("{}: re-INVITE ({}): the other party {}", name(), to_string(audio_direction(*reoffer)),
              want_hold ? "holds the call" : "resumes");
    a->call_reinvite(id, format_sdp(*reoffer));
}

void SipCall::on_reoffer_answer(const CallEvent& e) {
    if (!reoffering || !reoffer) return;
    bool hold = reoffer_holds;
    if (e.status >= 200 && e.status < 300) {
        reoffering = false;
        holding = hold;
        last_sdp = std::move(*reoffer);
        reoffer.reset();
        std::string error;
        auto sdp = parse_sdp(e.sdp, &error);
        std::optional<MediaPlan> p;
        if (sdp) p = accept_answer(last_sdp, *sdp, policy, &error);
        if (p)
            apply(*p, peer_holds_after(last_sdp, *p, held));
        else
            log.notice("{}: the answer to our re-INVITE is unusable ({}); media unchanged", name(),
                       e.sdp.empty() ? "no SDP" : error);
        send_reoffer();  // the wish may have changed meanwhile
        return;
    }
    // The offer never took effect: the next one may carry its version, and
    // is made afresh (after a 491's wait too).
    if (local.session_version == reoffer->session_version) local.session_version = std::to_string(--local_version);
    reoffer.reset();
    if (e.status == 491) {
        // Glare (RFC 3261 section 14.1): the phone sent its own re-INVITE at
        // the same time. Try again after a random delay, in units of 10 ms:
        // 2.1 to 4 s when we chose the Call-ID (our outgoing call), else up
        // to 2 s; wishes queue behind it meanwhile.
        std::random_device rd;
        std::uniform_int_distribution<int> steps(outbound ? 210 : 0, outbound ? 400 : 200);
        auto delay = std::chrono::milliseconds(10 * steps(rd));
        log.debug("{}: re-INVITE met 491; again in {} ms", name(), delay.count());
        glare_timer = work->timer(*loop);
        glare_timer->expires_after(delay);
        work->wait(*glare_timer, [weak = weak_from_this()](const boost::system::error_code& ec) {
            auto self = weak.lock();
            if (ec || !self) return;
            self->reoffering = false;
            self->send_reoffer();
        });
        return;
    }
    // Refused: the call stays up, the phone keeps the state it knew, and a
    // later hold or resume tries again.
    reoffering = false;
    want_hold = holding;
    if (!reoffer_failure_logged) {
        reoffer_failure_logged = true;
        log.notice("{}: the phone refused our re-INVITE to {} it ({} {}); the call stays up", name(),
                   hold ? "hold" : "resume", e.status, e.phrase);
    }
}

void SipCall::on_event(const CallEvent& e) {
    handle(e);
    publish();
}

void SipCall::handle(const CallEvent& e) {
    using K = CallEvent::Kind;
    if (outbound && !e.sip_call_id.empty() && (winner == 0 || winner == e.call)) sip_call_id = e.sip_call_id;
    switch (e.kind) {
        case K::progress: {
            if (winner || state == State::ended) return;
            if (!e.sdp.empty()) {
                auto sdp = parse_sdp(e.sdp);
                std::string error;
                if (sdp)
                    if (auto p = accept_answer(last_sdp, *sdp, policy, &error)) {
                        apply(*p);
                        attach_media_handler();
                    }
            }
            state = State::early;
            if (auto c = chan())
                c->on_indication(e.status == 180 || e.status == 181 || e.status == 182 ? Indication::ringing
                                 : !e.sdp.empty()                                      ? Indication::progress
                                                                                       : Indication::proceeding);
            return;
        }
        case K::answered: {
            // Hung up here while the 200 was on its way: the agent BYEs it
            // when our hangup reaches it (or did already, for a cancelled fork).
            if (state == State::ended || (winner && winner != e.call)) return;
            winner = e.call;
            if (auto* a = agent())
                for (auto other : dialogs)
                    if (other != winner) a->call_hangup(other, 0);
            std::string error;
            auto sdp = parse_sdp(e.sdp, &error);
            std::optional<MediaPlan> p;
            if (sdp) p = accept_answer(last_sdp, *sdp, policy, &error);
            if (!p && !plan) {
                log.warning("{}: answered without usable SDP ({}); hanging up", name(),
                            e.sdp.empty() ? "no SDP" : error);
                if (auto* a = agent()) a->call_hangup(winner, 0);
                state = State::ended;
                hangup_channel(cause::bearer_capability_notavail);
                return;
            }
            if (p && !apply(*p)) {
                if (auto* a = agent()) a->call_hangup(winner, 0);
                state = State::ended;
                hangup_channel(cause::bearer_capability_notavail);
                return;
            }
            attach_media_handler();
            state = State::up;
            watch_media();
            if (auto c = chan()) c->on_answered();
            send_reoffer();  // a hold that came before the answer
            return;
        }
        case K::failed: {
            // Busy beats unavailable beats anything else, as a caller expects.
            auto rank = [](int s) { return s == 486 || s == 600 ? 3 : s == 480 || s == 408 ? 2 : s ? 1 : 0; };
            if (rank(e.status) >= rank(best_failure)) best_failure = e.status;
            return;
        }
        case K::reinvite:
            on_reinvite(e);
            return;
        case K::reinvite_answered:
            on_reoffer_answer(e);
            return;
        case K::refer:
            on_refer(e);
            return;
        case K::ack:
            if (late_offer && !e.sdp.empty()) {
                late_offer = false;
                std::string error;
                auto sdp = parse_sdp(e.sdp, &error);
                std::optional<MediaPlan> p;
                if (sdp) p = accept_answer(last_sdp, *sdp, policy, &error);
                if (p) {
                    apply(*p, peer_holds_after(last_sdp, *p, held));
                    attach_media_handler();
                } else {
                    log.notice("{}: the ACK's SDP is unusable ({}): hanging up", name(), error);
                    if (auto* a = agent()) a->call_hangup(e.call, 0);
                }
            }
            send_reoffer();  // a hold that came before the ACK
            return;
        case K::info: {
            std::uint32_t duration = 100;
            char d = parse_info_digit(e.content_type, e.body, &duration);
            if (!d) return;
            if (auto c = chan()) {
                c->on_frame(Frame::digit(FrameKind::dtmf_begin, d));
                c->on_frame(Frame::digit(FrameKind::dtmf_end, d, duration));
                log.debug("{}: DTMF {} by SIP INFO", c->name(), d);
            }
            return;
        }
        case K::bye:
            stats_to_variables();
            state = State::ended;
            hangup_channel(cause::normal_clearing);
            return;
        case K::cancel:
            state = State::ended;
            // Asterisk's choice: the caller gave up, a normal end.
            hangup_channel(cause::normal_clearing);
            return;
        case K::ended: {
            if (live) --live;
            {
                std::lock_guard lock(table->mu);
                table->by_dialog.erase(e.call);
            }
            if (winner == e.call || (!outbound && !dialogs.empty() && dialogs.front() == e.call)) {
                state = State::ended;
                hangup_channel(refused_with ? cause_from_status(refused_with) : cause::normal_clearing);
            } else if (outbound && !winner && live == 0 && state != State::ended) {
                state = State::ended;
                int c = best_failure ? cause_from_status(best_failure) : cause::normal_clearing;
                log.notice("{}: call failed: {} {} ({})", name(), best_failure, status_phrase(best_failure),
                           cause::name(c));
                hangup_channel(c);
            }
            return;
        }
    }
}

// --- transfers (RFC 3515, 3891, 5589) ----------------------------------------

namespace {

// A callee that Dial owns (it runs no dialplan of its own): the leg a
// transfer can hand to another channel's bridge.
bool owned_by_dial(const Channel& c) {
    return c.last_app() == "AppDial";
}

// A caller whose dialplan waits in Dial: Dial lets it go when redirected
// without a destination (AppResult::released).
bool in_dial(const Channel& c) {
    return strcasecmp(c.last_app().c_str(), "Dial") == 0;
}

}  // namespace

// Our phone sent a REFER in this call's dialog: it transfers the party it
// talks to (the transferee, our channel's bridge peer) either to a dialplan
// extension (blind) or to the party of its other call (attended, the
// Refer-To's Replaces). The transferee is redirected (Core::redirect); Dial
// then hangs up our leg, whose BYE the phone sends after the final NOTIFY.
void SipCall::on_refer(const CallEvent& e) {
    auto* a = agent();
    auto c = chan();
    auto svc = service.lock();
    if (!a) return;
    const auto id = e.call;
    // Every outcome is published as event::Transfer for observers.
    event::Transfer outcome{std::string(transfer_kind(e.refer_to)), name(), c ? c->uniqueid() : ""};
    auto report = [&](int status) {
        outcome.ok = status == 200;
        outcome.result = std::to_string(status);
        if (c) c->core().events().publish(outcome);
    };
    auto refuse = [&](int status, std::string_view why) {
        log.notice("{}: REFER to {} refused with {}: {}", name(), e.refer_to, status, why);
        a->call_refer_answer(id, status);
        report(status);
    };
    if (!c || !svc || state != State::up || c->hungup()) return refuse(603, "the call is not up");
    auto settings = svc->settings();
    const Endpoint* ep = endpoint.empty() ? nullptr : settings->find(endpoint);
    if (!ep || !ep->allowtransfer)
        return refuse(403, ep ? "allowtransfer=no" : "only a configured endpoint may transfer");
    auto target = parse_refer_to(e.refer_to);
    if (!target) return refuse(400, "unreadable Refer-To");
    auto& core = c->core();
    auto peer = c->peer_name().empty() ? nullptr : core.find_channel(c->peer_name());
    // Only a party bridged to this leg (each the other's peer) is transferred.
    if (!peer || peer->hungup() || peer == c || &peer->loop() != loop || peer->peer_name() != c->name())
        return refuse(603, "the call is not connected to anyone to transfer");

    a->call_refer_answer(id, 202);
    a->call_notify(id, sipfrag(100, "Trying"), false);
    auto fail = [&](int status, std::string_view phrase, std::string_view why) {
        log.notice("{}: transfer of {} to {} failed: {}", c->name(), peer->name(), e.refer_to, why);
        a->call_notify(id, sipfrag(status, phrase), true);
        report(status);
    };

    if (!target->replaces) {
        // Blind: TRANSFER_CONTEXT if set, else where this leg's calls go.
        auto context = c->variable("TRANSFER_CONTEXT").value_or("");
        if (context.empty())
            context = !outbound ? c->context() : !ep->context.empty() ? ep->context : settings->general.context;
        outcome.context = context;
        outcome.exten = target->user;
        if (target->user.empty() || !core.dialplan_exists(context, target->user, 1, peer->caller().number))
            return fail(404, "Not Found", fmt::format("no extension {}@{}", target->user, context));
        log.info("{}: blind transfer of {} to {}@{}", c->name(), peer->name(), target->user, context);
        peer->set_variable("BLINDTRANSFER", c->name());
        transferred = true;
        core.redirect(peer, Channel::Redirect{context, target->user, 1, nullptr});
        a->call_notify(id, sipfrag(200, "OK"), true);
        report(200);
        return;
    }

    // Attended: the Replaces names our dialog of the transferer's other call;
    // its peer is the transfer target.
    std::shared_ptr<SipCall> other;
    if (e.refer_replaces) {
        std::lock_guard lock(table->mu);
        if (auto it = table->by_dialog.find(e.refer_replaces); it != table->by_dialog.end()) other = it->second;
    }
    auto other_chan = other ? other->chan() : nullptr;
    auto target_peer =
        other_chan && !other_chan->peer_name().empty() ? core.find_channel(other_chan->peer_name()) : nullptr;
    if (!target_peer || target_peer->hungup() || other_chan->hungup() || other.get() == this ||
        target_peer->peer_name() != other_chan->name())
        return fail(481, "Call/Transaction Does Not Exist", "the call the Replaces names is not connected here");
    outcome.target_channel = target_peer->name();
    if (target_peer == peer) return fail(503, "Service Unavailable", "both calls are connected to the same party");
    // The new bridge is driven by a leg that runs a dialplan; the other is
    // let go by whoever has it (a bare redirect): a callee its Dial owns, or,
    // when both parties called the transferer (the call-waiting case), a
    // caller waiting in Dial, whose dialplan then stops and leaves it to the
    // other caller's Dial. The target may live on another loop (its Dial
    // then moves it to the peer's): what is written to it goes through its
    // own loop, before the redirect.
    const bool let_target_go = owned_by_dial(*target_peer) || (in_dial(*peer) && in_dial(*target_peer));
    if (!let_target_go && !owned_by_dial(*peer))
        return fail(503, "Service Unavailable", "the parties run applications that cannot hand them over");
    post_to_channel(target_peer, [by = c->name()](Channel* ch) { ch->set_variable("ATTENDEDTRANSFER", by); });
    peer->set_variable("ATTENDEDTRANSFER", c->name());
    if (let_target_go) {
        core.redirect(target_peer, Channel::Redirect{});
        core.redirect(peer, Channel::Redirect{{}, {}, 1, target_peer});
    } else {
        core.redirect(peer, Channel::Redirect{});
        core.redirect(target_peer, Channel::Redirect{{}, {}, 1, peer});
    }
    log.info("{}: attended transfer: {} connected to {}", c->name(), peer->name(), target_peer->name());
    transferred = true;
    a->call_notify(id, sipfrag(200, "OK"), true);
    report(200);
}

// --- the driver ------------------------------------------------------------

namespace {

class SipDriver final : public ChannelDriver {
public:
    explicit SipDriver(std::shared_ptr<SipCall> call) : call_(std::move(call)) {}
    ~SipDriver() override {
        // Normally gone at hangup. A channel destroyed without one is being
        // torn down around us (the sender then leaves its tap alone: see
        // inband_dtmf.hpp), and the sender's timer belongs to the loop.
        if (inband_) call_->on_loop([s = std::move(inband_)] {});
    }
    SipDriver(const SipDriver&) = delete;
    SipDriver& operator=(const SipDriver&) = delete;

    void call(Channel& chan, std::chrono::milliseconds) override {
        auto& c = *call_;
        auto* a = c.agent();
        if (!a || c.invites.empty()) {
            c.state = SipCall::State::ended;
            c.hangup_channel(cause::normal_circuit_congestion);
            return;
        }
        auto sdp = format_sdp(c.last_sdp);
        for (auto& inv : c.invites) {
            auto id = a->new_call_id();
            c.dialogs.push_back(id);
            ++c.live;
            {
                std::lock_guard lock(c.table->mu);
                c.table->by_dialog[id] = call_;
            }
            inv.sdp = sdp;
            inv.max_forwards = chan.max_forwards();
            a->call_invite(id, std::move(inv));
        }
        c.invites = {};  // and its memory: the call keeps no copy of the requests
        c.publish();
    }

    void answer(Channel& chan) override {
        auto& c = *call_;
        if (c.state == SipCall::State::ended || c.final_sent || c.outbound) return;
        c.final_sent = true;
        c.state = SipCall::State::up;
        c.attach_media_handler();
        c.watch_media();
        c.send_respond(200, c.answer_sdp);
        c.publish();
        c.log.debug("{}: answered", chan.name());
    }

    void indicate(Channel&, Indication i) override {
        auto& c = *call_;
        if (i == Indication::hold || i == Indication::unhold) {
            // The other party holds or resumes: a passthrough phone is told
            // by re-INVITE; for the others the core plays music.
            if (c.passthrough && c.state != SipCall::State::ended) c.hold_peer(i == Indication::hold);
            return;
        }
        if (c.outbound || c.final_sent || c.state == SipCall::State::ended) return;
        switch (i) {
            case Indication::ringing:
                c.send_respond(180);
                c.state = SipCall::State::early;
                break;
            case Indication::progress:
                // Early media: the answer goes in the 183 (reliable when the caller asked for 100rel).
                c.attach_media_handler();
                c.send_respond(183, c.late_offer ? std::string{} : c.answer_sdp);
                c.state = SipCall::State::early;
                break;
            case Indication::busy:
                c.final_sent = true;
                c.send_respond(486);
                break;
            case Indication::congestion:
                c.final_sent = true;
                c.send_respond(503);
                break;
            default:
                break;
        }
        c.publish();
    }

    void send_digit_begin(Channel&, char digit) override {
        auto& c = *call_;
        if (c.dtmfmode != "info" && c.dtmfmode != "inband" && c.rtp && c.plan && c.plan->telephone_event_pt >= 0)
            c.rtp->send_dtmf_begin(digit);
    }

    void send_digit(Channel& chan, char digit, std::chrono::milliseconds duration) override {
        auto& c = *call_;
        if (c.state != SipCall::State::up) return;
        if (c.dtmfmode == "inband") {
            // Tones in the audio, written straight to RTP; write() drops the
            // bridge's voice meanwhile.
            if (!inband_)
                inband_ = std::make_unique<sip::InbandDtmfSender>(chan, [call = call_.get()](const Frame& f) {
                    if (call->rtp) call->rtp->write(f);
                });
            inband_->send(digit, duration);
            return;
        }
        bool rfc4733 = c.rtp && c.plan && c.plan->telephone_event_pt >= 0;
        if (c.dtmfmode == "info" || !rfc4733) {
            auto id = c.winner ? c.winner : (c.dialogs.empty() ? 0 : c.dialogs.front());
            if (auto* a = c.agent(); a && id)
                a->call_info(id, "application/dtmf-relay",
                             fmt::format("Signal={}\r\nDuration={}\r\n", digit, duration.count()));
            return;
        }
        c.rtp->send_dtmf_end(digit, static_cast<std::uint32_t>(duration.count()));
    }

    void write(Channel&, const Frame& f) override {
        auto& c = *call_;
        if (inband_ && inband_->sending()) return;
        if (c.rtp && f.kind == FrameKind::voice) c.rtp->write(f);
    }

    bool handles_hold() const override { return call_->passthrough; }

    // A call moves with its channel when nothing of it waits on its loop but
    // the media watch: no re-INVITE of ours in flight, no in-band DTMF sender.
    bool can_move(const Channel&) const override {
        auto& c = *call_;
        return c.state == SipCall::State::up && !c.reoffering && !inband_;
    }
    void leave_loop(Channel&, boost::asio::io_context& to) override {
        auto& c = *call_;
        if (c.media_watch) c.media_watch->cancel();
        c.media_watch.reset();
        {
            // The Sofia thread posts the call's events to the loop it reads here.
            std::lock_guard lock(c.table->mu);
            c.loop = &to;
        }
        if (c.rtp) c.rtp->move_to(to);
        if (c.video_rtp) c.video_rtp->move_to(to);
    }
    void join_loop(Channel&) override { call_->watch_media(); }

    RtpSession* rtp() override { return call_->rtp.get(); }
    RtpSession* video_rtp() override {
        auto& c = *call_;
        return c.video_rtp && c.plan && c.plan->video ? c.video_rtp.get() : nullptr;
    }
    // The video codecs this call negotiated (for the offer of a leg it calls).
    std::vector<RtpMap> negotiated_video() const {
        auto& c = *call_;
        return c.plan && c.plan->video ? c.plan->video->codecs : std::vector<RtpMap>{};
    }

    void hangup(Channel& chan, int cause) override {
        auto& c = *call_;
        // The sender untaps the channel when it goes: do it now, on the loop
        // and while the channel is whole.
        inband_.reset();
        c.stats_to_variables();
        if (c.state != SipCall::State::ended) {
            int status = status_from_cause(cause);
            if (c.transferred)
                c.bye_later();
            else if (auto* a = c.agent())
                for (auto id : c.dialogs) a->call_hangup(id, status);
        }
        c.state = SipCall::State::ended;
        if (c.rtp) c.rtp->close();
        if (c.video_rtp) c.video_rtp->close();
        c.publish();
        c.log.debug("{}: hung up ({})", chan.name(), cause::name(cause));
    }

private:
    std::shared_ptr<SipCall> call_;
    std::unique_ptr<sip::InbandDtmfSender> inband_;  // dtmfmode=inband, made at the first digit
};

// Creates the call's RTP session and fills `local`; false when media cannot start.
// With `video` (and videosupport=yes), a second session for the video stream.
bool open_media(Core& core, SipCall& call, const Settings& s, const std::string& label, bool video) {
    call.local.address = s.general.bindaddr == "0.0.0.0" ? "127.0.0.1" : s.general.bindaddr;
    call.local.session_id = std::to_string(wall_now());
    call.local.session_version = "1";
    if (call.policy.require_srtp) {
        call.srtp_local = SrtpCrypto::generate();
        call.local.srtp_key = key_of(*call.srtp_local);
    }
    auto* engine = rtp_engine(core);
    if (!engine) {
        // No RTP engine in this core: signalling works, media is refused.
        call.local.port = 9;
        return true;
    }
    RtpSessionOptions o;
    o.name = label;
    std::string error;
    call.rtp = engine->create(*call.loop, o, error);
    if (!call.rtp) {
        call.log.warning("{}: no RTP port: {}", label, error);
        return false;
    }
    auto addr = call.rtp->local_address();
    if (!addr.is_unspecified()) call.local.address = addr.to_string();
    call.local.port = call.rtp->local_port();
    if (video && call.policy.video) {
        RtpSessionOptions vo;
        vo.name = label + " video";
        vo.jitter_buffer = false;
        call.video_rtp = engine->create(*call.loop, vo, error);
        // Without a port for video the call goes on with audio only.
        if (call.video_rtp)
            call.local.video_port = call.video_rtp->local_port();
        else
            call.log.warning("{}: no RTP port for video: {}", label, error);
    }
    return true;
}

std::string uri_host(const std::string& host) {
    return host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]" : host;
}

}  // namespace

// --- the manager -----------------------------------------------------------

CallManager::CallManager(SipService& service, Core& core, Log log, std::shared_ptr<LoopWork> work)
    : service_(service),
      core_(core),
      log_(std::move(log)),
      work_(std::move(work)),
      table_(std::make_shared<CallTable>()) {}

CallManager::~CallManager() = default;

void CallManager::stop() {
    // The table and its calls hold each other: a dialog whose end the stopped
    // Sofia thread never reported would keep its call forever. Let go of them
    // outside the lock (a call's destructor takes it).
    std::unordered_map<std::uint64_t, std::shared_ptr<SipCall>> calls;
    {
        std::lock_guard lock(table_->mu);
        calls.swap(table_->by_dialog);
    }
}

void CallManager::on_invite(CallOffer offer) {
    // Loop affinity: an INVITE with Replaces joins the loop of the call it
    // replaces, and a phone's calls share one loop, so that a transfer
    // between them bridges legs that live together. A call to a phone that
    // has calls in progress (the number dialled names its endpoint) joins
    // them too: the phone may connect its callers to each other.
    asio::io_context* loop = nullptr;
    {
        std::lock_guard lock(table_->mu);
        auto& by_endpoint = table_->endpoint_loop;
        if (auto it = table_->by_dialog.find(offer.replaces); offer.replaces && it != table_->by_dialog.end())
            loop = it->second->loop;
        else if (auto e = by_endpoint.find(offer.from_user); e != by_endpoint.end())
            loop = e->second;
        else if (auto d = by_endpoint.find(offer.request_user); d != by_endpoint.end())
            loop = d->second;
    }
    if (!loop) loop = &core_.pick_loop();
    auto call = std::make_shared<SipCall>(service_.weak_from_this(), table_, work_, *loop, log_, false);
    call->dialogs.push_back(offer.call);
    call->live = 1;
    {
        std::lock_guard lock(table_->mu);
        table_->by_dialog[offer.call] = call;
        table_->add(call);
    }
    work_->post(*call->loop, [this, weak = service_.weak_from_this(), call, offer = std::move(offer)]() mutable {
        if (auto svc = weak.lock()) handle_invite(call, std::move(offer));
    });
}

namespace {

// Runs a call's event on its loop. An event queued on a loop the call has
// left since (its channel moved) goes on to the new one: the move runs on the
// old loop, so whatever was queued there before it ran first.
void post_event(const std::shared_ptr<LoopWork>& work, std::shared_ptr<SipCall> call, asio::io_context* loop,
                CallEvent event) {
    work->post(*loop, [work, call = std::move(call), loop, event = std::move(event)]() mutable {
        if (call->loop != loop) {
            auto* now = call->loop;
            return post_event(work, std::move(call), now, std::move(event));
        }
        call->on_event(event);
    });
}

}  // namespace

void CallManager::on_event(CallEvent event) {
    std::shared_ptr<SipCall> call;
    asio::io_context* loop = nullptr;
    {
        std::lock_guard lock(table_->mu);
        auto it = table_->by_dialog.find(event.call);
        if (it == table_->by_dialog.end()) return;
        call = it->second;
        loop = call->loop;
    }
    post_event(work_, std::move(call), loop, std::move(event));
}

void CallManager::handle_invite(const std::shared_ptr<SipCall>& call, CallOffer offer) {
    auto s = service_.settings();
    auto& rq = offer.request;
    auto id = offer.call;
    auto& agent = service_.agent();
    auto refuse = [&](int status, std::string headers = {}) {
        call->final_sent = true;
        call->refused_with = status;
        if (call->rtp) call->rtp->close();
        agent.call_respond(id, status, std::string(status_phrase(status)), {}, std::move(headers));
    };

    // Who is calling: a gateway known by its address (insecure=invite), or digest.
    const Endpoint* ep = nullptr;
    if (auto* peer = s->find_by_address(rq.source); peer && peer->insecure_invite) {
        if (!peer->acl.allows(rq.source.ip)) {
            log_.notice("INVITE from {}: refused by the ACL of {}", rq.source.str(), peer->name);
            refuse(403);
            return;
        }
        ep = peer;
    } else {
        auto outcome = service_.authenticator().authenticate(rq, *s, wall_now());
        switch (outcome.kind) {
            case AuthOutcome::Kind::challenged:
                log_.debug("INVITE {} from {}: challenged ({})", offer.request_user, rq.source.str(), outcome.reason);
                refuse(outcome.response.status, outcome.response.header_block());
                return;
            case AuthOutcome::Kind::rejected:
                log_.notice("INVITE {} from {}: authentication failed for '{}' ({})", offer.request_user,
                            rq.source.str(), outcome.username, outcome.reason);
                if (service_.bans().record_failure(rq.source.ip, BanList::Clock::now())) {
                    auto& p = s->general.bans;
                    log_.warning("banned {} for {} s: {} authentication failures within {} s", rq.source.ip.str(),
                                 p.duration.count(), p.failures, p.window.count());
                    service_.sync_bans();
                }
                refuse(outcome.response.status, outcome.response.header_block());
                return;
            case AuthOutcome::Kind::authenticated:
                ep = outcome.endpoint;
                break;
        }
    }
    agent.connection_authenticated(rq.transport, rq.source);
    if (!core_.accepting_calls()) {
        refuse(503);
        return;
    }
    if (ep->call_limit > 0) {
        std::lock_guard lock(table_->mu);
        auto& n = table_->per_endpoint[ep->name];
        if (n >= ep->call_limit) {
            log_.notice("INVITE from {}: call-limit of {} reached ({})", ep->name, ep->call_limit, n);
            call->final_sent = true;
            agent.call_respond(id, 486, "Busy Here");
            return;
        }
    }
    {
        std::lock_guard lock(table_->mu);
        ++table_->per_endpoint[ep->name];
        table_->endpoint_loop[ep->name] = call->loop;
    }
    call->counted = ep->name;
    call->endpoint = ep->name;
    call->reliable = offer.reliable;
    call->dtmfmode = ep->dtmfmode;
    call->mohsuggest = ep->mohsuggest;
    call->passthrough = ep->moh_passthrough();
    call->faxdetect = ep->faxdetect;
    call->rtptimeout = ep->rtptimeout;
    call->policy = policy_of(ep);

    // INVITE with Replaces (RFC 3891): this call takes the place of one of
    // ours; its bridge peer is handed to the new channel below.
    std::shared_ptr<Channel> replaced, replaced_peer;
    if (offer.has_replaces) {
        if (!ep->allowtransfer) {
            log_.notice("INVITE with Replaces from {}: refused, allowtransfer=no", ep->name);
            refuse(403);
            return;
        }
        if (offer.replaces_status) {
            log_.notice("INVITE with Replaces from {}: refused with {}", ep->name, offer.replaces_status);
            refuse(offer.replaces_status);
            return;
        }
        std::shared_ptr<SipCall> old;
        {
            std::lock_guard lock(table_->mu);
            if (auto it = table_->by_dialog.find(offer.replaces); it != table_->by_dialog.end()) old = it->second;
        }
        replaced = old ? old->chan() : nullptr;
        if (replaced && !replaced->peer_name().empty()) replaced_peer = core_.find_channel(replaced->peer_name());
        if (!replaced_peer || replaced->hungup() || replaced_peer->hungup() || &replaced_peer->loop() != call->loop ||
            replaced_peer->peer_name() != replaced->name()) {
            log_.notice("INVITE with Replaces from {}: the replaced call is not connected to anyone here", ep->name);
            refuse(481);
            return;
        }
    }

    std::optional<SdpSession> remote;
    if (offer.has_body) {
        refuse(415);
        return;
    }
    if (!offer.sdp.empty()) {
        std::string error;
        remote = parse_sdp(offer.sdp, &error);
        if (!remote) {
            log_.notice("INVITE from {}: unreadable SDP ({})", ep->name, error);
            refuse(400);
            return;
        }
    }
    bool offers_video = remote && std::any_of(remote->media.begin(), remote->media.end(),
                                              [](const SdpMedia& m) { return m.type == "video" && m.port != 0; });
    if (!open_media(core_, *call, *s, "SIP/" + ep->name, offers_video)) {
        refuse(503);
        return;
    }
    if (remote) {
        auto out = answer_offer(*remote, call->policy, call->local);
        if (out.status != 200) {
            log_.notice("INVITE from {}: {}: 488", ep->name, out.reason);
            refuse(488);
            return;
        }
        call->answer_sdp = format_sdp(out.answer);
        call->last_sdp = out.answer;
        call->plan = out.plan;
        if (!out.plan.video && call->video_rtp) {
            call->video_rtp->close();
            call->video_rtp.reset();
            call->local.video_port = 0;
        }
        // Keys and payload types go to the RTP session now: a key the engine
        // refuses is a 488 before any channel exists.
        if (!call->apply(out.plan)) {
            refuse(488);
            return;
        }
    } else {
        call->late_offer = true;
        call->last_sdp = make_offer(call->policy, call->local);
        call->answer_sdp = format_sdp(call->last_sdp);
    }

    auto chan = core_.create_channel("SIP", "SIP/" + ep->name, std::make_unique<SipDriver>(call), *call->loop);
    if (!chan) {
        refuse(503);
        return;
    }
    call->channel = chan;
    // Caller id: the endpoint's callerid= wins, then P-Asserted-Identity, then From.
    auto& cid = chan->caller();
    cid.name = !offer.asserted_display.empty() ? offer.asserted_display : offer.from_display;
    cid.number = !offer.asserted_user.empty() ? offer.asserted_user : offer.from_user;
    if (!ep->callerid_name.empty()) cid.name = ep->callerid_name;
    if (!ep->callerid_number.empty()) cid.number = ep->callerid_number;
    auto exten = offer.request_user.empty() ? std::string("s") : offer.request_user;
    chan->dialed_number() = exten;
    if (!ep->language.empty()) chan->language() = ep->language;
    if (auto moh = ep->music_class(); !moh.empty()) chan->music_class() = moh;
    if (!ep->accountcode.empty()) chan->accountcode() = ep->accountcode;
    chan->set_max_forwards(offer.max_forwards);
    chan->set_variable("SIPCALLID", rq.call_id);
    chan->set_variable("SIPURI", rq.from_uri);
    chan->set_variable("SIPDOMAIN", rq.request_uri);
    chan->set_variable("SIPPEER", ep->name);
    chan->set_position(ep->context.empty() ? s->general.context : ep->context, exten, 1);
    if (call->plan) chan->set_native_format(call->plan->format);
    call->update_detection();
    call->remote_party = rq.source.str();
    call->sip_call_id = rq.call_id;
    chan->set_state(ChannelState::ring);
    log_.info("{}: call from {} <{}> ({}) to {}@{}", chan->name(), cid.name, cid.number, rq.source.str(), exten,
              chan->context());
    call->publish();
    if (replaced_peer) {
        take_over(call, chan, replaced, replaced_peer);
        return;
    }
    core_.start_pbx(chan);
}

void CallManager::take_over(const std::shared_ptr<SipCall>& call, const std::shared_ptr<Channel>& chan,
                            const std::shared_ptr<Channel>& replaced, const std::shared_ptr<Channel>& peer) {
    log_.info("{}: replaces {}: connecting it to {}", chan->name(), replaced->name(), peer->name());
    chan->set_variable("REPLACED", replaced->name());
    chan->driver().answer(*chan);
    chan->set_state(ChannelState::up);
    call->publish();
    // Whoever runs the peer (its Dial) hangs the replaced leg up and bridges
    // the peer to this channel, which it then owns. Should that never happen
    // (the peer is not in a bridge), this channel is not left behind.
    core_.redirect(peer, Channel::Redirect{{}, {}, 1, chan});
    // Cancelled when chan_sip stops; the core has ended every channel by then.
    auto timer = work_->timer(*call->loop);
    timer->expires_after(std::chrono::seconds(5));
    work_->wait(*timer, [timer, chan, &core = core_](const boost::system::error_code& ec) {
        if (ec || chan->finished() || !chan->peer_name().empty()) return;
        core.log().notice("{}: nobody took the call over; hanging up", chan->name());
        if (!chan->hangup_cause()) chan->set_hangup_cause(cause::temporary_failure);
        core.end_channel(chan);
    });
}

std::shared_ptr<Channel> CallManager::request(const ChannelRequest& req, int& cause) {
    auto s = service_.settings();
    if (!service_.running()) {
        cause = cause::requested_chan_unavail;
        return nullptr;
    }
    std::string dest = req.destination;
    if (auto comma = dest.find(','); comma != std::string::npos) dest.resize(comma);
    std::string name, number, host;
    const Endpoint* ep = nullptr;
    if (auto at = dest.find('@'); at != std::string::npos) {
        number = dest.substr(0, at);
        host = dest.substr(at + 1);
        if (host.empty()) {
            cause = cause::invalid_number_format;
            return nullptr;
        }
        name = host;
    } else {
        auto slash = dest.find('/');
        name = dest.substr(0, slash);
        if (slash != std::string::npos) number = dest.substr(slash + 1);
        ep = s->find(name);
        if (!ep) {
            cause = cause::unallocated;
            return nullptr;
        }
    }
    if (number.find_first_of(" \t\r\n<>\"") != std::string::npos) {
        cause = cause::invalid_number_format;
        return nullptr;
    }

    auto& loop = req.requestor ? req.requestor->loop() : core_.pick_loop();
    auto call = std::make_shared<SipCall>(service_.weak_from_this(), table_, work_, loop, log_, true);
    call->endpoint = ep ? ep->name : "";
    call->policy = policy_of(ep);
    call->dtmfmode = ep ? ep->dtmfmode : "rfc4733";
    if (ep) call->mohsuggest = ep->mohsuggest;
    if (ep) call->passthrough = ep->moh_passthrough();
    if (ep) call->faxdetect = ep->faxdetect;
    if (ep) call->rtptimeout = ep->rtptimeout;

    auto& g = s->general;
    std::string local_host = g.bindaddr == "0.0.0.0" ? "127.0.0.1" : g.bindaddr;
    auto from_user = !req.caller.number.empty() ? req.caller.number : std::string("tandem");
    if (ep && !ep->fromuser.empty()) from_user = ep->fromuser;
    std::string display;
    for (char ch : req.caller.name)
        if (ch != '"' && ch != '\\' && ch != '\r' && ch != '\n') display += ch;
    auto from = fmt::format("{}<sip:{}@{}:{}>", display.empty() ? "" : "\"" + display + "\" ", from_user,
                            uri_host(local_host), g.bindport);

    std::vector<OutgoingCall> invites;
    if (!ep) {
        OutgoingCall c;
        c.request_uri = number.empty() ? fmt::format("sip:{}", host) : fmt::format("sip:{}@{}", number, host);
        c.to = "<" + c.request_uri + ">";
        invites.push_back(std::move(c));
    } else if (ep->dynamic) {
        for (auto& b : service_.registrar().bindings(ep->name)) {
            OutgoingCall c;
            c.request_uri = b.contact;
            c.to = fmt::format("<sip:{}@{}>", number.empty() ? ep->name : number, uri_host(local_host));
            if (ep->nat.force_rport) c.send_to = b.source;
            c.transport = b.transport;
            c.route = b.path;
            invites.push_back(std::move(c));
        }
        if (invites.empty()) {
            cause = cause::subscriber_absent;
            return nullptr;
        }
    } else {
        OutgoingCall c;
        auto h = ep->host_ip ? ep->host_ip->uri_host() : ep->host;
        c.transport = ep->transport();
        c.request_uri = sip_uri(fmt::format("{}@{}:{}", number.empty() ? ep->name : number, h, ep->port), c.transport);
        c.to = "<" + c.request_uri + ">";
        invites.push_back(std::move(c));
    }
    // outboundproxy=: the INVITE goes there first, a pre-loaded loose route.
    const auto& proxy = ep ? ep->outboundproxy : g.outboundproxy;
    for (auto& c : invites) {
        if (!proxy.empty()) c.route.insert(c.route.begin(), proxy);
        c.from = from;
        if (ep && !ep->secret.empty()) {
            c.auth_user = ep->defaultuser.empty() ? ep->name : ep->defaultuser;
            c.auth_secret = ep->secret;
        }
    }
    if (ep && ep->call_limit > 0) {
        std::lock_guard lock(table_->mu);
        auto& n = table_->per_endpoint[ep->name];
        if (n >= ep->call_limit) {
            cause = cause::user_busy;
            return nullptr;
        }
    }
    if (ep) {
        std::lock_guard lock(table_->mu);
        ++table_->per_endpoint[ep->name];
        table_->endpoint_loop.try_emplace(ep->name, &loop);
        call->counted = ep->name;
    }
    // A caller's negotiated video is offered on (with its fmtp) to the callee.
    if (req.requestor)
        if (auto* d = dynamic_cast<const SipDriver*>(&req.requestor->driver()))
            call->local.video_codecs = d->negotiated_video();
    if (!open_media(core_, *call, *s, "SIP/" + name, !call->local.video_codecs.empty())) {
        cause = cause::normal_circuit_congestion;
        return nullptr;
    }
    call->last_sdp = make_offer(call->policy, call->local);  // sent by call()
    call->invites = std::move(invites);
    auto chan = core_.create_channel("SIP", "SIP/" + name, std::make_unique<SipDriver>(call), loop);
    if (!chan) {
        cause = cause::switch_congestion;
        return nullptr;
    }
    call->channel = chan;
    if (ep && !ep->music_class().empty()) chan->music_class() = ep->music_class();
    call->remote_party = call->invites.front().request_uri;
    {
        std::lock_guard lock(table_->mu);
        table_->add(call);
    }
    chan->connected() = {"", number};
    call->publish();
    return chan;
}

std::vector<CallSummary> CallManager::summaries() const {
    std::vector<std::shared_ptr<SipCall>> calls;
    {
        std::lock_guard lock(table_->mu);
        for (auto& w : table_->all)
            if (auto c = w.lock()) calls.push_back(std::move(c));
    }
    std::vector<CallSummary> out;
    for (auto& c : calls) {
        std::lock_guard lock(c->info_mu);
        if (!c->info.channel.empty() && c->info.state != "Down") out.push_back(c->info);
    }
    return out;
}

std::map<std::string, int, std::less<>> CallManager::per_endpoint() const {
    std::lock_guard lock(table_->mu);
    return table_->per_endpoint;
}

std::size_t CallManager::active() const {
    std::lock_guard lock(table_->mu);
    return std::count_if(table_->all.begin(), table_->all.end(), [](auto& w) { return !w.expired(); });
}

}  // namespace tandem::sip
