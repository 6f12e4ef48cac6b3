// Extension names and patterns as extensions.conf writes them: matching a
// dialed number, partial matching for overlap dialing, and the order in
// which a context tries its extensions (Asterisk's pbx.c rules).
//
// Syntax. A name that starts with '_' is a pattern; anything else is a plain
// extension. Inside a pattern:
//   X x   any digit 0-9          Z z   1-9          N n   2-9
//   [..]  one character from a set: single characters and ranges, "[1-5a-c#*]".
//         Everything inside is literal; a '-' first or last is literal.
//   .     one or more characters of any kind
//   !     zero or more characters of any kind; the match is final ("early match")
//   -     outside a set: ignored eye candy, so "_1-800-NXX" is "_1800NXX"
//   other characters match themselves, case-sensitively.
// Matching stops at '.' or '!': anything written after them only affects sorting.
//
// Dashes. Asterisk also treats '-' as eye candy in plain extension names and
// in the dialed number: "555-1212" matches a dialed "5551212" and the other
// way round, and sorts as the same extension. `strip_dashes` gives the key an
// exact-name index should use.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::dialplan {

// How a possibly incomplete number relates to an extension.
enum class MatchMore : std::uint8_t {
    none,   // no match, whatever is dialed next
    full,   // matches as it stands, and no longer number can match
    more,   // no match yet, but more digits could make one
    both,   // matches as it stands, and longer numbers match too (trailing '.')
    early,  // matches through a '!': counts as a match, and Asterisk treats it as a
            // final "no" to "wait for more digits?" for the whole context
};

// True when the number matches now (full, both or early).
constexpr bool is_match(MatchMore m) noexcept {
    return m == MatchMore::full || m == MatchMore::both || m == MatchMore::early;
}
// True when dialing more digits could still produce a match (more or both).
constexpr bool wants_more(MatchMore m) noexcept {
    return m == MatchMore::more || m == MatchMore::both;
}

class Pattern {
public:
    // Compiles an extension name. Plain names always compile. A pattern fails
    // on an unterminated '[', an empty set "[]" or a reversed range "[5-1]",
    // with a message in `*error` when `error` is given.
    static std::optional<Pattern> compile(std::string_view ext, std::string* error = nullptr);

    // Does the complete number match? A number that is itself a pattern
    // ("_X.") matches a pattern that sorts identically, as in Asterisk.
    bool matches(std::string_view number) const;

    // Overlap dialing: how the digits dialed so far relate to this extension.
    MatchMore can_match(std::string_view prefix) const;

    bool is_pattern() const noexcept { return pattern_; }
    // The name exactly as written.
    const std::string& text() const noexcept { return text_; }
    // Plain names: the name without dashes. Patterns: the text as written.
    const std::string& canonical() const noexcept { return canonical_; }

    // Asterisk's context order (pbx.c ext_cmp): <0, 0 or >0. Plain names come
    // before patterns and compare bytewise, ignoring dashes. Patterns compare
    // position by position; a position that can match fewer characters comes
    // first, ties broken by the lowest character; then '.', then '!', then the
    // end of the pattern ("_12X" < "_12." < "_12!" < "_12"). Zero means Asterisk
    // would treat the two as the same extension. Uses the compiled form only.
    int compare(const Pattern& other) const noexcept;
    friend bool operator<(const Pattern& a, const Pattern& b) noexcept { return a.compare(b) < 0; }

    // One position of a compiled pattern. `weight` orders positions (fewer
    // matching characters first); `set` holds the characters it matches, bit c
    // of word c/64 for character c. '.' and '!' have an empty set.
    struct Element {
        std::uint32_t weight = 0;
        std::array<std::uint64_t, 4> set{};
    };

private:
    Pattern() = default;

    std::string text_;
    std::string canonical_;
    bool pattern_ = false;
    std::vector<Element> elements_;  // patterns only
};

// Asterisk's ordering of two extension names, as Pattern::compare, on raw
// text (malformed patterns sort the way Asterisk sorts them). Returns -1, 0, 1.
int compare_extensions(std::string_view a, std::string_view b);

// The caller-id half of "exten => 100/_1XXX,...": `cid_pattern` is a plain
// number or a '_' pattern. An empty caller id matches only an empty pattern.
bool caller_matches(std::string_view cid_pattern, std::string_view callerid);

// `number` without '-' characters: the key under which a plain extension is
// found, whichever way its name or the dialed number was written.
std::string strip_dashes(std::string_view number);

}  // namespace tandem::dialplan
