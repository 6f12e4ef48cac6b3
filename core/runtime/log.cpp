#include "runtime/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace tandem {

namespace {
constexpr std::string_view level_names[] = {"trace", "debug", "info", "notice", "warning", "error", "off"};

spdlog::level::level_enum to_spd(LogLevel l) {
    switch (l) {
        case LogLevel::trace:
            return spdlog::level::trace;
        case LogLevel::debug:
            return spdlog::level::debug;
        case LogLevel::info:
        case LogLevel::notice:
            return spdlog::level::info;
        case LogLevel::warning:
            return spdlog::level::warn;
        case LogLevel::error:
            return spdlog::level::err;
        case LogLevel::off:
            break;
    }
    return spdlog::level::off;
}
}  // namespace

std::string_view to_string(LogLevel level) {
    auto i = static_cast<std::size_t>(level);
    return i < std::size(level_names) ? level_names[i] : "unknown";
}

bool parse_log_level(std::string_view text, LogLevel& out) {
    for (std::size_t i = 0; i < std::size(level_names); ++i) {
        auto n = level_names[i];
        if (n.size() == text.size() && std::equal(n.begin(), n.end(), text.begin(), [](char a, char b) {
                return a == (b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
            })) {
            out = static_cast<LogLevel>(i);
            return true;
        }
    }
    if (text == "verbose") {
        out = LogLevel::info;
        return true;
    }
    return false;
}

CoreLog::CoreLog(LogLevel terminal_level) : terminal_level_(terminal_level) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    terminal_ = std::make_shared<spdlog::logger>("terminal", sink);
    // The line is formatted once by format_line, so every destination shows the same text.
    terminal_->set_pattern("%v");
    terminal_->set_level(spdlog::level::trace);
    recompute();
}

CoreLog::~CoreLog() {
    std::lock_guard lock(mu_);
    if (file_) file_->flush();
}

std::string CoreLog::format_line(LogLevel level, std::string_view source, std::string_view message) {
    using namespace std::chrono;
    auto now = system_clock::now();
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()) % 1000;
    std::time_t t = system_clock::to_time_t(now);
    std::tm tm{};
    localtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    std::string lvl(to_string(level));
    for (auto& c : lvl) c = static_cast<char>(c - 'a' + 'A');
    return fmt::format("[{}.{:03d}] {:<7} {}: {}", stamp, static_cast<int>(ms.count()), lvl, source, message);
}

void CoreLog::write(LogLevel level, std::string_view source, std::string_view message) {
    if (level == LogLevel::off) return;
    auto line = format_line(level, source, message);
    std::vector<std::shared_ptr<Tap>> taps;
    std::shared_ptr<spdlog::logger> term, file;
    {
        std::lock_guard lock(mu_);
        if (level >= terminal_level_) term = terminal_;
        if (level >= file_level_) file = file_;
        for (auto& t : taps_)
            if (level >= t.level) taps.push_back(t.tap);
    }
    if (term) term->log(to_spd(level), "{}", line);
    if (file) file->log(to_spd(level), "{}", line);
    if (!taps.empty()) {
        line.push_back('\n');
        for (auto& t : taps) (*t)(line);
    }
}

bool CoreLog::open_file(const std::string& path, LogLevel level, std::string& error) {
    try {
        auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, false);
        auto lg = std::make_shared<spdlog::logger>("file", sink);
        lg->set_pattern("%v");
        lg->set_level(spdlog::level::trace);
        lg->flush_on(spdlog::level::warn);
        std::lock_guard lock(mu_);
        file_ = lg;
        file_level_ = level;
    } catch (const std::exception& e) {
        error = e.what();
        return false;
    }
    recompute();
    return true;
}

void CoreLog::set_terminal_level(LogLevel level) {
    {
        std::lock_guard lock(mu_);
        terminal_level_ = level;
    }
    recompute();
}

LogLevel CoreLog::terminal_level() const {
    std::lock_guard lock(mu_);
    return terminal_level_;
}

int CoreLog::add_tap(LogLevel level, Tap tap) {
    int id;
    {
        std::lock_guard lock(mu_);
        id = ++next_tap_;
        taps_.push_back({id, level, std::make_shared<Tap>(std::move(tap))});
    }
    recompute();
    return id;
}

void CoreLog::set_tap_level(int id, LogLevel level) {
    {
        std::lock_guard lock(mu_);
        for (auto& t : taps_)
            if (t.id == id) t.level = level;
    }
    recompute();
}

void CoreLog::remove_tap(int id) {
    {
        std::lock_guard lock(mu_);
        std::erase_if(taps_, [id](const TapEntry& t) { return t.id == id; });
    }
    recompute();
}

void CoreLog::recompute() {
    std::lock_guard lock(mu_);
    LogLevel t = std::min(terminal_level_, file_ ? file_level_ : LogLevel::off);
    for (auto& tap : taps_) t = std::min(t, tap.level);
    threshold_.store(t, std::memory_order_relaxed);
}

}  // namespace tandem
