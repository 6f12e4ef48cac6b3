// The dialplan engine: runs a channel through priorities as a coroutine.
//
// Each step reads the current snapshot, finds the extension and priority,
// substitutes the arguments and awaits the application. A hangup cancels the
// awaited operation; the engine then runs the `h` extension, if any, with the
// cancellation cleared (applications see `hungup()` and return at once).
#pragma once

#include <tandem/application.hpp>
#include <tandem/registry.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace tandem {
class CoreImpl;
}

namespace tandem::dialplan {

awaitable<bool> run_pbx(CoreImpl& core, std::shared_ptr<Channel> chan);
awaitable<bool> run_application(CoreImpl& core, std::shared_ptr<Channel> chan, std::string app, std::string args);
awaitable<AppResult> exec_app(CoreImpl& core, Channel& chan, std::string app, std::string args);
std::string substitute_text(CoreImpl& core, Channel* chan, std::string_view text);

struct OriginateTarget {
    std::string app, app_args;   // either an application...
    std::string exten, context;  // ...or a place in the dialplan
    std::chrono::seconds timeout{30};
    CallerId caller{"", ""};
};
// Requests the channel, calls it, and when it answers runs the target. Returns
// the channel's name, or "" with `error`.
std::string originate(CoreImpl& core, std::string_view dial_string, OriginateTarget target, std::string& error);

// The built-in applications, functions and dialplan CLI commands.
void register_builtins(CoreImpl& core, std::vector<Registration>& out);

}  // namespace tandem::dialplan
