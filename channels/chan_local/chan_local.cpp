// chan_local: `Local/EXTEN@CONTEXT` — a call into the dialplan as a channel.
//
// A request creates two channels on the same loop: `;1`, handed to whoever
// asked (Dial, originate), and `;2`, which runs the dialplan at EXTEN@CONTEXT
// once `;1` is called. What one half's driver is told (answer, indications,
// frames, digits, text, hangup) the other half hears from the wire, so each looks to its
// owner like an ordinary call. Both halves live on one loop: no locking.
#include <tandem/core.hpp>
#include <tandem/module.hpp>

#include <memory>

namespace {

using namespace tandem;

struct Pair {
    std::weak_ptr<Channel> one, two;
    std::string exten, context;
    bool started = false;
};

class LocalDriver final : public ChannelDriver {
public:
    LocalDriver(std::shared_ptr<Pair> pair, bool is_one) : pair_(std::move(pair)), is_one_(is_one) {}

    void call(Channel& chan, std::chrono::milliseconds) override {
        if (!is_one_ || pair_->started) return;
        auto two = pair_->two.lock();
        if (!two) return;
        pair_->started = true;
        two->caller() = chan.caller();
        two->dialed_number() = pair_->exten;
        two->inherit_from(chan);
        // As in Asterisk, `;2` gets every variable of `;1`, not only the
        // inheritable ones: `_VAR` set by the caller of Dial(Local/...) is
        // seen by the dialplan behind the Local channel.
        for (auto& v : chan.variables())
            if (v.inherit == 0) two->set_variable(v.name, v.value);
        two->set_position(pair_->context, pair_->exten, 1);
        two->set_state(ChannelState::ring);
        chan.core().start_pbx(two);
    }

    void answer(Channel&) override {
        if (auto o = other()) o->on_answered();
    }

    void indicate(Channel&, Indication i) override {
        if (auto o = other()) o->on_indication(i);
    }
    // Hold goes on to the other half like any indication; music, if any,
    // is played by the channel at the far end.
    bool handles_hold() const override { return true; }

    void send_digit_begin(Channel&, char digit) override {
        if (auto o = other()) o->on_frame(Frame::digit(FrameKind::dtmf_begin, digit));
    }

    void send_digit(Channel&, char digit, std::chrono::milliseconds duration) override {
        if (auto o = other())
            o->on_frame(Frame::digit(FrameKind::dtmf_end, digit, static_cast<std::uint32_t>(duration.count())));
    }

    void send_text(Channel&, std::string_view text) override {
        auto o = other();
        if (!o) return;
        Frame f;
        f.kind = FrameKind::text;
        f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
        o->on_frame(std::move(f));
    }

    // Both halves use the same native format (slin8), so what one writes the
    // other reads unchanged.
    void write(Channel&, const Frame& f) override {
        if (auto o = other()) o->on_frame(f);
    }

    void hangup(Channel& chan, int cause) override {
        auto o = other();
        if (!o) return;
        // `;2` never ran a dialplan if `;1` was not called: nobody else will end it.
        if (is_one_ && !pair_->started) {
            o->set_hangup_cause(cause);
            chan.core().end_channel(o);
            return;
        }
        o->on_hangup(cause);
    }

private:
    std::shared_ptr<Channel> other() const { return (is_one_ ? pair_->two : pair_->one).lock(); }
    std::shared_ptr<Pair> pair_;
    bool is_one_;
};

class LocalModule final : public Module {
public:
    void load(Host& host) override {
        tech_ = host.add(
            "Local",
            ChannelTechnology{
                "Local channels: a call into the dialplan (Local/exten@context)",
                [](Core& core, const ChannelRequest& req, int& cause) -> std::shared_ptr<Channel> {
                    std::string_view dest = req.destination;
                    if (auto slash = dest.find('/'); slash != std::string_view::npos)
                        dest = dest.substr(0, slash);  // /n options
                    auto at = dest.find('@');
                    auto pair = std::make_shared<Pair>();
                    pair->exten = std::string(dest.substr(0, at));
                    pair->context = at == std::string_view::npos ? "default" : std::string(dest.substr(at + 1));
                    if (pair->exten.empty() || pair->context.empty()) {
                        cause = cause::invalid_number_format;
                        return nullptr;
                    }
                    auto& loop = req.requestor ? req.requestor->loop() : core.pick_loop();
                    auto base = "Local/" + pair->exten + "@" + pair->context;
                    auto one = core.create_channel("Local", base, std::make_unique<LocalDriver>(pair, true), loop);
                    if (!one) {
                        cause = cause::switch_congestion;
                        return nullptr;
                    }
                    // Both halves share the name's unique part, as operators expect: ...-0000002a;1 and ;2.
                    auto two = core.create_channel("Local", base, std::make_unique<LocalDriver>(pair, false), loop);
                    if (!two) {
                        cause = cause::switch_congestion;
                        core.end_channel(one);
                        return nullptr;
                    }
                    pair->one = one;
                    pair->two = two;
                    // The ;2 half runs the dialplan and dials on with the hops
                    // the request left (the core gives ;1 the same): a Local
                    // channel dialling itself ends.
                    two->set_max_forwards(req.max_forwards);
                    two->peer_name() = one->name();
                    one->peer_name() = two->name();
                    return one;
                }});
    }

private:
    Registration tech_;
};

}  // namespace

TANDEM_MODULE(LocalModule)
