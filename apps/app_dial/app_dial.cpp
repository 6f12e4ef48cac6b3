// app_dial: Dial(Tech/a&Tech/b,timeout,options) — call destinations in
// parallel, connect the caller to the first that answers.
//
// Everything runs in the caller's dialplan coroutine, on the caller's loop:
// the outgoing channels are requested there (Core::request_channel puts them
// on the requestor's loop), so Dial watches them and the caller with one
// EventWaiter and no locking. The outgoing channels run no dialplan of their
// own; Dial ends each of them (Core::end_channel) exactly once, whatever
// happens, through the Legs guard.
//
// Transfers reach Dial as redirects (Core::redirect) that end its bridge: a
// redirected caller goes on in its dialplan (or is bridged to the channel the
// redirect names) and the callee is hung up; a redirected callee is let go,
// to a dialplan of its own (Core::start_pbx) or to a pair coroutine that
// bridges it to the named channel, and the caller is hung up.
// GCC 12 pairs the coroutine frame's operator delete (Asio's recycling
// allocator) with the wrong operator new once co_spawn of a coroutine
// returning a large value (run_pair) is inlined, and warns of a mismatch that
// is not there; the warning is reported where the template is instantiated,
// at the end of the file, so it is silenced for the file.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <tandem/bridge.hpp>
#include <tandem/core.hpp>
#include <tandem/module.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace tandem;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

// Q.850 26, "non-selected user clearing": a parallel leg lost to another.
constexpr int answered_elsewhere = 26;

struct DialOptions {
    bool ring = false;                   // r: ring the caller ourselves, ignore the callees' progress
    bool go_on = false;                  // g: continue in the dialplan when the callee hangs up
    std::chrono::milliseconds limit{0};  // L(ms): end the bridge after this long
};

std::optional<DialOptions> parse_options(std::string_view s, std::string& error) {
    DialOptions o;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        std::string_view arg;
        if (i + 1 < s.size() && s[i + 1] == '(') {
            auto close = s.find(')', i + 2);
            if (close == std::string_view::npos) {
                error = fmt::format("option '{}' has no closing parenthesis", c);
                return std::nullopt;
            }
            arg = s.substr(i + 2, close - i - 2);
            i = close;
        }
        switch (c) {
            case 'r':
                o.ring = true;
                break;
            case 'g':
                o.go_on = true;
                break;
            case 'L': {
                long long ms = 0;
                auto [p, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), ms);
                if (ec != std::errc() || ms <= 0) {
                    error = fmt::format("L({}): expected a duration in milliseconds", arg);
                    return std::nullopt;
                }
                o.limit = std::chrono::milliseconds(ms);
                break;
            }
            case ' ':
                break;
            default:
                // Asterisk has many more; an unknown one is reported, not fatal.
                error = fmt::format("option '{}' is not supported (ignored)", c);
                break;
        }
    }
    return o;
}

std::optional<std::chrono::milliseconds> parse_timeout(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (s.empty()) return std::nullopt;
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || v <= 0) return std::nullopt;
    return std::chrono::milliseconds(static_cast<long long>(v * 1000.0));
}

std::vector<std::string> split_destinations(std::string_view s) {
    std::vector<std::string> out;
    while (!s.empty()) {
        auto amp = s.find('&');
        auto part = s.substr(0, amp);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        if (!part.empty()) out.emplace_back(part);
        if (amp == std::string_view::npos) break;
        s.remove_prefix(amp + 1);
    }
    return out;
}

// How a leg that did not answer failed, in DIALSTATUS terms.
enum class Failure { none, busy, congestion, unavailable, no_answer };

Failure failure_of_cause(int c) {
    switch (c) {
        case cause::user_busy:
            return Failure::busy;
        case cause::normal_circuit_congestion:
        case cause::switch_congestion:
            return Failure::congestion;
        case 0:
        case cause::normal_clearing:
        case cause::no_answer:
        case cause::no_user_response:
            return Failure::no_answer;
        default:
            return Failure::unavailable;
    }
}

struct Leg {
    std::shared_ptr<Channel> chan;
    bool ended = false;
};

// The outgoing channels of one Dial, watched by one waiter. Whatever path
// Dial leaves by (return, exception, cancellation), each channel is detached
// and ended exactly once.
class Legs {
public:
    Legs(Channel& caller) : caller_(caller), waiter_(caller.loop()) { caller_.add_waiter(waiter_); }
    ~Legs() {
        for (auto& l : legs_) end(l, cause::normal_clearing);
        caller_.remove_waiter(waiter_);
    }
    Legs(const Legs&) = delete;
    Legs& operator=(const Legs&) = delete;

    EventWaiter& waiter() { return waiter_; }
    std::vector<Leg>& all() { return legs_; }

    Leg& add(std::shared_ptr<Channel> c) {
        c->add_waiter(waiter_);
        legs_.push_back({std::move(c), false});
        return legs_.back();
    }

    // Detaches one leg without ending it: a transfer gave it a life of its own.
    void release(Leg& l) {
        if (l.ended) return;
        l.ended = true;
        l.chan->set_frame_observer({});
        l.chan->remove_waiter(waiter_);
    }

    // Detaches and ends one leg; `why` is used unless the leg has its own cause.
    void end(Leg& l, int why) {
        if (l.ended) return;
        l.ended = true;
        l.chan->set_frame_observer({});
        l.chan->remove_waiter(waiter_);
        if (!l.chan->hangup_cause()) l.chan->set_hangup_cause(why);
        l.chan->core().end_channel(l.chan);
    }

    std::size_t live() const {
        std::size_t n = 0;
        for (auto& l : legs_) n += !l.ended;
        return n;
    }

private:
    Channel& caller_;
    EventWaiter waiter_;
    std::vector<Leg> legs_;
};

// --- transfers ---------------------------------------------------------------

// Waits (bounded) until `other` is free to be taken over: no redirect pending
// any more, so whoever ran it (its Dial) has let it go. False when either
// channel hangs up first or the previous owner never lets go.
awaitable<bool> wait_free(Channel& self, Channel& other) {
    struct Watch {
        Channel& c;
        EventWaiter w;
        Watch(Channel& ch, Channel& self) : c(ch), w(self.loop()) { c.add_waiter(w); }
        ~Watch() { c.remove_waiter(w); }
    } watch(other, self);
    const auto deadline = clock::now() + 3s;
    for (;;) {
        if (other.hungup() || self.hungup()) co_return false;
        if (!other.redirect_pending()) co_return true;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) co_return false;
        co_await watch.w.wait(left + 1ms);
    }
}

// A channel a transfer hands over from another loop joins the loop of its
// new owner (`self`) first. When it cannot (it hangs up, its previous owner
// does not let go, its driver cannot move), nobody owns it any more: it is
// ended where it is, and false.
awaitable<bool> join_loop_of(Core& core, Channel& self, const std::shared_ptr<Channel>& other) {
    if (&other->loop() == &self.loop()) co_return true;
    if (co_await move_channel(other, self.loop(), 3s)) {
        core.log().info("{}: transfer: {} moved to this channel's event loop", self.name(), other->name());
        co_return true;
    }
    core.log().notice("{}: transfer: {} could not join this channel's loop; hanging it up", self.name(), other->name());
    post_to_channel(other, [&core](Channel* c) {
        if (!c->hangup_cause()) c->set_hangup_cause(cause::temporary_failure);
        core.end_channel(c->shared_from_this());
    });
    co_return false;
}

// A channel no dialplan runs, owned by a pair coroutine: ended with it
// unless handed on.
struct Owned {
    Core& core;
    std::shared_ptr<Channel> chan;
    ~Owned() { end(); }
    void end() {
        if (!chan) return;
        chan->set_frame_observer({});
        if (!chan->hangup_cause()) chan->set_hangup_cause(cause::normal_clearing);
        core.end_channel(std::exchange(chan, nullptr));
    }
};

void spawn_pair(Core& core, std::shared_ptr<Channel> p, std::shared_ptr<Channel> x);

// Gives a channel that Dial (or a pair) let go the life its redirect names.
void hand_off(Core& core, std::shared_ptr<Channel> c, Channel::Redirect r) {
    if (r.bridge_to) {
        spawn_pair(core, std::move(c), std::move(r.bridge_to));
    } else if (!r.exten.empty()) {
        c->set_position(r.context, r.exten, r.priority);
        c->peer_name().clear();
        core.start_pbx(std::move(c));
    }
    // Neither: a plain release; whoever redirected it takes it (a bridge_to
    // redirect of another channel names it).
}

// Bridges `p` (which runs no dialplan) to `x` and owns both: a transferred
// callee connected to its new party. Returns the redirect of `p`, if a later
// transfer sends it on; the completion handler then hands it off.
awaitable<std::optional<Channel::Redirect>> run_pair(Core& core, std::shared_ptr<Channel> p,
                                                     std::shared_ptr<Channel> x) {
    Owned other{core, std::move(x)};
    for (;;) {
        if (!co_await join_loop_of(core, *p, other.chan)) {
            other.chan = nullptr;  // ended on its own loop
            co_return std::nullopt;
        }
        if (!co_await wait_free(*p, *other.chan)) {
            core.log().notice("{}: transfer: {} did not become free; hanging up", p->name(), other.chan->name());
            co_return std::nullopt;
        }
        core.log().info("{}: transfer: connected to {}", p->name(), other.chan->name());
        if (p->state() != ChannelState::up) co_await p->answer();
        auto end = co_await bridge(*p, *other.chan);
        core.log().info("{}: bridge with {} ended: {}", p->name(), other.chan->name(), to_string(end));
        if (end == BridgeEnd::a_redirected) {
            auto r = p->take_redirect();
            other.end();
            if (r && r->bridge_to) {
                other.chan = std::move(r->bridge_to);
                continue;
            }
            co_return r;
        }
        if (end == BridgeEnd::b_redirected) {
            auto r = other.chan->take_redirect();
            auto moved = std::exchange(other.chan, nullptr);
            moved->set_frame_observer({});
            if (r) hand_off(core, std::move(moved), std::move(*r));
        }
        co_return std::nullopt;
    }
}

void spawn_pair(Core& core, std::shared_ptr<Channel> p, std::shared_ptr<Channel> x) {
    // The lease keeps this module loaded while the pair runs its code.
    auto lease = core.applications().find("Dial");
    boost::asio::post(p->loop(), [&core, p, x = std::move(x), lease = std::move(lease)]() mutable {
        boost::asio::co_spawn(
            p->loop(), run_pair(core, p, std::move(x)),
            boost::asio::bind_cancellation_slot(
                p->hangup_signal().slot(),
                [&core, p, lease = std::move(lease)](std::exception_ptr, std::optional<Channel::Redirect> r) {
                    if (r && !p->hungup())
                        hand_off(core, p, std::move(*r));
                    else
                        core.end_channel(p);
                }));
    });
}

long long seconds_since(clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(clock::now() - t).count();
}

awaitable<AppResult> dial(Channel& caller, const AppArgs& args) {
    Core& core = caller.core();
    auto& log = core.log();
    const auto started = clock::now();
    auto finish = [&](std::string_view status, std::optional<clock::time_point> answered = std::nullopt) {
        caller.set_variable("DIALSTATUS", std::string(status));
        caller.set_variable("DIALEDTIME", std::to_string(seconds_since(started)));
        caller.set_variable("ANSWEREDTIME", answered ? std::to_string(seconds_since(*answered)) : std::string());
    };
    caller.set_variable("DIALSTATUS", "");
    caller.set_variable("DIALEDPEERNAME", "");

    std::string error;
    auto opts = parse_options(args[2], error);
    if (!error.empty()) log.warning("{}: Dial: {}", caller.name(), error);
    if (!opts) {
        finish("CHANUNAVAIL");
        co_return AppResult::next;
    }
    auto timeout = parse_timeout(args[1]);
    auto destinations = split_destinations(args[0]);
    if (destinations.empty()) {
        log.warning("{}: Dial: no destination in '{}'", caller.name(), args[0]);
        finish("CHANUNAVAIL");
        co_return AppResult::next;
    }

    // Progress reaches a caller not yet answered: ringing once, progress as it
    // comes, and the early media of one leg only — the first that sends any —
    // since two callees' audio cannot be interleaved into one stream.
    struct Early {
        bool rang = false;
        const Channel* media_from = nullptr;
    } early;
    auto relay_progress = [&caller, &early, ring = opts->ring](const Channel& from) {
        return [&caller, &early, ring, &from](const Frame& f) {
            if (ring || caller.state() == ChannelState::up) return;
            if (f.kind == FrameKind::control) {
                auto i = static_cast<Indication>(f.subclass);
                if (i == Indication::ringing && !early.rang) {
                    early.rang = true;
                    caller.indicate(i);
                } else if (i == Indication::progress || i == Indication::proceeding) {
                    caller.indicate(i);
                }
            } else if (f.kind == FrameKind::voice) {
                if (!early.media_from) early.media_from = &from;
                if (early.media_from == &from) caller.write(f);
            }
        };
    };

    Legs legs(caller);
    Failure worst = Failure::none;  // the most telling failure so far
    int last_cause = 0;
    auto note_failure = [&](int c) {
        last_cause = c;
        auto f = failure_of_cause(c);
        // BUSY beats CONGESTION beats CHANUNAVAIL beats NOANSWER, as Asterisk reports them.
        auto rank = [](Failure x) {
            switch (x) {
                case Failure::busy:
                    return 4;
                case Failure::congestion:
                    return 3;
                case Failure::unavailable:
                    return 2;
                case Failure::no_answer:
                    return 1;
                case Failure::none:
                    return 0;
            }
            return 0;
        };
        if (rank(f) > rank(worst)) worst = f;
    };

    for (auto& dest : destinations) {
        int why = 0;
        auto out = core.request_channel(dest, &caller, why);
        if (!out) {
            log.notice("{}: Dial: cannot call '{}': {} ({})", caller.name(), dest, cause::name(why), why);
            // A channel that could not even be created is unavailable, whatever the cause says.
            note_failure(failure_of_cause(why) == Failure::no_answer ? cause::requested_chan_unavail : why);
            continue;
        }
        if (&out->loop() != &caller.loop()) {
            log.error("{}: Dial: the {} driver created {} on another event loop; cannot bridge it", caller.name(),
                      out->technology(), out->name());
            auto& l = legs.add(out);
            legs.end(l, cause::requested_chan_unavail);
            note_failure(cause::requested_chan_unavail);
            continue;
        }
        out->caller() = caller.caller();
        out->dialed_number() = dest.substr(dest.find('/') + 1);
        out->peer_name() = caller.name();
        out->last_app() = "AppDial";
        out->last_data() = "(Outgoing Line)";
        out->set_position(caller.context(), caller.exten(), 1);
        out->set_frame_observer(relay_progress(*out));
        legs.add(out);
    }
    if (legs.all().empty()) {
        caller.set_variable("HANGUPCAUSE", std::to_string(last_cause));
        if (last_cause) caller.set_hangup_cause(last_cause);
        finish(worst == Failure::congestion ? "CONGESTION" : "CHANUNAVAIL");
        co_return AppResult::next;
    }

    if (opts->ring && caller.state() != ChannelState::up) caller.indicate(Indication::ringing);
    auto call_timeout = timeout.value_or(std::chrono::hours(24));
    for (auto& l : legs.all()) {
        if (l.ended) continue;
        log.info("{}: Dial: called {}", caller.name(), l.chan->name());
        l.chan->call(call_timeout);
    }

    // Wait for the first answer, every leg failing, the timeout or the caller leaving.
    const auto deadline = clock::now() + call_timeout;
    Leg* winner = nullptr;
    for (;;) {
        if (caller.hungup()) {
            log.info("{}: Dial: caller hung up; cancelling {} call(s)", caller.name(), legs.live());
            for (auto& l : legs.all()) legs.end(l, cause::normal_clearing);
            finish("CANCEL");
            co_return AppResult::hangup;
        }
        for (auto& l : legs.all()) {
            if (l.ended) continue;
            auto& c = *l.chan;
            if (c.hungup()) {
                note_failure(c.hangup_cause());
                log.info("{}: Dial: {} hung up before answering: {}", caller.name(), c.name(),
                         cause::name(c.hangup_cause()));
                legs.end(l, c.hangup_cause());
            } else if (c.state() == ChannelState::up) {
                winner = &l;
                break;
            } else if (auto i = c.last_indication(); i == Indication::busy || i == Indication::congestion) {
                int why = *i == Indication::busy ? cause::user_busy : cause::normal_circuit_congestion;
                log.info("{}: Dial: {} is {}", caller.name(), c.name(), *i == Indication::busy ? "busy" : "congested");
                c.set_hangup_cause(why);
                note_failure(why);
                legs.end(l, why);
            }
        }
        if (winner) break;
        if (!legs.live()) {
            caller.set_variable("HANGUPCAUSE", std::to_string(last_cause));
            if (last_cause) caller.set_hangup_cause(last_cause);
            switch (worst) {
                case Failure::busy:
                    finish("BUSY");
                    break;
                case Failure::congestion:
                    finish("CONGESTION");
                    break;
                case Failure::unavailable:
                    finish("CHANUNAVAIL");
                    break;
                default:
                    finish("NOANSWER");
                    break;
            }
            co_return AppResult::next;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) {
            log.info("{}: Dial: nobody answered within {} s", caller.name(),
                     std::chrono::duration_cast<std::chrono::seconds>(call_timeout).count());
            for (auto& l : legs.all()) legs.end(l, cause::no_answer);
            caller.set_variable("HANGUPCAUSE", std::to_string(cause::no_answer));
            finish("NOANSWER");
            co_return AppResult::next;
        }
        co_await legs.waiter().wait(left + 1ms);
    }

    // First answer wins: the others were answered elsewhere.
    auto peer = winner->chan;
    for (auto& l : legs.all())
        if (&l != winner) legs.end(l, answered_elsewhere);
    peer->set_frame_observer({});
    log.info("{}: Dial: {} answered", caller.name(), peer->name());
    caller.set_variable("DIALEDPEERNAME", peer->name());
    caller.set_variable("DIALEDPEERNUMBER", std::string(peer->dialed_number()));
    // Who the caller is now talking to: what the callee's driver learnt of
    // it (connected line), else the number dialled.
    caller.connected() = peer->connected().empty() ? CallerId{"", peer->dialed_number()} : peer->connected();
    if (!co_await caller.answer()) {
        legs.end(*winner, cause::normal_clearing);
        finish("CANCEL");
        co_return AppResult::hangup;
    }
    const auto answered = clock::now();
    caller.set_variable("DIALSTATUS", "ANSWER");

    BridgeOptions bo;
    bo.limit = opts->limit;
    auto end = co_await bridge(caller, *peer, bo);
    log.info("{}: Dial: bridge with {} ended: {}", caller.name(), peer->name(), to_string(end));
    // Transfers: whichever leg was redirected goes on, the other is hung up.
    while (end == BridgeEnd::a_redirected || end == BridgeEnd::b_redirected) {
        if (end == BridgeEnd::b_redirected) {
            auto r = peer->take_redirect();
            legs.release(*winner);
            log.info("{}: Dial: {} was transferred away; hanging up", caller.name(), peer->name());
            if (r) hand_off(core, peer, std::move(*r));
            finish("ANSWER", answered);
            caller.set_variable("HANGUPCAUSE", std::to_string(cause::normal_clearing));
            co_return AppResult::hangup;
        }
        auto r = caller.take_redirect();
        legs.end(*winner, cause::normal_clearing);
        finish("ANSWER", answered);
        if (!r) {
            log.warning("{}: Dial: redirected without a destination; hanging up", caller.name());
            co_return AppResult::hangup;
        }
        if (!r->bridge_to && r->exten.empty()) {
            // Let go: a transfer connects the caller to a channel whose owner
            // takes it over (an attended transfer between two callers). The
            // dialplan stops here without hanging up.
            log.info("{}: Dial: handed over by a transfer", caller.name());
            co_return AppResult::released;
        }
        if (!r->bridge_to) {
            caller.jump_to(r->context, r->exten, r->priority);
            co_return AppResult::next;
        }
        // Connected to the channel the transfer names, which Dial owns from now on.
        peer = std::move(r->bridge_to);
        if (!co_await join_loop_of(core, caller, peer)) co_return AppResult::hangup;
        winner = &legs.add(peer);
        if (!co_await wait_free(caller, *peer)) {
            log.notice("{}: Dial: transfer to {} failed: it did not become free", caller.name(), peer->name());
            co_return AppResult::hangup;
        }
        log.info("{}: Dial: transfer: connected to {}", caller.name(), peer->name());
        caller.set_variable("DIALEDPEERNAME", peer->name());
        end = co_await bridge(caller, *peer, bo);
        log.info("{}: Dial: bridge with {} ended: {}", caller.name(), peer->name(), to_string(end));
    }
    finish("ANSWER", answered);
    caller.set_variable("HANGUPCAUSE",
                        std::to_string(peer->hangup_cause() ? peer->hangup_cause() : cause::normal_clearing));
    switch (end) {
        case BridgeEnd::a_hungup:
            legs.end(*winner, caller.hangup_cause() ? caller.hangup_cause() : cause::normal_clearing);
            co_return AppResult::hangup;
        case BridgeEnd::b_hungup:
            legs.end(*winner, cause::normal_clearing);
            if (opts->go_on) co_return AppResult::next;
            if (!caller.hangup_cause()) caller.set_hangup_cause(peer->hangup_cause());
            co_return AppResult::hangup;
        case BridgeEnd::limit:
            legs.end(*winner, cause::normal_clearing);
            co_return opts->go_on ? AppResult::next : AppResult::hangup;
        case BridgeEnd::failed:
            legs.end(*winner, cause::normal_clearing);
            caller.set_variable("DIALSTATUS", "CHANUNAVAIL");
            co_return AppResult::next;
        case BridgeEnd::a_redirected:
        case BridgeEnd::b_redirected:
            break;  // handled above
    }
    co_return AppResult::next;
}

class DialModule final : public Module {
public:
    void load(Host& host) override {
        app_ = host.add(
            "Dial",
            Application{"Call one or more destinations and connect the first that answers",
                        "Dial(Tech/dest[&Tech/dest...][,timeout[,options]])",
                        "Requests every destination (e.g. SIP/alice&Local/200@internal) and calls them in parallel.\n"
                        "While they ring, ringing, progress and early media reach the caller. The first to answer\n"
                        "is connected to the caller (who is answered then); the others are hung up with cause 26\n"
                        "(answered elsewhere). timeout is in seconds (none: ring until someone answers or fails).\n"
                        "Options:\n"
                        "  r     ring the caller ourselves and ignore the callees' progress and early media\n"
                        "  g     continue in the dialplan when the called party hangs up\n"
                        "  L(ms) end the call after this many milliseconds\n"
                        "Sets DIALSTATUS (ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL), DIALEDTIME,\n"
                        "ANSWEREDTIME (seconds), HANGUPCAUSE and DIALEDPEERNAME. Outgoing channels inherit the\n"
                        "caller's _ and __ variables and caller id. Without g the call ends when the bridge does;\n"
                        "after a failure (no answer, busy...) the dialplan continues at the next priority.",
                        1, 4, dial});
    }

private:
    Registration app_;
};

}  // namespace

TANDEM_MODULE(DialModule)
