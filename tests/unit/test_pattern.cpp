// Unit tests for tandem::dialplan extension patterns: matching, overlap
// dialing, caller-id matching and Asterisk's extension order.
#include <doctest/doctest.h>

#include "dialplan/pattern.hpp"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

using namespace tandem::dialplan;

namespace {

Pattern compiled(std::string_view ext) {
    std::string error;
    auto p = Pattern::compile(ext, &error);
    INFO("compiling ", std::string(ext), ": ", error);
    REQUIRE(p.has_value());
    return *p;
}

bool match(std::string_view ext, std::string_view number) {
    return compiled(ext).matches(number);
}

MatchMore more(std::string_view ext, std::string_view prefix) {
    return compiled(ext).can_match(prefix);
}

std::string compile_error(std::string_view ext) {
    std::string error;
    const auto p = Pattern::compile(ext, &error);
    CHECK_FALSE(p.has_value());
    return error;
}

// Sorts names the way a context orders its extensions, through compiled patterns.
std::vector<std::string> sorted(std::vector<std::string> names) {
    std::vector<Pattern> patterns;
    for (const auto& n : names) patterns.push_back(compiled(n));
    std::stable_sort(patterns.begin(), patterns.end());
    std::vector<std::string> out;
    for (const auto& p : patterns) out.push_back(p.text());
    return out;
}

}  // namespace

TEST_CASE("pattern: plain extensions match by exact text") {
    CHECK(match("100", "100"));
    CHECK_FALSE(match("100", "1000"));
    CHECK_FALSE(match("100", "10"));
    CHECK_FALSE(match("100", ""));
    CHECK(match("s", "s"));
    CHECK_FALSE(match("s", "S"));
    CHECK(match("", ""));
    CHECK_FALSE(match("", "1"));
    // X, N and . are ordinary characters in a plain name.
    CHECK(match("1X.", "1X."));
    CHECK_FALSE(match("1X.", "12."));
    CHECK_FALSE(compiled("100").is_pattern());
    CHECK(compiled("_100").is_pattern());
    CHECK(compiled("1-800").text() == "1-800");
}

TEST_CASE("pattern: dashes are eye candy in plain names and in dialed numbers") {
    CHECK(match("555-1212", "5551212"));
    CHECK(match("5551212", "555-1212"));
    CHECK(match("555-1212", "5-5-5-1-2-1-2"));
    CHECK_FALSE(match("555-1212", "555-121"));
    CHECK(compiled("555-1212").canonical() == "5551212");
    CHECK(strip_dashes("1-800-555") == "1800555");
    CHECK(strip_dashes("---") == "");
    CHECK(compare_extensions("555-1212", "5551212") == 0);
    CHECK(compiled("555-1212").compare(compiled("5551212")) == 0);
}

TEST_CASE("pattern: X, Z and N digit classes, in either case") {
    CHECK(match("_X", "0"));
    CHECK(match("_X", "9"));
    CHECK_FALSE(match("_X", "a"));
    CHECK_FALSE(match("_X", "*"));
    CHECK(match("_Z", "1"));
    CHECK_FALSE(match("_Z", "0"));
    CHECK(match("_N", "2"));
    CHECK_FALSE(match("_N", "1"));
    CHECK_FALSE(match("_N", "0"));
    CHECK(match("_nxz", "201"));
    CHECK_FALSE(match("_nxz", "200"));
    CHECK(match("_NXXNXXXXXX", "2125551212"));
    CHECK_FALSE(match("_NXXNXXXXXX", "1125551212"));
    CHECK_FALSE(match("_NXXNXXXXXX", "212555121"));
    CHECK_FALSE(match("_NXXNXXXXXX", "21255512120"));
}

TEST_CASE("pattern: other characters are literal and case-sensitive") {
    CHECK(match("_hello", "hello"));
    CHECK_FALSE(match("_hello", "HELLO"));
    CHECK(match("_*XX#", "*12#"));
    CHECK_FALSE(match("_*XX#", "#12*"));
    CHECK(match("_+1X", "+15"));
    CHECK(match("_a]b", "a]b"));  // a stray ']' is literal
}

TEST_CASE("pattern: character sets") {
    CHECK(match("_[1-5a-c#*]", "3"));
    CHECK(match("_[1-5a-c#*]", "b"));
    CHECK(match("_[1-5a-c#*]", "#"));
    CHECK(match("_[1-5a-c#*]", "*"));
    CHECK_FALSE(match("_[1-5a-c#*]", "6"));
    CHECK_FALSE(match("_[1-5a-c#*]", "B"));
    CHECK(match("_9[02]X", "901"));
    CHECK(match("_9[02]X", "921"));
    CHECK_FALSE(match("_9[02]X", "911"));
    // Set contents are literal: letters do not stand for digit classes.
    CHECK(match("_[XN]", "X"));
    CHECK_FALSE(match("_[XN]", "5"));
    // '-' first or last in a set is literal.
    CHECK(match("_[-1]", "1"));
    CHECK(match("_[1-]", "1"));
    CHECK(match("_[12-]", "2"));
    CHECK(match("_[1-1]", "1"));
    CHECK(match("_[11]", "1"));
    CHECK(match("_[[]", "["));
}

TEST_CASE("pattern: dashes outside sets are ignored") {
    CHECK(match("_1-800-NXX", "1800234"));
    CHECK(match("_1-800-NXX", "1-800-234"));
    CHECK_FALSE(match("_1-800-NXX", "1800134"));
    CHECK(compare_extensions("_1-800-NXX", "_1800NXX") == 0);
    CHECK(compiled("_1-800-NXX").compare(compiled("_1800NXX")) == 0);
    CHECK(compiled("_NXX-XXXX").matches("555-1212"));
    CHECK(compiled("_NXX-XXXX").matches("5551212"));
}

TEST_CASE("pattern: '.' matches one or more characters") {
    CHECK(match("_9.", "91"));
    CHECK(match("_9.", "9123456789"));
    CHECK(match("_9.", "9abc*#"));
    CHECK_FALSE(match("_9.", "9"));
    CHECK_FALSE(match("_9.", "8123"));
    CHECK(match("_.", "x"));
    CHECK_FALSE(match("_.", ""));
    // Matching stops at '.': what follows it is never checked.
    CHECK(match("_1.5", "17"));
    CHECK(match("_1.5", "1777"));
}

TEST_CASE("pattern: '!' matches zero or more characters") {
    CHECK(match("_9!", "9"));
    CHECK(match("_9!", "91234"));
    CHECK_FALSE(match("_9!", "8"));
    CHECK(match("_!", ""));
    CHECK(match("_!", "anything"));
    CHECK(match("_1X!", "12"));
    CHECK_FALSE(match("_1X!", "1"));
}

TEST_CASE("pattern: can_match for overlap dialing") {
    CHECK(more("_NXX", "") == MatchMore::more);
    CHECK(more("_NXX", "2") == MatchMore::more);
    CHECK(more("_NXX", "23") == MatchMore::more);
    CHECK(more("_NXX", "234") == MatchMore::full);
    CHECK(more("_NXX", "2345") == MatchMore::none);
    CHECK(more("_NXX", "1") == MatchMore::none);
    CHECK(more("_NXX", "2a") == MatchMore::none);

    CHECK(more("_9.", "9") == MatchMore::more);
    CHECK(more("_9.", "91") == MatchMore::both);
    CHECK(more("_9.", "912345") == MatchMore::both);
    CHECK(more("_9.", "8") == MatchMore::none);

    CHECK(more("_9!", "") == MatchMore::more);
    CHECK(more("_9!", "9") == MatchMore::early);
    CHECK(more("_9!", "9123") == MatchMore::early);
    CHECK(more("_1X!", "1") == MatchMore::more);
    CHECK(more("_1X!", "12") == MatchMore::early);
    CHECK(more("_!", "") == MatchMore::early);

    CHECK(more("100", "") == MatchMore::more);
    CHECK(more("100", "1") == MatchMore::more);
    CHECK(more("100", "10") == MatchMore::more);
    CHECK(more("100", "100") == MatchMore::full);
    CHECK(more("100", "1000") == MatchMore::none);
    CHECK(more("100", "2") == MatchMore::none);
    CHECK(more("1-0-0", "1-0") == MatchMore::more);
    CHECK(more("", "") == MatchMore::full);

    CHECK(is_match(MatchMore::full));
    CHECK(is_match(MatchMore::both));
    CHECK(is_match(MatchMore::early));
    CHECK_FALSE(is_match(MatchMore::more));
    CHECK_FALSE(is_match(MatchMore::none));
    CHECK(wants_more(MatchMore::more));
    CHECK(wants_more(MatchMore::both));
    CHECK_FALSE(wants_more(MatchMore::early));
    CHECK_FALSE(wants_more(MatchMore::full));
    CHECK_FALSE(wants_more(MatchMore::none));
}

TEST_CASE("pattern: matches agrees with can_match") {
    const std::vector<std::string> pats = {"_NXX", "_9.", "_9!", "_1X!", "100", "_[1-3]X", "_X.", "_!", "_"};
    const std::vector<std::string> nums = {"", "1", "9", "91", "100", "234", "2345", "13", "1000"};
    for (const auto& p : pats) {
        const Pattern c = compiled(p);
        for (const auto& n : nums) {
            INFO(p, " vs ", n);
            CHECK(c.matches(n) == is_match(c.can_match(n)));
        }
    }
}

TEST_CASE("pattern: the bare '_' pattern matches only the empty number") {
    CHECK(match("_", ""));
    CHECK_FALSE(match("_", "1"));
    CHECK(more("_", "") == MatchMore::full);
}

TEST_CASE("pattern: a pattern given as the number matches an equivalent pattern") {
    CHECK(match("_X.", "_X."));
    CHECK(match("_X.", "_x."));
    CHECK(match("_X.", "_[0-9]."));
    CHECK_FALSE(match("_X.", "_N."));
    CHECK_FALSE(match("_1X", "_1Z"));
    // Plain names never treat the number as a pattern.
    CHECK(match("_1", "_1"));
    CHECK_FALSE(match("100", "_100"));
}

TEST_CASE("pattern: malformed patterns fail to compile with a reason") {
    CHECK(compile_error("_1[23").find("unterminated '['") != std::string::npos);
    CHECK(compile_error("_1[23").find("_1[23") != std::string::npos);
    CHECK(compile_error("_[").find("unterminated") != std::string::npos);
    CHECK(compile_error("_1[]X").find("empty character set") != std::string::npos);
    CHECK(compile_error("_[5-1]").find("invalid range '5-1'") != std::string::npos);
    CHECK(compile_error("_X[a-Z]").find("invalid range") != std::string::npos);
    CHECK_FALSE(Pattern::compile("_1[23").has_value());  // no error pointer
    // Plain names always compile, whatever they hold.
    CHECK(Pattern::compile("1[23").has_value());
    CHECK(Pattern::compile("[]").has_value());
}

TEST_CASE("pattern: caller id matching") {
    CHECK(caller_matches("", ""));
    CHECK_FALSE(caller_matches("", "1234"));
    CHECK_FALSE(caller_matches("1234", ""));
    CHECK_FALSE(caller_matches("_X.", ""));
    CHECK(caller_matches("1234", "1234"));
    CHECK_FALSE(caller_matches("1234", "12345"));
    CHECK(caller_matches("_1XXX", "1234"));
    CHECK_FALSE(caller_matches("_1XXX", "2234"));
    CHECK_FALSE(caller_matches("_1XXX", "123"));
    CHECK(caller_matches("555-1212", "5551212"));
    CHECK(caller_matches("_NXXNXXXXXX", "2125551212"));
    CHECK_FALSE(caller_matches("_1[2", "12"));  // a broken pattern matches nothing
}

TEST_CASE("pattern: order of the documented examples") {
    CHECK(compare_extensions("_12X", "_1XX") < 0);
    CHECK(compare_extensions("_1XX", "_1X.") < 0);
    CHECK(compare_extensions("_1X.", "_1.") < 0);
    CHECK(compare_extensions("_1.", "_!") < 0);
    CHECK(compare_extensions("_NXX", "_XXX") < 0);
    CHECK(compare_extensions("_[12]X", "_NX") < 0);
    CHECK(compare_extensions("_1XX", "_12X") > 0);
    CHECK(compare_extensions("_!", "_1.") > 0);
    CHECK(sorted({"_!", "_1.", "_1X.", "_1XX", "_12X"}) ==
          std::vector<std::string>{"_12X", "_1XX", "_1X.", "_1.", "_!"});
}

TEST_CASE("pattern: plain names sort before patterns, bytewise among themselves") {
    CHECK(compare_extensions("999", "_1") < 0);
    CHECK(compare_extensions("_1", "999") > 0);
    CHECK(compare_extensions("100", "101") < 0);
    CHECK(compare_extensions("100", "1000") < 0);
    CHECK(compare_extensions("9", "10") > 0);  // text order, not numeric
    CHECK(compare_extensions("100", "100") == 0);
    CHECK(compare_extensions("S", "s") < 0);
    CHECK(compare_extensions("\xC3\xA9", "z") > 0);  // bytes compare unsigned
    CHECK(compare_extensions("", "0") < 0);
}

TEST_CASE("pattern: a position that matches fewer characters sorts first") {
    CHECK(compare_extensions("_1", "_2") < 0);          // single characters by value
    CHECK(compare_extensions("_9", "_[12]") < 0);       // 1 character < 2
    CHECK(compare_extensions("_[12]", "_[0-2]") < 0);   // 2 < 3
    CHECK(compare_extensions("_N", "_Z") < 0);          // 8 < 9
    CHECK(compare_extensions("_Z", "_X") < 0);          // 9 < 10
    CHECK(compare_extensions("_X", "_[0-9a]") < 0);     // 10 < 11
    CHECK(compare_extensions("_[0-1]", "_[1-2]") < 0);  // same size: lower first character
    CHECK(compare_extensions("_[12]", "_[13]") < 0);    // same size and start: lower set
    CHECK(compare_extensions("_[13]", "_[12]") > 0);
    CHECK(compare_extensions("_[a-z]", "_[A-Z]") > 0);
    CHECK(compare_extensions("_X", "_[0-9]") == 0);  // the same set
    CHECK(compare_extensions("_N", "_[2-9]") == 0);
    CHECK(compare_extensions("_Z", "_[987654321]") == 0);
    CHECK(compare_extensions("_x", "_X") == 0);
    CHECK(compare_extensions("_5", "_[5]") == 0);
    CHECK(compare_extensions("_[55]", "_[5]") == 0);
}

TEST_CASE("pattern: wildcards sort after every class, then the end of the pattern") {
    CHECK(compare_extensions("_[0-9a-zA-Z]", "_.") < 0);
    CHECK(compare_extensions("_.", "_!") < 0);
    // The end of a pattern sorts after '.', '!' and every class (pbx.c ext_cmp).
    CHECK(compare_extensions("_12X", "_12") < 0);
    CHECK(compare_extensions("_12.", "_12") < 0);
    CHECK(compare_extensions("_12!", "_12") < 0);
    CHECK(compare_extensions("_12", "_12!") > 0);
    CHECK(sorted({"_12", "_12!", "_12.", "_12X", "_123"}) ==
          std::vector<std::string>{"_123", "_12X", "_12.", "_12!", "_12"});
    // Characters after a wildcard still count for sorting.
    CHECK(compare_extensions("_1.2", "_1.3") < 0);
    CHECK(compare_extensions("_1.2", "_1.") < 0);
}

TEST_CASE("pattern: a context's extensions in Asterisk's order") {
    const std::vector<std::string> context = {
        "_X.",     "_NXXXXXX", "s", "_1NXXNXXXXXX", "_011.",    "911", "h",    "_555XXXX",  "_55512XX",
        "5551212", "i",        "t", "_9!",          "_[2-4]XX", "_0",  "_*XX", "_7[1-3]XX", "_1800NXXXXXX",
    };
    const std::vector<std::string> expected = {
        "5551212",      "911",       "h",   "i", "s", "t",
        "_*XX",   // '*' is a single character, and sorts below the digits
        "_011.",  // a longer pattern sorts before its own prefix
        "_0",
        "_1800NXXXXXX",  // the literal '8' beats N at the second position
        "_1NXXNXXXXXX",
        "_55512XX",  // more specific digits first
        "_555XXXX",     "_7[1-3]XX", "_9!",
        "_[2-4]XX",  // 3 characters beat N (8) and X (10)
        "_NXXXXXX",     "_X.",
    };
    CHECK(sorted(context) == expected);

    // The raw-text comparison gives the same order.
    std::vector<std::string> raw = context;
    std::stable_sort(raw.begin(), raw.end(),
                     [](const std::string& a, const std::string& b) { return compare_extensions(a, b) < 0; });
    CHECK(raw == expected);
}

TEST_CASE("pattern: the first extension in order is the one that matches") {
    // Asterisk tries extensions in sorted order; a dialed 5551212 reaches the
    // plain extension, 5551234 the more specific pattern, 5559999 the general one.
    const std::vector<std::string> order = sorted({"_555XXXX", "_55512XX", "5551212", "_X."});
    const auto first_match = [&](const std::string& number) {
        for (const auto& name : order) {
            if (compiled(name).matches(number)) return name;
        }
        return std::string();
    };
    CHECK(first_match("5551212") == "5551212");
    CHECK(first_match("5551234") == "_55512XX");
    CHECK(first_match("5559999") == "_555XXXX");
    CHECK(first_match("12") == "_X.");
    CHECK(first_match("") == "");
}

TEST_CASE("pattern: malformed patterns still sort, the way Asterisk sorts them") {
    // An unterminated set sorts after everything, even the end of a pattern.
    CHECK(compare_extensions("_1[2", "_1") > 0);
    CHECK(compare_extensions("_1[2", "_1!") > 0);
    // Empty sets are skipped.
    CHECK(compare_extensions("_1[]2", "_12") == 0);
    CHECK(compare_extensions("_[]", "_") == 0);
}

TEST_CASE("pattern: compare is antisymmetric and consistent with compare_extensions") {
    const std::vector<std::string> names = {
        "_X.",  "_NXX", "_[1-3]", "_[13]", "_[12]", "_1", "_!",     "_.", "_", "100",
        "1-00", "_1-2", "_12",    "_1X!",  "_Z",    "_z", "_[a-c]", "_#", "s",
    };
    for (const auto& a : names) {
        for (const auto& b : names) {
            INFO(a, " vs ", b);
            const int ab = compiled(a).compare(compiled(b));
            const int ba = compiled(b).compare(compiled(a));
            CHECK((ab > 0) - (ab < 0) == -((ba > 0) - (ba < 0)));
            CHECK((ab > 0) - (ab < 0) == compare_extensions(a, b));
        }
    }
}

TEST_CASE("pattern: long and odd input is handled") {
    const std::string digits(100000, '5');
    CHECK(match("_" + std::string(100000, 'X'), digits));
    CHECK(match("_X.", digits));
    CHECK(match(digits, digits));
    CHECK_FALSE(match("_XXX", digits));
    CHECK(more("_XXX", digits) == MatchMore::none);
    CHECK(compare_extensions("_" + digits, "_" + digits) == 0);
    CHECK(compile_error("_" + std::string(50000, '[')).find("unterminated") != std::string::npos);

    std::string with_nul = "12";
    with_nul += '\0';
    CHECK_FALSE(match("_XXX", with_nul));
    CHECK(match("_XX.", with_nul));
    CHECK(match("_[\x01-\xff]", "\x80"));
    CHECK_FALSE(match("_[\x01-\x7f]", "\x80"));
}

TEST_CASE("pattern: random names never break matching or ordering") {
    std::mt19937 rng(12345);
    const std::string alphabet = "_XZNxzn0129.![]-#*ab";
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::uniform_int_distribution<int> len(0, 12);
    for (int round = 0; round < 3000; ++round) {
        std::string a;
        std::string b;
        for (int i = len(rng); i > 0; --i) a += alphabet[pick(rng)];
        for (int i = len(rng); i > 0; --i) b += alphabet[pick(rng)];
        const int ab = compare_extensions(a, b);
        CHECK(ab == -compare_extensions(b, a));
        if (const auto p = Pattern::compile(a)) {
            (void)p->matches(b);
            (void)p->can_match(b);
            if (const auto q = Pattern::compile(b)) CHECK(p->compare(*q) == ab);
        }
    }
}
