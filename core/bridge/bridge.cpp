// The two-party bridge: frame forwarding, and the RTP relay decision.
#include <tandem/bridge.hpp>
#include <tandem/core.hpp>
#include <tandem/rtp.hpp>

#include <algorithm>

namespace tandem {

std::string_view to_string(BridgeEnd e) {
    switch (e) {
        case BridgeEnd::a_hungup:
            return "a hung up";
        case BridgeEnd::b_hungup:
            return "b hung up";
        case BridgeEnd::limit:
            return "duration limit";
        case BridgeEnd::failed:
            return "failed";
        case BridgeEnd::a_redirected:
            return "a redirected";
        case BridgeEnd::b_redirected:
            return "b redirected";
    }
    return "unknown";
}

namespace {

// The indications a bridged leg passes on; answer and hangup are the legs'
// own business, not something to play to the other side.
bool passes_on(Indication i) {
    switch (i) {
        case Indication::ringing:
        case Indication::progress:
        case Indication::proceeding:
        case Indication::busy:
        case Indication::congestion:
        case Indication::hold:
        case Indication::unhold:
            return true;
        case Indication::answer:
        case Indication::hangup:
            return false;
    }
    return false;
}

// One bridge's state, alive for the duration of bridge(); attaching and
// detaching are tied to its lifetime, so an exception or a cancellation
// cannot leave an observer or a relay behind.
class Session {
public:
    Session(Channel& a, Channel& b, const BridgeOptions& o) : a_(a), b_(b), options_(o), waiter_(a.loop()) {
        a_.add_waiter(waiter_);
        b_.add_waiter(waiter_);
        a_.set_frame_observer([this](const Frame& f) { forward(f, b_); });
        b_.set_frame_observer([this](const Frame& f) { forward(f, a_); });
        a_.peer_name() = b_.name();
        b_.peer_name() = a_.name();
        a_.set_variable("BRIDGEPEER", b_.name());
        b_.set_variable("BRIDGEPEER", a_.name());
    }

    ~Session() {
        if (owed_unhold_a_ && !a_.hungup()) a_.indicate(Indication::unhold);
        if (owed_unhold_b_ && !b_.hungup()) b_.indicate(Indication::unhold);
        stop_relay();
        stop_video_relay();
        a_.set_frame_observer({});
        b_.set_frame_observer({});
        a_.remove_waiter(waiter_);
        b_.remove_waiter(waiter_);
    }

    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    EventWaiter& waiter() { return waiter_; }

    // Engages or releases the relay according to the current state of both legs.
    void update_relay() {
        RtpSession* ra = nullptr;
        RtpSession* rb = nullptr;
        if (options_.allow_relay && !a_.hungup() && !b_.hungup() && !a_.audio_tapped() && !b_.audio_tapped()) {
            ra = a_.driver().rtp();
            rb = b_.driver().rtp();
            if (!ra || !rb || ra == rb || !ra->can_relay_to(*rb) || !rb->can_relay_to(*ra)) ra = rb = nullptr;
        }
        update_video_relay();
        if (ra == relay_a_ && rb == relay_b_) return;
        stop_relay();
        if (!ra) return;
        ra->relay_to(rb);
        rb->relay_to(ra);
        relay_a_ = ra;
        relay_b_ = rb;
        a_.core().log().debug("bridge {} <-> {}: relaying RTP", a_.name(), b_.name());
    }

    // Video is only ever relayed (never decoded or tapped), whatever happens
    // to the audio: both legs must have a video stream of the same codec.
    void update_video_relay() {
        RtpSession* va = nullptr;
        RtpSession* vb = nullptr;
        if (!a_.hungup() && !b_.hungup()) {
            va = a_.driver().video_rtp();
            vb = b_.driver().video_rtp();
            if (!va || !vb || va == vb || !va->can_relay_to(*vb) || !vb->can_relay_to(*va)) va = vb = nullptr;
        }
        if (va == video_a_ && vb == video_b_) return;
        stop_video_relay();
        if (!va) return;
        va->relay_to(vb);
        vb->relay_to(va);
        video_a_ = va;
        video_b_ = vb;
        a_.core().log().debug("bridge {} <-> {}: relaying video RTP", a_.name(), b_.name());
    }

    bool relaying() const { return relay_a_ != nullptr; }

private:
    void forward(const Frame& f, Channel& to) {
        switch (f.kind) {
            case FrameKind::voice:
            case FrameKind::video:
                if (!relaying()) to.write(f);
                return;
            case FrameKind::control: {
                auto i = static_cast<Indication>(f.subclass);
                if (!passes_on(i)) return;
                // A hold passed on is owed an unhold if the bridge ends first
                // (the holder hangs up or transfers): no music left behind.
                if (i == Indication::hold || i == Indication::unhold)
                    (&to == &a_ ? owed_unhold_a_ : owed_unhold_b_) = i == Indication::hold;
                to.indicate(i);
                return;
            }
            case FrameKind::dtmf_begin:
            case FrameKind::dtmf_end:
            case FrameKind::text:
                to.write(f);
                return;
            case FrameKind::null:
                return;
        }
    }

    // Only sessions still owned by a live driver are touched: a finished
    // channel's driver may have closed and freed its session (closing stops
    // the relay both ways by itself).
    void stop_relay() {
        if (!relay_a_) return;
        if (!a_.finished() && a_.driver().rtp() == relay_a_) relay_a_->relay_to(nullptr);
        if (!b_.finished() && b_.driver().rtp() == relay_b_) relay_b_->relay_to(nullptr);
        relay_a_ = relay_b_ = nullptr;
        a_.core().log().debug("bridge {} <-> {}: relay stopped", a_.name(), b_.name());
    }

    void stop_video_relay() {
        if (!video_a_) return;
        if (!a_.finished() && a_.driver().video_rtp() == video_a_) video_a_->relay_to(nullptr);
        if (!b_.finished() && b_.driver().video_rtp() == video_b_) video_b_->relay_to(nullptr);
        video_a_ = video_b_ = nullptr;
    }

    Channel& a_;
    Channel& b_;
    BridgeOptions options_;
    EventWaiter waiter_;
    RtpSession* relay_a_ = nullptr;
    RtpSession* relay_b_ = nullptr;
    RtpSession* video_a_ = nullptr;
    RtpSession* video_b_ = nullptr;
    bool owed_unhold_a_ = false, owed_unhold_b_ = false;
};

}  // namespace

awaitable<BridgeEnd> bridge(Channel& a, Channel& b, BridgeOptions options) {
    if (&a == &b) {
        a.core().log().error("bridge {}: a channel cannot be bridged to itself", a.name());
        co_return BridgeEnd::failed;
    }
    if (&a.loop() != &b.loop()) {
        a.core().log().error("bridge {} <-> {}: the channels live on different event loops", a.name(), b.name());
        co_return BridgeEnd::failed;
    }
    if (a.hungup()) co_return BridgeEnd::a_hungup;
    if (b.hungup()) co_return BridgeEnd::b_hungup;

    using clock = std::chrono::steady_clock;
    // Without a limit, wake now and then anyway: a driver may gain an RTP
    // session (a re-INVITE) without any other event to report.
    constexpr std::chrono::milliseconds recheck = std::chrono::seconds(5);
    auto deadline = options.limit.count() > 0 ? clock::now() + options.limit : clock::time_point::max();

    Session s(a, b, options);
    a.core().log().debug("bridge {} <-> {}: started", a.name(), b.name());
    for (;;) {
        // A transferer may hang up the moment it has handed its party on:
        // the redirected leg still goes on.
        if (b.redirect_pending() && !b.hungup()) co_return BridgeEnd::b_redirected;
        if (a.redirect_pending() && !a.hungup()) co_return BridgeEnd::a_redirected;
        if (a.hungup()) co_return BridgeEnd::a_hungup;
        if (b.hungup()) co_return BridgeEnd::b_hungup;
        s.update_relay();
        auto wait = recheck;
        if (deadline != clock::time_point::max()) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0) co_return BridgeEnd::limit;
            wait = std::min(wait, left + std::chrono::milliseconds(1));
        }
        co_await s.waiter().wait(wait);
    }
}

}  // namespace tandem
