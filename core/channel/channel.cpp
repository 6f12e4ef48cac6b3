#include <tandem/channel.hpp>
#include <tandem/core.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

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
      loop_(loop),
      name_(std::move(name)),
      uniqueid_(std::move(uniqueid)),
      driver_(driver ? std::move(driver) : std::make_unique<ChannelDriver>()),
      tech_(std::move(tech)),
      created_(std::chrono::system_clock::now()),
      linkedid_(uniqueid_) {}

Channel::~Channel() = default;

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
}

void Channel::set_position(std::string context, std::string exten, int priority) {
    context_ = std::move(context);
    exten_ = std::move(exten);
    priority_ = priority;
}

void Channel::jump_to(std::string context, std::string exten, int priority, std::string label) {
    jump_ = Jump{std::move(context), std::move(exten), std::move(label), priority};
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
    if (!hangup_requested_) driver_->indicate(*this, i);
}

void Channel::send_digit(char digit, std::chrono::milliseconds duration) {
    if (!hangup_requested_) driver_->send_digit(*this, digit, duration);
}

void Channel::write(const Frame& f) {
    if (!hangup_requested_) driver_->write(*this, f);
}

void Channel::call(std::chrono::milliseconds timeout) {
    if (!hangup_requested_) driver_->call(*this, timeout);
}

awaitable<bool> Channel::sleep(std::chrono::milliseconds d) {
    if (hangup_requested_) co_return false;
    asio::steady_timer timer(loop_);
    timer.expires_after(d);
    // A hangup cancels the coroutine's operation: the await throws operation_aborted.
    co_await timer.async_wait(asio::use_awaitable);
    co_return !hangup_requested_;
}

awaitable<bool> Channel::wait_for_event(std::chrono::milliseconds timeout) {
    if (hangup_requested_) co_return true;
    asio::steady_timer timer(loop_);
    timer.expires_after(timeout);
    waiters_.push_back(&timer);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    std::erase(waiters_, static_cast<void*>(&timer));
    // Woken (cancelled by wake_waiters) means an event; expiry means timeout.
    co_return ec == asio::error::operation_aborted;
}

void Channel::wake_waiters() {
    for (void* w : waiters_) static_cast<asio::steady_timer*>(w)->cancel();
}

void Channel::request_hangup(int c) {
    auto self = shared_from_this();
    asio::post(loop_, [self, c] {
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
    if (observer_) observer_(f);
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
    if (!hangup_cause_) hangup_cause_ = cause::normal_clearing;
    driver_->hangup(*this, hangup_cause_);
    set_state(ChannelState::hungup);
    wake_waiters();
}

}  // namespace tandem
