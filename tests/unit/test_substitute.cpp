// Unit tests for tandem::dialplan substitution (${...}, $[...]) and
// application argument splitting.
#include <doctest/doctest.h>

#include "dialplan/substitute.hpp"

#include <climits>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace tandem::dialplan;

namespace {

// Variables from a map, and a few functions: LEN, CUT, ECHO, CALLERID and
// FAIL (always fails). Records every function call.
class FakeResolver : public Resolver {
public:
    std::map<std::string, std::string, std::less<>> vars;
    std::vector<std::string> calls;
    std::vector<std::string> lookups;

    std::optional<std::string> variable(std::string_view name) override {
        lookups.emplace_back(name);
        const auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    }

    std::optional<std::string> function(std::string_view name, std::string_view args, std::string& error) override {
        calls.push_back(std::string(name) + "(" + std::string(args) + ")");
        if (name == "LEN") return std::to_string(args.size());
        if (name == "ECHO") return std::string(args);
        if (name == "CALLERID") {
            if (args == "num") return std::string("+15551234");
            if (args == "name") return std::string("Alice");
            error = "unknown CALLERID field";
            return std::nullopt;
        }
        if (name == "CUT") {
            const auto parts = split_args(args);
            if (parts.size() != 3 || parts[1].empty()) {
                error = "CUT needs string, delimiter, field";
                return std::nullopt;
            }
            const int field = std::stoi(parts[2]);
            std::string piece;
            int index = 1;
            for (const char c : parts[0] + parts[1][0]) {
                if (c == parts[1][0]) {
                    if (index == field) return piece;
                    ++index;
                    piece.clear();
                } else {
                    piece += c;
                }
            }
            return std::string();
        }
        if (name == "FAIL") {
            error = "boom";
            return std::nullopt;
        }
        if (name == "SILENT") return std::nullopt;
        error = "no such function";
        return std::nullopt;
    }
};

struct Fixture {
    FakeResolver r;
    std::vector<std::string> errors;

    Fixture() {
        r.vars = {
            {"X", "abcdef"},    {"A", "4"},        {"N", "1"},    {"FOO1", "bar"},  {"PTR", "X"},
            {"EXTEN", "91234"}, {"TIMEOUT", "30"}, {"EMPTY", ""}, {"SELF", "SELF"}, {"COLON", "a:b"},
        };
    }

    std::string sub(std::string_view text) {
        errors.clear();
        return substitute(text, r, &errors);
    }

    // Substitutes text that must produce no errors.
    std::string clean(std::string_view text) {
        std::string out = sub(text);
        INFO("text: ", std::string(text));
        CHECK(errors.empty());
        return out;
    }

    bool error_contains(std::string_view needle) const {
        for (const auto& e : errors) {
            if (e.find(needle) != std::string::npos) return true;
        }
        return false;
    }
};

std::string nest(int levels) {
    std::string s = "SELF";
    for (int i = 0; i < levels; ++i) s = "${" + s + "}";
    return s;
}

}  // namespace

TEST_CASE("substitute: text without substitutions is unchanged") {
    Fixture f;
    CHECK(f.clean("") == "");
    CHECK(f.clean("Dial(SIP/100,20)") == "Dial(SIP/100,20)");
    CHECK(f.clean("$") == "$");
    CHECK(f.clean("cost $5 $ $$") == "cost $5 $ $$");
    CHECK(f.clean("a$b") == "a$b");
    CHECK(f.clean("{X} [1+1] ()") == "{X} [1+1] ()");
    CHECK(f.clean("back\\slash\\,kept") == "back\\slash\\,kept");
}

TEST_CASE("substitute: variables") {
    Fixture f;
    CHECK(f.clean("${X}") == "abcdef");
    CHECK(f.clean("<${X}>") == "<abcdef>");
    CHECK(f.clean("${A}${A}") == "44");
    CHECK(f.clean("${UNSET}") == "");
    CHECK(f.clean("a${UNSET}b") == "ab");
    CHECK(f.clean("${EMPTY}") == "");
    CHECK(f.clean("${}") == "");
    CHECK(f.clean("Dial(SIP/${EXTEN:1},${TIMEOUT})") == "Dial(SIP/1234,30)");
    // A backslash does not escape '$'; it stays for the argument splitter.
    CHECK(f.clean("\\${X}") == "\\abcdef");
    // Values are not substituted again.
    f.r.vars["LOOP"] = "${X}";
    CHECK(f.clean("${LOOP}") == "${X}");
}

TEST_CASE("substitute: nested variable names") {
    Fixture f;
    CHECK(f.clean("${${PTR}}") == "abcdef");
    CHECK(f.clean("${FOO${N}}") == "bar");
    CHECK(f.clean("${FOO${UNSET}1}") == "bar");
    CHECK(f.clean("${${PTR}:1:2}") == "bc");
    CHECK(f.clean("${X:${N}}") == "bcdef");
    CHECK(f.clean("${X:$[${N}+1]}") == "cdef");
}

TEST_CASE("substitute: offset and length") {
    Fixture f;
    CHECK(f.clean("${X:0}") == "abcdef");
    CHECK(f.clean("${X:2}") == "cdef");
    CHECK(f.clean("${X:-2}") == "ef");
    CHECK(f.clean("${X:1:3}") == "bcd");
    CHECK(f.clean("${X:-3:2}") == "de");
    CHECK(f.clean("${X:1:-1}") == "bcde");
    CHECK(f.clean("${X:0:-2}") == "abcd");
    CHECK(f.clean("${X:-3:-1}") == "de");
    CHECK(f.clean("${X:10}") == "");
    CHECK(f.clean("${X:6}") == "");
    CHECK(f.clean("${X:-10}") == "abcdef");
    CHECK(f.clean("${X:-10:2}") == "ab");
    CHECK(f.clean("${X:2:-10}") == "");
    CHECK(f.clean("${X:0:0}") == "");
    CHECK(f.clean("${X:0:100}") == "abcdef");
    CHECK(f.clean("${X:+2}") == "cdef");
    CHECK(f.clean("${X: 2}") == "cdef");
    CHECK(f.clean("${X:2:}") == "cdef");
    // Parsed like sscanf("%d:%d"): an unreadable offset leaves the defaults.
    CHECK(f.clean("${X::3}") == "abcdef");
    CHECK(f.clean("${X:a}") == "abcdef");
    CHECK(f.clean("${X:1x:2}") == "bcdef");
    CHECK(f.clean("${X:99999999999999999999}") == "");
    CHECK(f.clean("${X:-99999999999999999999}") == "abcdef");
    CHECK(f.clean("${UNSET:1}") == "");
    // Only the first ':' starts the range; a value holding ':' is untouched.
    CHECK(f.clean("${COLON}") == "a:b");
    CHECK(f.clean("${COLON:1}") == ":b");
}

TEST_CASE("substitute: the substring rule") {
    CHECK(substring("abcdef", 0, INT_MAX) == "abcdef");
    CHECK(substring("abcdef", 2, INT_MAX) == "cdef");
    CHECK(substring("abcdef", -2, INT_MAX) == "ef");
    CHECK(substring("abcdef", 1, -1) == "bcde");
    CHECK(substring("abcdef", 5, -1) == "");
    CHECK(substring("abcdef", 4, -1) == "e");
    CHECK(substring("", 0, 5) == "");
    CHECK(substring("", -1, -1) == "");
    CHECK(substring("abc", 3, 1) == "");
    CHECK(substring("abc", -3, 1) == "a");
}

TEST_CASE("substitute: functions") {
    Fixture f;
    CHECK(f.clean("${LEN(hello)}") == "5");
    CHECK(f.r.calls.back() == "LEN(hello)");
    CHECK(f.clean("${LEN()}") == "0");
    CHECK(f.clean("${CALLERID(num)}") == "+15551234");
    CHECK(f.clean("${CALLERID(num):1}") == "15551234");
    CHECK(f.clean("${CALLERID(num):-4}") == "1234");
    CHECK(f.clean("${CALLERID(name):0:3}") == "Ali");
    CHECK(f.clean("${CUT(a-b-c,-,2)}") == "b");
    CHECK(f.clean("${ECHO(a(b)c)}") == "a(b)c");
    CHECK(f.clean("${ECHO(x:y)}") == "x:y");  // a ':' inside the parentheses is an argument
    CHECK(f.clean("${ECHO(x:y):1}") == ":y");
    CHECK(f.clean("${ECHO({a})}") == "{a}");
    CHECK(f.clean("${ECHO(\"quoted, (\")}") == "\"quoted, (\"");
}

TEST_CASE("substitute: function arguments are substituted first") {
    Fixture f;
    CHECK(f.clean("${LEN(${X})}") == "6");
    CHECK(f.r.calls.back() == "LEN(abcdef)");
    CHECK(f.clean("${LEN(${CUT(x,-,1)})}") == "1");
    CHECK(f.clean("${LEN(${CUT(abc-de,-,2)})}") == "2");
    CHECK(f.r.calls.size() >= 2);
    CHECK(f.r.calls[f.r.calls.size() - 2] == "CUT(abc-de,-,2)");
    CHECK(f.r.calls.back() == "LEN(de)");
    CHECK(f.clean("${ECHO(${X:1:2},$[1+2])}") == "bc,3");
    CHECK(f.clean("${${PTR}:1}") == "bcdef");
    f.r.vars["FN"] = "LEN";
    CHECK(f.clean("${${FN}(abc)}") == "3");
}

TEST_CASE("substitute: failing functions substitute nothing and report") {
    Fixture f;
    CHECK(f.sub("a${FAIL(x)}b") == "ab");
    CHECK(f.error_contains("FAIL"));
    CHECK(f.error_contains("boom"));
    CHECK(f.sub("${SILENT()}") == "");
    CHECK(f.error_contains("SILENT: failed"));
    CHECK(f.sub("${NOPE(1)}") == "");
    CHECK(f.error_contains("no such function"));
    CHECK(f.sub("${CALLERID(bogus)}") == "");
    CHECK(f.errors.size() == 1);
}

TEST_CASE("substitute: malformed function calls still call, like Asterisk") {
    Fixture f;
    CHECK(f.sub("${ECHO(abc}") == "abc");
    CHECK(f.error_contains("missing ')'"));
    CHECK(f.clean("${ECHO(a(b)}") == "a(b");  // unbalanced: up to the last ')'
    CHECK(f.clean("${ECHO(a)b)}") == "a)b");
    CHECK(f.sub("${ECHO(a)junk}") == "a");
    CHECK(f.error_contains("'junk'"));
}

TEST_CASE("substitute: expressions") {
    Fixture f;
    CHECK(f.clean("$[1+1]") == "2");
    CHECK(f.clean("$[${A}+1]") == "5");
    CHECK(f.clean("$[${A}=4]") == "1");
    CHECK(f.clean("$[ ${A} * 2 ]") == "8");
    CHECK(f.clean("n=$[${A}-1];") == "n=3;");
    CHECK(f.clean("$[$[1+1]*3]") == "6");
    CHECK(f.clean("$[]") == "");
    CHECK(f.clean("$[\"${X}\" = \"abcdef\"]") == "1");
    CHECK(f.clean("$[${X} : \"ab(.)\"]") == "c");
    CHECK(f.clean("$[${EXTEN:0:1} = 9 ? outside :: inside]") == "outside");
    f.r.vars["BR"] = "[a]";
    CHECK(f.clean("$[\"${BR}\" = \"[a]\"]") == "1");  // brackets inside balance
    CHECK(f.clean("$[${LEN(${X})} > 5]") == "1");
}

TEST_CASE("substitute: broken expressions substitute their fallback and report") {
    Fixture f;
    CHECK(f.sub("x$[1+]y") == "x0y");
    CHECK(f.error_contains("missing operand"));
    CHECK(f.sub("$[1/0]") == "2147483647");
    CHECK(f.error_contains("division by zero"));
    CHECK(f.sub("$[${UNSET} + 1]") == "0");  // becomes "$[ + 1]", as in Asterisk
    CHECK(f.error_contains("syntax error"));
}

TEST_CASE("substitute: unterminated constructs are copied literally") {
    Fixture f;
    CHECK(f.sub("abc ${FOO") == "abc ${FOO");
    CHECK(f.error_contains("unterminated '${'"));
    CHECK(f.sub("x $[1+1") == "x $[1+1");
    CHECK(f.error_contains("unterminated '$['"));
    CHECK(f.sub("${A} ${B") == "4 ${B");
    CHECK(f.sub("${X ${A}") == "${X ${A}");
    CHECK(f.sub("${") == "${");
    CHECK(f.sub("$[") == "$[");
    CHECK(f.sub("${X}}") == "abcdef}");
    CHECK(f.errors.empty());
    CHECK(f.sub("$[1]]") == "1]");
    CHECK(f.errors.empty());
}

TEST_CASE("substitute: nesting depth is bounded") {
    Fixture f;
    CHECK(f.clean(nest(1)) == "SELF");
    CHECK(f.clean(nest(kMaxSubstituteDepth)) == "SELF");
    f.sub(nest(kMaxSubstituteDepth + 1));
    CHECK(f.error_contains("nested deeper than"));
    f.sub(nest(5000));
    CHECK(f.error_contains("nested deeper than"));
    std::string exprs = "1";
    for (int i = 0; i < 1000; ++i) exprs = "$[" + exprs + "]";
    f.sub(exprs);
    CHECK(f.error_contains("nested deeper than"));
    CHECK(f.sub(std::string(50000, '$') + "{") == std::string(50000, '$') + "{");
    const std::string opens = [] {
        std::string s;
        for (int i = 0; i < 20000; ++i) s += "${";
        return s;
    }();
    CHECK(f.sub(opens) == opens);
    CHECK(f.error_contains("unterminated"));
}

TEST_CASE("substitute: output is capped") {
    Fixture f;
    f.r.vars["BIG"] = std::string(100000, 'x');
    const std::string out = f.sub("a${BIG}b");
    CHECK(out.size() == kMaxSubstituteOutput);
    CHECK(out.front() == 'a');
    CHECK(f.error_contains("truncated"));
    CHECK(f.errors.size() == 1);

    f.r.vars["HALF"] = std::string(40000, 'y');
    CHECK(f.sub("${HALF}${HALF}${HALF}").size() == kMaxSubstituteOutput);
    CHECK(f.errors.size() == 1);
    CHECK(f.sub(std::string(70000, 'z')).size() == kMaxSubstituteOutput);
    // The cap applies inside names too, and stops the whole substitution.
    CHECK(f.sub("<${LEN(${BIG})}>") == "<");
    CHECK(f.error_contains("truncated"));
    CHECK(f.errors.size() == 1);
}

TEST_CASE("substitute: errors may be ignored") {
    FakeResolver r;
    CHECK(substitute("${FAIL()} ${X $[1+]", r) == " ${X $[1+]");
    CHECK(substitute("$[1+]", r) == "0");
}

TEST_CASE("substitute: random input never crashes") {
    Fixture f;
    std::mt19937 rng(777);
    const std::string alphabet = "${}[]()$:-+1aXA\\\", ";
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::uniform_int_distribution<int> len(0, 60);
    for (int round = 0; round < 5000; ++round) {
        std::string text;
        for (int i = len(rng); i > 0; --i) text += alphabet[pick(rng)];
        const std::string out = f.sub(text);
        CHECK(out.size() <= kMaxSubstituteOutput);
        (void)split_args(out);
    }
}

TEST_CASE("substitute: split_args basics") {
    using V = std::vector<std::string>;
    CHECK(split_args("") == V{});
    CHECK(split_args("a") == V{"a"});
    CHECK(split_args("a,b,c") == V{"a", "b", "c"});
    CHECK(split_args("a,,b") == V{"a", "", "b"});
    CHECK(split_args("a,") == V{"a", ""});
    CHECK(split_args(",") == V{"", ""});
    CHECK(split_args(",a") == V{"", "a"});
    CHECK(split_args("SIP/100&SIP/101,20,tT") == V{"SIP/100&SIP/101", "20", "tT"});
}

TEST_CASE("substitute: split_args honours parentheses, brackets and quotes") {
    using V = std::vector<std::string>;
    CHECK(split_args("(a,b),c") == V{"(a,b)", "c"});
    CHECK(split_args("f(g(a,b),c),d") == V{"f(g(a,b),c)", "d"});
    CHECK(split_args("[a,b],c") == V{"[a,b]", "c"});
    CHECK(split_args("a),b") == V{"a)", "b"});
    CHECK(split_args("(a,b") == V{"(a,b"});
    CHECK(split_args("\"a,b\",c") == V{"a,b", "c"});
    CHECK(split_args("ab\"c,d\"e,f") == V{"abc,de", "f"});
    CHECK(split_args("\"\"") == V{""});
    CHECK(split_args("\"a(b\",c") == V{"a(b,c"});  // as in Asterisk, '(' counts even inside quotes
}

TEST_CASE("substitute: split_args backslash escapes") {
    using V = std::vector<std::string>;
    CHECK(split_args("a\\,b,c") == V{"a,b", "c"});
    CHECK(split_args("a\\\\,b") == V{"a\\", "b"});
    CHECK(split_args("\\\"a,b") == V{"\"a", "b"});
    CHECK(split_args("a\\(,b") == V{"a(", "b"});
    CHECK(split_args("a\\") == V{"a"});
    CHECK(split_args("\\") == V{""});
}

TEST_CASE("substitute: split_args skips only leading blanks") {
    using V = std::vector<std::string>;
    CHECK(split_args(" a, b") == V{"a", "b"});
    CHECK(split_args("a ,b ") == V{"a ", "b "});
    CHECK(split_args("\t a b ,\tc") == V{"a b ", "c"});
    CHECK(split_args("\" a\", \" b\"") == V{" a", " b"});
    CHECK(split_args("a, ") == V{"a", ""});
    CHECK(split_args(" ") == V{""});
}

TEST_CASE("substitute: split_args with other separators") {
    using V = std::vector<std::string>;
    CHECK(split_args("a|b|c", '|') == V{"a", "b", "c"});
    CHECK(split_args("a,b|c", '|') == V{"a,b", "c"});
    CHECK(split_args("a=b=c", '=') == V{"a", "b", "c"});
    CHECK(split_args("a  b", ' ') == V{"a", "", "b"});
    CHECK(split_args("a\"b\"c", '"') == V{"a", "b", "c"});
}
