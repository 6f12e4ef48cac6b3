// Dialplan applications and functions, as modules register them.
//
// An application is a coroutine run on the channel's loop:
//     co_await chan.answer(); co_await chan.sleep(2s); co_return AppResult::next;
// It returns `next` to continue at the next priority (or wherever it jumped with
// Channel::jump_to) and `hangup` to end the call. A hangup while it awaits
// arrives as an exception from the awaited operation: let it propagate.
//
// A function (`${NAME(args)}` and `Set(NAME(args)=value)`) is synchronous and
// must not block: it runs inside variable substitution on the event loop. It
// reads in-memory state only (the key/value store is cached for this reason).
//
// min_args/max_args are checked when the dialplan is compiled, so a wrong call
// is reported as `extensions.conf:LINE` at load, not when a caller hits it.
#pragma once

#include <tandem/channel.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// What the dialplan does after an application: go on to the next priority
// (or where a Goto pointed), hang up, or stop without hanging up because the
// application handed the channel to another owner (a transfer connected it
// to a channel whose coroutine now owns it): no `h` extension runs then.
enum class AppResult { next, hangup, released };

struct AppArgs {
    std::string raw;                // after variable substitution
    std::vector<std::string> list;  // `raw` split on top-level commas
    const std::string& operator[](std::size_t i) const {
        static const std::string empty;
        return i < list.size() ? list[i] : empty;
    }
    std::size_t size() const { return list.size(); }
};

struct Application {
    std::string synopsis;     // one line
    std::string syntax;       // e.g. "Wait(seconds)"
    std::string description;  // several lines
    int min_args = 0;
    int max_args = -1;  // -1: unlimited
    std::function<awaitable<AppResult>(Channel&, const AppArgs&)> run;
};

struct Function {
    std::string synopsis;
    std::string syntax;
    std::string description;
    // Returns the value, or nullopt and an error message. `chan` may be null
    // when evaluated outside a call (e.g. from the CLI).
    std::function<std::optional<std::string>(Channel* chan, std::string_view args, std::string& error)> read;
    // Optional: makes the function writable with Set(NAME(args)=value).
    std::function<bool(Channel* chan, std::string_view args, std::string_view value, std::string& error)> write;
};

}  // namespace tandem
