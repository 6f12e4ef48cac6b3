// The `&`-joined lists of the prompt applications ("welcome&press&digits/1",
// Playback's "noanswer&skip"), split into their items.
//
// Shared by app_playback and app_read, whose prompt arguments have the same
// form. Header-only: each module compiles its own copy, so neither loads the
// other. Pure text, no state: safe on any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem::apps {

// The items of `s` between `sep`s, spaces around each removed; empty items
// are dropped, so "a& &b&" gives {"a", "b"} and "" gives none.
inline std::vector<std::string> split_list(std::string_view s, char sep) {
    std::vector<std::string> out;
    while (true) {
        const auto p = s.find(sep);
        auto item = s.substr(0, p);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (p == std::string_view::npos) return out;
        s.remove_prefix(p + 1);
    }
}

}  // namespace tandem::apps
