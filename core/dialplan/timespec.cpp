#include "dialplan/timespec.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <vector>

namespace tandem::dialplan {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    for (;;) {
        auto p = s.find(sep);
        out.push_back(trim(s.substr(0, p)));
        if (p == std::string_view::npos) break;
        s.remove_prefix(p + 1);
    }
    return out;
}

// Value of a field item: a number (1-based for mdays) or a name from `names`.
bool item_value(std::string_view item, const char* const* names, int count, int base, int& out) {
    auto l = lower(item);
    if (names)
        for (int i = 0; i < count; ++i)
            if (l == names[i]) {
                out = i;
                return true;
            }
    int n = 0;
    auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), n);
    if (ec != std::errc() || p != l.data() + l.size()) return false;
    n -= base;
    if (n < 0 || n >= count) return false;
    out = n;
    return true;
}

// Fills a bitset from `*`, `a-b` (wrapping), and `a&b&c` lists.
template <std::size_t N>
bool parse_field(std::string_view field, const char* const* names, int base, std::bitset<N>& bits, std::string& error,
                 const char* what) {
    if (field.empty() || field == "*") {
        bits.set();
        return true;
    }
    for (auto part : split(field, '&')) {
        auto dash = part.find('-');
        int a, b;
        if (!item_value(trim(part.substr(0, dash)), names, static_cast<int>(N), base, a)) {
            error = "bad " + std::string(what) + " '" + std::string(part) + "'";
            return false;
        }
        b = a;
        if (dash != std::string_view::npos &&
            !item_value(trim(part.substr(dash + 1)), names, static_cast<int>(N), base, b)) {
            error = "bad " + std::string(what) + " '" + std::string(part) + "'";
            return false;
        }
        for (int i = a;; i = (i + 1) % static_cast<int>(N)) {
            bits.set(static_cast<std::size_t>(i));
            if (i == b) break;
        }
    }
    return true;
}

bool parse_clock(std::string_view s, int& minute) {
    auto colon = s.find(':');
    if (colon == std::string_view::npos) return false;
    int h = 0, m = 0;
    auto hs = s.substr(0, colon), ms = s.substr(colon + 1);
    auto [p1, e1] = std::from_chars(hs.data(), hs.data() + hs.size(), h);
    auto [p2, e2] = std::from_chars(ms.data(), ms.data() + ms.size(), m);
    if (e1 != std::errc() || e2 != std::errc() || p1 != hs.data() + hs.size() || p2 != ms.data() + ms.size())
        return false;
    if (h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m != 0)) return false;
    minute = h * 60 + m;
    return true;
}

constexpr const char* weekday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr const char* month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};

std::mutex tz_mu;  // localtime_r under a temporary TZ is process-wide state

}  // namespace

std::optional<TimeSpec> TimeSpec::parse(std::string_view text, std::string& error) {
    TimeSpec t;
    t.text_ = std::string(text);
    auto f =
        split(text, text.find('|') != std::string_view::npos && text.find(',') == std::string_view::npos ? '|' : ',');
    if (f.size() < 4 || f.size() > 5) {
        error = "time condition needs times,weekdays,mdays,months[,timezone]: '" + std::string(text) + "'";
        return std::nullopt;
    }
    if (f[0].empty() || f[0] == "*") {
        t.minutes_.set();
    } else {
        for (auto part : split(f[0], '&')) {
            auto dash = part.find('-');
            int a, b;
            if (dash == std::string_view::npos || !parse_clock(trim(part.substr(0, dash)), a) ||
                !parse_clock(trim(part.substr(dash + 1)), b)) {
                error = "bad time range '" + std::string(part) + "' (expected hh:mm-hh:mm)";
                return std::nullopt;
            }
            // The end minute is included, as in Asterisk (9:00-17:00 matches 17:00).
            for (int m = a % 1440;; m = (m + 1) % 1440) {
                t.minutes_.set(static_cast<std::size_t>(m));
                if (m == b % 1440) break;
            }
        }
    }
    if (!parse_field(f[1], weekday_names, 0, t.weekdays_, error, "weekday")) return std::nullopt;
    if (!parse_field(f[2], nullptr, 1, t.mdays_, error, "day of month")) return std::nullopt;
    if (!parse_field(f[3], month_names, 1, t.months_, error, "month")) return std::nullopt;
    if (f.size() == 5) t.timezone_ = std::string(f[4]);
    return t;
}

bool TimeSpec::matches(std::chrono::system_clock::time_point when) const {
    std::time_t tt = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    if (timezone_.empty()) {
        localtime_r(&tt, &tm);
    } else {
        std::lock_guard lock(tz_mu);
        const char* old = std::getenv("TZ");
        std::string saved = old ? old : "";
        setenv("TZ", timezone_.c_str(), 1);
        tzset();
        localtime_r(&tt, &tm);
        if (old)
            setenv("TZ", saved.c_str(), 1);
        else
            unsetenv("TZ");
        tzset();
    }
    return minutes_.test(static_cast<std::size_t>(tm.tm_hour * 60 + tm.tm_min)) &&
           weekdays_.test(static_cast<std::size_t>(tm.tm_wday)) &&
           mdays_.test(static_cast<std::size_t>(tm.tm_mday - 1)) && months_.test(static_cast<std::size_t>(tm.tm_mon));
}

}  // namespace tandem::dialplan
