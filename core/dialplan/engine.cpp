#include "dialplan/engine.hpp"

#include "dialplan/dialplan.hpp"
#include "dialplan/substitute.hpp"
#include "runtime/core_impl.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include <charconv>

namespace asio = boost::asio;

namespace tandem::dialplan {

namespace {

// Resolves ${...} names against a channel (or globals only when chan is null).
class ChannelResolver final : public Resolver {
public:
    ChannelResolver(CoreImpl& core, Channel* chan) : core_(core), chan_(chan) {}

    std::optional<std::string> variable(std::string_view name) override {
        if (chan_) {
            if (name == "EXTEN") return chan_->exten();
            if (name == "CONTEXT") return chan_->context();
            if (name == "PRIORITY") return std::to_string(chan_->priority());
            if (name == "CHANNEL") return chan_->name();
            if (name == "UNIQUEID") return chan_->uniqueid();
            if (name == "LINKEDID") return chan_->linkedid();
            if (name == "HANGUPCAUSE") return std::to_string(chan_->hangup_cause());
            if (name == "CALLERID(num)" || name == "CALLERIDNUM") return chan_->caller().number;
            if (name == "LANGUAGE") return chan_->language();
            if (name == "ACCOUNTCODE") return chan_->accountcode();
            if (auto v = chan_->variable(name)) return v;
        } else if (auto g = core_.global_variable(name)) {
            return g;
        }
        if (name == "EPOCH")
            return std::to_string(
                std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
                    .count());
        return std::nullopt;
    }

    std::optional<std::string> function(std::string_view name, std::string_view args, std::string& error) override {
        auto fn = core_.functions().find(name);
        if (!fn) {
            error = "unknown function '" + std::string(name) + "'";
            return std::nullopt;
        }
        try {
            return fn->read(chan_, args, error);
        } catch (const std::exception& e) {
            error = std::string(name) + ": " + e.what();
            return std::nullopt;
        }
    }

private:
    CoreImpl& core_;
    Channel* chan_;
};

bool is_cancellation(const boost::system::system_error& e) {
    return e.code() == asio::error::operation_aborted;
}

// Applies a pending Goto; false when the target cannot be resolved.
bool apply_jump(CoreImpl& core, Channel& c, Channel::Jump j) {
    auto ctx = j.context.empty() ? c.context() : j.context;
    auto ext = j.exten.empty() ? c.exten() : j.exten;
    int prio = j.priority;
    if (!j.label.empty()) {
        prio = core.dialplan_label(ctx, ext, j.label, c.caller().number);
        if (!prio) {
            core.log().warning("{}: priority label '{}' not found in {}@{}", c.name(), j.label, ext, ctx);
            return false;
        }
    }
    c.set_position(std::move(ctx), std::move(ext), prio);
    return true;
}

// Runs priorities until the call ends; true when an application handed the
// channel to another owner (AppResult::released).
awaitable<bool> run_steps(CoreImpl& core, Channel& c, bool in_h) {
    for (;;) {
        if (c.hungup() && !in_h) co_return false;
        auto plan = core.dialplan();
        auto* ext = find_extension(*plan, c.context(), c.exten(), c.caller().number, std::chrono::system_clock::now());
        if (!ext) {
            if (!in_h && c.exten() != "i" &&
                find_extension(*plan, c.context(), "i", c.caller().number, std::chrono::system_clock::now())) {
                core.log().info("{}: sent to invalid extension '{}' in context '{}'; going to 'i'", c.name(), c.exten(),
                                c.context());
                c.set_variable("INVALID_EXTEN", c.exten());
                c.set_position(c.context(), "i", 1);
                continue;
            }
            if (!in_h)
                core.log().warning("{}: sent to invalid extension '{}' in context '{}', but no invalid handler",
                                   c.name(), c.exten(), c.context());
            if (!c.hangup_cause()) c.set_hangup_cause(cause::unallocated);
            co_return false;
        }
        auto* pr = ext->find_priority(c.priority());
        if (!pr) {
            core.log().debug("{}: auto fallthrough at {}@{}:{} — hanging up", c.name(), c.exten(), c.context(),
                             c.priority());
            co_return false;
        }
        auto args = pr->args.find_first_of("$") == std::string::npos ? pr->args : substitute_text(core, &c, pr->args);
        c.last_app() = pr->app;
        c.last_data() = args;
        auto& bus = core.events();
        if (bus.has_subscribers())
            bus.publish(
                event::DialplanStep{c.name(), c.uniqueid(), c.context(), c.exten(), c.priority(), pr->app, args});
        core.log().debug("Executing [{}@{}:{}] {}(\"{}\", \"{}\")", c.exten(), c.context(), c.priority(), pr->app,
                         c.name(), args);
        auto app = core.applications().find(pr->app);
        if (!app) {
            core.log().error("{}: application '{}' is no longer available ({})", c.name(), pr->app, pr->where.str());
            co_return false;
        }
        AppArgs a{args, split_args(args)};
        AppResult r = AppResult::next;
        try {
            r = co_await app->run(c, a);
        } catch (const boost::system::system_error& e) {
            // Channel::async_goto() cancels the application as a hangup
            // would; the call itself goes on at the new place.
            if (!is_cancellation(e) || c.hungup() || !c.async_goto_pending()) throw;
        }
        if (auto j = c.take_async_goto(); j && !c.hungup()) {
            co_await asio::this_coro::reset_cancellation_state();
            c.take_jump();
            if (!apply_jump(core, c, std::move(*j))) co_return false;
            continue;
        }
        if (r == AppResult::released) co_return true;
        if (r == AppResult::hangup) co_return false;
        if (auto j = c.take_jump()) {
            if (!apply_jump(core, c, std::move(*j))) co_return false;
            continue;
        }
        c.set_position(c.context(), c.exten(), c.priority() + 1);
    }
}

}  // namespace

std::string substitute_text(CoreImpl& core, Channel* chan, std::string_view text) {
    ChannelResolver r(core, chan);
    std::vector<std::string> errors;
    auto out = substitute(text, r, &errors);
    for (auto& e : errors) core.log().warning("{}: {}", chan ? chan->name() : std::string("substitution"), e);
    return out;
}

awaitable<bool> run_pbx(CoreImpl& core, std::shared_ptr<Channel> chan) {
    Channel& c = *chan;
    try {
        // Another owner has the channel now: its call goes on there.
        if (co_await run_steps(core, c, false)) co_return true;
    } catch (const boost::system::system_error& e) {
        if (!is_cancellation(e)) core.log().error("{}: {}", c.name(), e.what());
    } catch (const std::exception& e) {
        core.log().error("{}: application failed: {}", c.name(), e.what());
    }
    // The `h` extension runs after the call, whatever ended it.
    auto plan = core.dialplan();
    if (c.exten() != "h" &&
        find_extension(*plan, c.context(), "h", c.caller().number, std::chrono::system_clock::now())) {
        co_await asio::this_coro::reset_cancellation_state();
        c.set_variable("HANGUP_EXTEN", c.exten());
        c.set_position(c.context(), "h", 1);
        try {
            co_await run_steps(core, c, true);
        } catch (const std::exception& e) {
            core.log().warning("{}: in the h extension: {}", c.name(), e.what());
        }
    }
    co_return false;
}

awaitable<AppResult> exec_app(CoreImpl& core, Channel& chan, std::string app, std::string args) {
    auto a = core.applications().find(app);
    if (!a) {
        core.log().warning("{}: no application '{}'", chan.name(), app);
        co_return AppResult::next;
    }
    AppArgs aa{args, split_args(args)};
    co_return co_await a->run(chan, aa);
}

awaitable<bool> run_application(CoreImpl& core, std::shared_ptr<Channel> chan, std::string app, std::string args) {
    try {
        chan->last_app() = app;
        chan->last_data() = args;
        co_return co_await exec_app(core, *chan, std::move(app), std::move(args)) == AppResult::released;
    } catch (const boost::system::system_error& e) {
        if (!is_cancellation(e)) core.log().error("{}: {}", chan->name(), e.what());
    } catch (const std::exception& e) {
        core.log().error("{}: application failed: {}", chan->name(), e.what());
    }
    co_return false;
}

namespace {
// True when the channel was handed to another owner (see run_steps).
awaitable<bool> originate_flow(CoreImpl& core, std::shared_ptr<Channel> chan, OriginateTarget t) {
    using clock = std::chrono::steady_clock;
    auto deadline = clock::now() + t.timeout;
    chan->call(std::chrono::duration_cast<std::chrono::milliseconds>(t.timeout));
    while (chan->state() != ChannelState::up) {
        if (chan->hungup()) co_return false;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0 || !co_await chan->wait_for_event(left)) {
            core.log().notice("originate {}: no answer within {}s", chan->name(), t.timeout.count());
            chan->set_hangup_cause(cause::no_answer);
            co_return false;
        }
    }
    if (!t.app.empty()) {
        co_return co_await run_application(core, chan, t.app, t.app_args);
    }
    chan->set_position(t.context, t.exten, 1);
    co_return co_await run_pbx(core, chan);
}
}  // namespace

std::string originate(CoreImpl& core, std::string_view dial_string, OriginateTarget t, std::string& error) {
    if (!core.accepting_calls()) {
        error = "the PBX is stopping";
        return {};
    }
    int cause = 0;
    auto chan = core.request_channel(dial_string, nullptr, cause);
    if (!chan) {
        error = fmt::format("cannot create a channel for '{}': {} ({})", dial_string, cause::name(cause), cause);
        return {};
    }
    if (!t.caller.empty()) chan->caller() = t.caller;
    auto name = chan->name();
    // Spawned from the channel's own loop, so its hangup signal is only touched there.
    asio::post(chan->loop(), [&core, chan, t = std::move(t)]() mutable {
        auto& sig = chan->hangup_signal();
        asio::co_spawn(chan->loop(), originate_flow(core, chan, std::move(t)),
                       asio::bind_cancellation_slot(sig.slot(), [&core, chan](std::exception_ptr, bool released) {
                           if (released)
                               forget_finished_owner(chan);
                           else
                               core.end_channel(chan);
                       }));
    });
    return name;
}

}  // namespace tandem::dialplan
