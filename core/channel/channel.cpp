#include <tandem/channel.hpp>
#include <tandem/core.hpp>

#include "media/dsp.hpp"
#include <tandem/moh.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <vector>

namespace asio = boost::asio;

namespace tandem {

std::string_view to_string(ChannelState s) {
    switch (s) {
        case ChannelState::down:
            return "Down";
        case ChannelState::ring:
            return "Ring";
        case ChannelState::ringing:
            return "Ringing";
        case ChannelState::up:
            return "Up";
        case ChannelState::hungup:
            return "Hungup";
    }
    return "Unknown";
}

Channel::Channel(Core& core, asio::io_context& loop, std::string name, std::string uniqueid,
                 std::unique_ptr<ChannelDriver> driver, Lease<ChannelTechnology> tech)
    : core_(core),
      loop_(&loop),
      name_(std::move(name)),
      uniqueid_(std::move(uniqueid)),
      driver_(driver ? std::move(driver) : std::make_unique<ChannelDriver>()),
      tech_(std::move(tech)),
      created_(std::chrono::system_clock::now()),
      linkedid_(uniqueid_) {}

// The media side of a channel, allocated the first time something needs it
// (a reader, a format other than native), so an idle channel stays small.
struct Channel::Media {
    explicit Media(asio::io_context& loop) : reader(loop) {}

    // Read queue: a ring allocated when the first reader appears. It grows
    // only when it is full of frames that must not be dropped (DTMF, control,
    // text), up to a hard bound against a flood.
    static constexpr std::size_t initial_slots = 16;
    static constexpr std::size_t max_slots = 512;
    std::vector<Frame> ring;
    std::size_t head = 0, count = 0, voice = 0;
    bool reading = false;
    std::uint64_t dropped = 0;
    EventWaiter reader;

    // Translation, rebuilt when a format changes: driver -> reader, writer -> driver.
    std::unique_ptr<TranslationPath> read_path, write_path;
    Frame scratch;

    Frame& at(std::size_t i) { return ring[(head + i) % ring.size()]; }
    void erase(std::size_t i) {
        for (std::size_t j = i; j + 1 < count; ++j) std::swap(at(j), at(j + 1));
        --count;
    }
    void grow() {
        std::vector<Frame> bigger(ring.size() * 2);
        for (std::size_t i = 0; i < count; ++i) bigger[i] = std::move(at(i));
        ring = std::move(bigger);
        head = 0;
    }
};

namespace {
bool is_voice(const Frame& f) {
    return f.kind == FrameKind::voice;
}

// The path from `from` to `to` in `path`, rebuilt only when it does not match.
TranslationPath* path_for(Core& core, std::unique_ptr<TranslationPath>& path, Format from, Format to) {
    if (from == to || from == Format::none || to == Format::none) return nullptr;
    if (!path || path->from() != from || path->to() != to) path = core.build_path(from, to);
    return path.get();
}
}  // namespace

void EventWaiter::notify() {
    signalled_ = true;
    timer_.cancel();
}

awaitable<bool> EventWaiter::wait(std::chrono::milliseconds timeout) {
    if (!signalled_) {
        timer_.expires_after(timeout);
        // Cancelled either by notify() or by a hangup of the awaiting
        // coroutine's channel; as_tuple keeps both from throwing.
        co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    bool woke = signalled_;
    signalled_ = false;
    co_return woke;
}

Channel::~Channel() = default;

Channel::Media& Channel::media() {
    if (!media_) media_ = std::make_unique<Media>(loop());
    return *media_;
}

void Channel::set_native_format(Format f) {
    if (f == native_format_) return;
    native_format_ = f;
    if (dsp_) dsp_->prepare(f);
    if (media_) {
        // Prepared now rather than on the first frame, which must not allocate.
        path_for(core_, media_->read_path, f, read_format_);
        path_for(core_, media_->write_path, write_format_, f);
    }
    wake_waiters();
}

void Channel::set_read_format(Format f) {
    read_format_ = f;
    if (f != Format::none && f != native_format_) path_for(core_, media().read_path, native_format_, f);
}

void Channel::set_write_format(Format f) {
    write_format_ = f;
    if (f != Format::none && f != native_format_) path_for(core_, media().write_path, f, native_format_);
}

std::uint64_t Channel::dropped_frames() const {
    return media_ ? media_->dropped : 0;
}

void Channel::add_audio_tap() {
    if (++audio_taps_ == 1) wake_waiters();
}

void Channel::remove_audio_tap() {
    if (audio_taps_ > 0 && --audio_taps_ == 0) wake_waiters();
}

bool Channel::set_tone_detection(ToneDetection what) {
    if (dsp_ && dsp_->detecting() == what) return true;
    bool had = dsp_ != nullptr;
    dsp_.reset();
    bool ok = true;
    if (what.any()) {
        dsp_ = ChannelDsp::create(*this, what);
        ok = dsp_ != nullptr;
        if (!ok) core_.log().warning("{}: in-band detection could not be set up", name_);
    }
    // The detector needs the audio to come through the channel, not around it.
    if (dsp_ && !had)
        add_audio_tap();
    else if (!dsp_ && had)
        remove_audio_tap();
    return ok;
}

ToneDetection Channel::tone_detection() const {
    return dsp_ ? dsp_->detecting() : ToneDetection{};
}

void Channel::add_waiter(EventWaiter& w) {
    if (std::find(waiters_.begin(), waiters_.end(), &w) == waiters_.end()) waiters_.push_back(&w);
}

void Channel::remove_waiter(EventWaiter& w) {
    std::erase(waiters_, &w);
}

void Channel::queue_frame(const Frame& f) {
    auto& m = *media_;
    if (is_voice(f) && m.voice >= max_queued_voice) {
        // A slow reader loses the oldest audio, never a digit or an indication.
        for (std::size_t i = 0; i < m.count; ++i)
            if (is_voice(m.at(i))) {
                m.erase(i);
                --m.voice;
                ++m.dropped;
                break;
            }
    }
    if (m.count == m.ring.size()) {
        if (m.ring.size() >= Media::max_slots) {
            ++m.dropped;  // a flood of non-voice frames nobody reads
            return;
        }
        m.grow();
    }
    m.at(m.count++) = f;
    if (is_voice(f)) ++m.voice;
    m.reader.notify();
}

awaitable<std::optional<Frame>> Channel::read_frame(std::chrono::milliseconds timeout) {
    auto& m = media();
    if (!m.reading) {
        m.reading = true;
        m.ring.resize(Media::initial_slots);
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (hangup_requested_) co_return std::nullopt;
        if (m.count) {
            Frame f = std::move(m.at(0));
            m.head = (m.head + 1) % m.ring.size();
            --m.count;
            if (!is_voice(f)) co_return f;
            --m.voice;
            auto target = read_format_ == Format::none ? native_format_ : read_format_;
            auto from = static_cast<Format>(f.subclass);
            if (from == target) co_return f;
            auto* path = path_for(core_, m.read_path, from, target);
            if (path && path->convert(f, m.scratch)) co_return m.scratch;
            continue;  // untranslatable: dropped, as a codec error would be
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) co_return std::nullopt;
        co_await m.reader.wait(left);
    }
}

std::string_view Channel::technology() const {
    auto slash = name_.find('/');
    return std::string_view(name_).substr(0, slash == std::string::npos ? name_.size() : slash);
}

void Channel::set_state(ChannelState s) {
    if (state_ == s) return;
    state_ = s;
    if (s == ChannelState::up && answered_ == std::chrono::system_clock::time_point{})
        answered_ = std::chrono::system_clock::now();
    auto& bus = core_.events();
    if (bus.has_subscribers()) bus.publish(event::ChannelStateChanged{name_, uniqueid_, s});
}

namespace {
bool name_eq(std::string_view a, std::string_view b) {
    return a == b;
}
}  // namespace

std::optional<std::string> Channel::variable(std::string_view name) const {
    for (auto it = vars_.rbegin(); it != vars_.rend(); ++it)
        if (name_eq(it->name, name)) return it->value;
    return core_.global_variable(name);
}

void Channel::set_variable(std::string_view name, std::string value) {
    int inherit = 0;
    while (!name.empty() && name.front() == '_' && inherit < 2) {
        name.remove_prefix(1);
        ++inherit;
    }
    if (name.empty()) return;
    auto& bus = core_.events();
    if (bus.has_subscribers()) bus.publish(event::VariableSet{name_, uniqueid_, std::string(name), value});
    for (auto& v : vars_)
        if (name_eq(v.name, name)) {
            v.value = std::move(value);
            if (inherit) v.inherit = inherit;
            return;
        }
    vars_.push_back({std::string(name), std::move(value), inherit});
}

bool Channel::unset_variable(std::string_view name) {
    return std::erase_if(vars_, [&](const ChannelVariable& v) { return name_eq(v.name, name); }) > 0;
}

void Channel::inherit_from(const Channel& parent) {
    for (auto& v : parent.variables()) {
        if (v.inherit == 0) continue;
        // `_VAR` is passed one generation (arriving as a plain variable); `__VAR` forever.
        unset_variable(v.name);
        vars_.push_back({v.name, v.value, v.inherit == 2 ? 2 : 0});
    }
    linkedid_ = parent.linkedid_;
    language_ = parent.language_;
    accountcode_ = parent.accountcode_;
    music_class_ = parent.music_class_;
}

void Channel::set_position(std::string context, std::string exten, int priority) {
    context_ = std::move(context);
    exten_ = std::move(exten);
    priority_ = priority;
}

void Channel::jump_to(std::string context, std::string exten, int priority, std::string label) {
    jump_ = std::make_unique<Jump>(Jump{std::move(context), std::move(exten), std::move(label), priority});
}

bool Channel::async_goto(std::string context, std::string exten, int priority) {
    if (hangup_requested_ || !hangup_signal_.slot().has_handler()) return false;
    async_goto_ = std::make_unique<Jump>(Jump{std::move(context), std::move(exten), {}, priority});
    hangup_signal_.emit(asio::cancellation_type::terminal);
    wake_waiters();
    return true;
}

void Channel::set_redirect(Redirect r) {
    redirect_ = std::make_unique<Redirect>(std::move(r));
    wake_waiters();
}

std::optional<Channel::Redirect> Channel::take_redirect() {
    auto r = take(redirect_);
    // A bridge waiting to take this channel over learns it is free now.
    if (r) wake_waiters();
    return r;
}

awaitable<bool> Channel::answer() {
    if (hangup_requested_) co_return false;
    if (state_ != ChannelState::up) {
        driver_->answer(*this);
        set_state(ChannelState::up);
    }
    co_return !hangup_requested_;
}

void Channel::indicate(Indication i) {
    if (hangup_requested_) return;
    driver_->indicate(*this, i);
    // A driver that does not handle hold leaves it to the core: the held
    // party hears its music class until unhold.
    if (driver_->handles_hold()) return;
    if (i == Indication::hold)
        start_music_on_hold(*this);
    else if (i == Indication::unhold)
        stop_music_on_hold(*this);
}

void Channel::send_digit(char digit, std::chrono::milliseconds duration) {
    if (!hangup_requested_) driver_->send_digit(*this, digit, duration);
}

void Channel::write(const Frame& f) {
    if (hangup_requested_) return;
    switch (f.kind) {
        case FrameKind::voice:
            // While music plays it alone speaks on this channel.
            if (!music_playing_) write_voice(f);
            return;
        case FrameKind::dtmf_begin:
            driver_->send_digit_begin(*this, static_cast<char>(f.subclass));
            return;
        case FrameKind::dtmf_end:
            driver_->send_digit(*this, static_cast<char>(f.subclass),
                                std::chrono::milliseconds(f.duration_ms ? f.duration_ms : 100));
            return;
        case FrameKind::text: {
            auto p = f.payload();
            driver_->send_text(*this, std::string_view(reinterpret_cast<const char*>(p.data()), p.size()));
            return;
        }
        case FrameKind::control:
        case FrameKind::null:
            return;
        case FrameKind::video:
            break;
    }
    driver_->write(*this, f);
}

void Channel::write_voice(const Frame& f) {
    auto from = static_cast<Format>(f.subclass);
    if (from == native_format_) {
        driver_->write(*this, f);
        return;
    }
    auto& m = media();
    auto* path = path_for(core_, m.write_path, from, native_format_);
    if (path && path->convert(f, m.scratch)) driver_->write(*this, m.scratch);
}

void Channel::set_music_playing(bool on) {
    if (on == music_playing_) return;
    music_playing_ = on;
    if (on)
        add_audio_tap();
    else
        remove_audio_tap();
}

void Channel::write_music(const Frame& f) {
    if (!hangup_requested_ && f.kind == FrameKind::voice) write_voice(f);
}

void Channel::send_digit_begin(char digit) {
    if (!hangup_requested_) driver_->send_digit_begin(*this, digit);
}

void Channel::send_text(std::string_view text) {
    if (!hangup_requested_) driver_->send_text(*this, text);
}

void Channel::call(std::chrono::milliseconds timeout) {
    if (!hangup_requested_) driver_->call(*this, timeout);
}

awaitable<bool> Channel::sleep(std::chrono::milliseconds d) {
    if (hangup_requested_) co_return false;
    asio::steady_timer timer(loop());
    timer.expires_after(d);
    // A hangup cancels the coroutine's operation: the await throws operation_aborted.
    co_await timer.async_wait(asio::use_awaitable);
    co_return !hangup_requested_;
}

awaitable<bool> Channel::wait_for_event(std::chrono::milliseconds timeout) {
    if (hangup_requested_) co_return true;
    EventWaiter w(loop());
    add_waiter(w);
    bool woke = co_await w.wait(timeout);
    remove_waiter(w);
    co_return woke || hangup_requested_;
}

void Channel::wake_waiters() {
    // notify() only cancels a timer (its handler runs later), so a waiter
    // removing itself cannot invalidate this loop.
    for (auto* w : waiters_) w->notify();
    if (media_) media_->reader.notify();
}

void post_to_channel(std::shared_ptr<Channel> c, std::function<void(Channel*)> f) {
    auto* loop = &c->loop();
    asio::post(*loop, [c = std::move(c), f = std::move(f), loop]() mutable {
        // Moved meanwhile (move_channel): on to its new loop.
        if (&c->loop() != loop) return post_to_channel(std::move(c), std::move(f));
        f(c.get());
    });
}

void forget_finished_owner(std::shared_ptr<Channel> c) {
    post_to_channel(std::move(c), [](Channel* ch) { ch->hangup_signal().slot().clear(); });
}

bool Channel::movable() const {
    return !finished_ && !hangup_requested_ && !redirect_ && waiters_.empty() && !music_playing_ && audio_taps_ == 0 &&
           !observer_ && !(media_ && media_->reading) && driver_->can_move(*this);
}

void Channel::rehome(asio::io_context& to) {
    driver_->leave_loop(*this, to);
    // Nothing runs on the channel: whatever its signal's slot holds belongs
    // to a finished owner (see forget_finished_owner()).
    hangup_signal_.slot().clear();
    loop_.store(&to, std::memory_order_release);
    if (media_) {
        // The read queue and translation paths move; the reader's waiter is
        // the new loop's.
        auto m = std::make_unique<Media>(to);
        m->ring = std::move(media_->ring);
        m->head = media_->head;
        m->count = media_->count;
        m->voice = media_->voice;
        m->dropped = media_->dropped;
        m->read_path = std::move(media_->read_path);
        m->write_path = std::move(media_->write_path);
        media_ = std::move(m);
    }
}

awaitable<bool> move_channel(std::shared_ptr<Channel> c, asio::io_context& to, std::chrono::milliseconds patience) {
    if (&c->loop() == &to) co_return true;
    auto& from = c->loop();
    // On the channel's loop: wait for it to be let go, then move it. This
    // frame keeps the channel alive; the coroutine lambda holds a plain
    // pointer. (With a shared_ptr captured, the count came out one short
    // after the spawn and the channel was freed under its last owner: seen
    // under ASan, the compiler's handling of the lambda coroutine's captures.)
    auto left = co_await asio::co_spawn(
        from,
        [c = c.get(), &to, patience]() -> awaitable<bool> {
            const auto deadline = std::chrono::steady_clock::now() + patience;
            for (;;) {
                if (c->hungup() || c->finished()) co_return false;
                if (c->movable()) break;
                auto wait =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
                if (wait.count() <= 0) {
                    c->core().log().notice("{}: cannot move to another loop: {}", c->name(),
                                           c->driver().can_move(*c) ? "still in use" : "its driver cannot move");
                    co_return false;
                }
                // Nothing to wait on without becoming a waiter ourselves: poll.
                asio::steady_timer t(c->loop());
                t.expires_after(std::min(wait, std::chrono::milliseconds(20)));
                co_await t.async_wait(asio::use_awaitable);
            }
            c->rehome(to);
            co_return true;
        },
        asio::use_awaitable);
    if (!left) co_return false;
    // Back on `to`, where the channel lives now.
    c->driver().join_loop(*c);
    c->core().log().debug("{}: moved to another loop", c->name());
    co_return true;
}

void Channel::request_hangup(int c) {
    post_to_channel(shared_from_this(), [c](Channel* self) {
        if (self->finished_) return;
        if (!self->hangup_cause_) self->hangup_cause_ = c;
        if (self->hangup_requested_) return;
        self->hangup_requested_ = true;
        self->hangup_signal_.emit(asio::cancellation_type::terminal);
        self->wake_waiters();
    });
}

void Channel::on_answered() {
    set_state(ChannelState::up);
    wake_waiters();
}

void Channel::on_indication(Indication i) {
    last_indication_ = i;
    if (i == Indication::ringing && state_ == ChannelState::down) set_state(ChannelState::ringing);
    if (observer_) observer_(Frame::control(i));
    wake_waiters();
}

void Channel::on_frame(Frame f) {
    if (hangup_requested_) return;
    if (observer_) observer_(f);
    const Frame* decoded = dsp_ && f.kind == FrameKind::voice ? dsp_->listen(f) : nullptr;
    if (media_ && media_->reading) {
        // The detector decoded the frame already: a reader of anything but
        // the native format gets the slin8 copy, one decode fewer.
        auto target = read_format_ == Format::none ? native_format_ : read_format_;
        queue_frame(decoded && target != native_format_ ? *decoded : f);
    }
    // Digits after the voice that carried them. Acting runs observers that
    // may turn detection off: the detector stays alive until it is done.
    if (dsp_ && f.kind == FrameKind::voice && dsp_->heard()) {
        auto keep = dsp_;
        keep->act();
    }
}

void Channel::on_hangup(int c) {
    if (!hangup_cause_) hangup_cause_ = c ? c : cause::normal_clearing;
    if (!hangup_requested_) {
        hangup_requested_ = true;
        hangup_signal_.emit(asio::cancellation_type::terminal);
    }
    wake_waiters();
}

void Channel::finish() {
    if (finished_) return;
    finished_ = true;
    hangup_requested_ = true;
    redirect_.reset();
    if (!hangup_cause_) hangup_cause_ = cause::normal_clearing;
    driver_->hangup(*this, hangup_cause_);
    set_state(ChannelState::hungup);
    wake_waiters();
}

}  // namespace tandem
