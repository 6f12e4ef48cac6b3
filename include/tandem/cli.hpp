// CLI commands: one declaration each — words, summary, usage, handler, completion.
//
// Handlers are coroutines run on an event loop; they may await (e.g. a trace
// that follows a call) but must not block. They write their output through
// CliRequest::out and return a status: 0 success, 1 failure, 2 wrong usage
// (the console prints the usage text).
#pragma once

#include <tandem/channel.hpp>

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class CliOutput {
public:
    virtual ~CliOutput() = default;
    virtual void write(std::string_view text) = 0;
    template <class... A>
    void print(fmt::format_string<A...> f, A&&... a) {
        write(fmt::format(f, std::forward<A>(a)...));
    }
};

namespace cli_status {
inline constexpr int ok = 0;
inline constexpr int failure = 1;
inline constexpr int usage = 2;
inline constexpr int not_found = 127;
}  // namespace cli_status

struct CliRequest {
    std::vector<std::string> args;  // words after the command's own words
    CliOutput& out;
};

struct CliCommand {
    std::vector<std::string> words;  // e.g. {"core", "show", "channels"}
    std::string summary;             // one line, for `help`
    std::string usage;               // full usage text
    std::function<awaitable<int>(CliRequest&)> handler;
    // Optional: candidates for argument `index` (0-based) given the arguments
    // typed so far and the partial word being completed.
    std::function<std::vector<std::string>(const std::vector<std::string>& args, std::size_t index,
                                           std::string_view partial)>
        complete;
};

}  // namespace tandem
