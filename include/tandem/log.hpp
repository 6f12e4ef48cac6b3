// Logging for the core and modules.
//
// A Log is a named front end (the module or subsystem name shows in each line)
// over the core's LogSink, which fans lines out to the terminal, the log file
// and every attached console at its own verbosity. Formatting happens only when
// the level is enabled, so a disabled debug line costs one comparison.
//
// Threading: safe from any thread.
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace tandem {

enum class LogLevel : int { trace = 0, debug, info, notice, warning, error, off };

std::string_view to_string(LogLevel level);
// Accepts trace|debug|info|notice|warning|error|off (case-insensitive).
bool parse_log_level(std::string_view text, LogLevel& out);

class LogSink {
public:
    virtual ~LogSink() = default;
    virtual void write(LogLevel level, std::string_view source, std::string_view message) = 0;
    // The most verbose level any destination currently wants.
    virtual LogLevel threshold() const = 0;
};

class Log {
public:
    Log(LogSink& sink, std::string source) : sink_(&sink), source_(std::move(source)) {}

    bool enabled(LogLevel l) const { return l >= sink_->threshold(); }
    const std::string& source() const { return source_; }
    void write(LogLevel l, std::string_view message) const {
        if (enabled(l)) sink_->write(l, source_, message);
    }

    template <class... A>
    void trace(fmt::format_string<A...> f, A&&... a) const {
        emit(LogLevel::trace, f, std::forward<A>(a)...);
    }
    template <class... A>
    void debug(fmt::format_string<A...> f, A&&... a) const {
        emit(LogLevel::debug, f, std::forward<A>(a)...);
    }
    template <class... A>
    void info(fmt::format_string<A...> f, A&&... a) const {
        emit(LogLevel::info, f, std::forward<A>(a)...);
    }
    template <class... A>
    void notice(fmt::format_string<A...> f, A&&... a) const {
        emit(LogLevel::notice, f, std::forward<A>(a)...);
    }
    template <class... A>
    void warning(fmt::format_string<A...> f, A&&... a) const {
        emit(LogLevel::warning, f, std::forward<A>(a)...);
    }
    template <class... A>
    void error(fmt::format_string<A...> f, A&&... a) const {
        emit(LogLevel::error, f, std::forward<A>(a)...);
    }

private:
    template <class... A>
    void emit(LogLevel l, fmt::format_string<A...> f, A&&... a) const {
        if (enabled(l)) sink_->write(l, source_, fmt::format(f, std::forward<A>(a)...));
    }
    LogSink* sink_;
    std::string source_;
};

}  // namespace tandem
