// Small text helpers shared by chan_sip's parsers (SIP tokens, digest
// parameters, SDP and sip.conf values are ASCII and compared without case).
#pragma once

#include <algorithm>
#include <string_view>

namespace tandem::sip {

inline char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() &&
           std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

}  // namespace tandem::sip
