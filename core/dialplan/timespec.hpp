// Time conditions: `times,weekdays,mdays,months[,timezone]` as in Asterisk's
// GotoIfTime() and time-limited includes (`include => ctx,9:00-17:00,mon-fri,*,*`).
#pragma once

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::dialplan {

class TimeSpec {
public:
    // Parses the four or five comma-separated fields; nullopt and `error` when malformed.
    static std::optional<TimeSpec> parse(std::string_view text, std::string& error);
    bool matches(std::chrono::system_clock::time_point when) const;
    const std::string& text() const { return text_; }

private:
    std::bitset<24 * 60> minutes_;  // minute of the day
    std::bitset<7> weekdays_;       // 0 = Sunday
    std::bitset<31> mdays_;         // 0 = 1st
    std::bitset<12> months_;        // 0 = January
    std::string timezone_;
    std::string text_;
};

}  // namespace tandem::dialplan
