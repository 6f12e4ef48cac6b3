// The core's LogSink: terminal/file output through spdlog, plus console taps.
#pragma once

#include <tandem/log.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace spdlog {
class logger;
}

namespace tandem {

class CoreLog final : public LogSink {
public:
    // `terminal_level` applies to stderr; `off` disables it.
    explicit CoreLog(LogLevel terminal_level);
    ~CoreLog() override;

    void write(LogLevel level, std::string_view source, std::string_view message) override;
    LogLevel threshold() const override { return threshold_.load(std::memory_order_relaxed); }

    // Adds a log file (appended). Returns false with `error` when it cannot be opened.
    bool open_file(const std::string& path, LogLevel level, std::string& error);
    void set_terminal_level(LogLevel level);
    LogLevel terminal_level() const;

    // A tap receives formatted lines at or above its level (attached consoles).
    using Tap = std::function<void(const std::string& line)>;
    int add_tap(LogLevel level, Tap tap);
    void set_tap_level(int id, LogLevel level);
    void remove_tap(int id);

    static std::string format_line(LogLevel level, std::string_view source, std::string_view message);

private:
    void recompute();
    struct TapEntry {
        int id;
        LogLevel level;
        std::shared_ptr<Tap> tap;
    };
    mutable std::mutex mu_;
    std::shared_ptr<spdlog::logger> terminal_, file_;
    LogLevel terminal_level_, file_level_ = LogLevel::off;
    std::vector<TapEntry> taps_;
    int next_tap_ = 0;
    std::atomic<LogLevel> threshold_{LogLevel::info};
};

}  // namespace tandem
