// Unit tests for tandem::dialplan::evaluate, the $[ ... ] expression language.
#include <doctest/doctest.h>

#include "dialplan/expr.hpp"

#include <random>
#include <string>

using namespace tandem::dialplan;

namespace {

// The value of an expression that must evaluate without error.
std::string eval(std::string_view text) {
    const ExprResult r = evaluate(text);
    INFO("expression: ", std::string(text), " error: ", r.error);
    CHECK(r.ok());
    return r.value;
}

// The error of an expression that must fail.
std::string fails(std::string_view text) {
    const ExprResult r = evaluate(text);
    INFO("expression: ", std::string(text), " value: ", r.value);
    CHECK_FALSE(r.ok());
    return r.error;
}

bool contains(const std::string& haystack, std::string_view needle) {
    return haystack.find(needle) != std::string::npos;
}

}  // namespace

TEST_CASE("expr: empty and blank expressions give an empty string") {
    CHECK(eval("") == "");
    CHECK(eval("   ") == "");
    CHECK(eval(" \t\r\n ") == "");
    CHECK(evaluate("").ok());
}

TEST_CASE("expr: single operands come back as written") {
    CHECK(eval("5") == "5");
    CHECK(eval("05") == "05");
    CHECK(eval("1.50") == "1.50");
    CHECK(eval("abc") == "abc");
    CHECK(eval("  abc  ") == "abc");
    CHECK(eval("SIP") == "SIP");
    CHECK(eval("a.b_c#d@e^f;g'h\\i") == "a.b_c#d@e^f;g'h\\i");
    CHECK(eval("$x") == "$x");  // '$' not followed by '{' is part of a word
    CHECK(eval("\xC3\xA9t\xC3\xA9") == "\xC3\xA9t\xC3\xA9");
}

TEST_CASE("expr: double-quoted strings hold spaces and operators, quotes removed") {
    CHECK(eval("\"hello world\"") == "hello world");
    CHECK(eval("\"a+b*c\"") == "a+b*c");
    CHECK(eval("\"(1\"") == "(1");
    CHECK(eval("\"\"") == "");
    CHECK(eval("\"5\"") == "5");
}

TEST_CASE("expr: integer arithmetic and precedence") {
    CHECK(eval("1+1") == "2");
    CHECK(eval("1 + 1") == "2");
    CHECK(eval("4+1") == "5");  // what $[${X}+1] becomes with X=4
    CHECK(eval("10-2*3") == "4");
    CHECK(eval("(10-2)*3") == "24");
    CHECK(eval("2*3+4*5") == "26");
    CHECK(eval("10-3-2") == "5");  // left-associative
    CHECK(eval("100/10/5") == "2");
    CHECK(eval("7%3") == "1");
    CHECK(eval("-7%3") == "-1");
    CHECK(eval("7 % -3") == "1");
    CHECK(eval("10/4*4") == "10");
    CHECK(eval("0-5") == "-5");
    CHECK(eval("1000000*1000000") == "1000000000000");
    CHECK(eval("05+0") == "5");
}

TEST_CASE("expr: unary minus and not bind tighter than binary operators") {
    CHECK(eval("-5") == "-5");
    CHECK(eval("- 5") == "-5");
    CHECK(eval("--5") == "5");
    CHECK(eval("-5+2") == "-3");
    CHECK(eval("5--5") == "10");
    CHECK(eval("3*-2") == "-6");
    CHECK(eval("5 -3") == "2");
    CHECK(eval("-(2+3)") == "-5");
    CHECK(eval("!0") == "1");
    CHECK(eval("!1") == "0");
    CHECK(eval("!5") == "0");
    CHECK(eval("!!5") == "1");
    CHECK(eval("!0+1") == "2");
    CHECK(eval("!(1=1)") == "0");
    CHECK(eval("!\"\"") == "1");
}

TEST_CASE("expr: '!' on strings follows Asterisk (their leading integer)") {
    CHECK(eval("!abc") == "1");
    CHECK(eval("!5abc") == "0");
    CHECK(eval("!0.5") == "1");    // a literal: atoi("0.5") is 0
    CHECK(eval("!(1/2)") == "0");  // a computed number: 0.5 is true
    CHECK(eval("!\"0\"") == "1");
    CHECK(eval("!\" 7\"") == "0");
}

TEST_CASE("expr: decimals print with at most six places") {
    CHECK(eval("1/3") == "0.333333");
    CHECK(eval("2/3") == "0.666667");
    CHECK(eval("-1/3") == "-0.333333");
    CHECK(eval("7/2") == "3.5");
    CHECK(eval("10/4") == "2.5");
    CHECK(eval("1/8") == "0.125");
    CHECK(eval("1/1000000") == "0.000001");
    CHECK(eval("1/10000000") == "0");
    CHECK(eval("-1/10000000") == "0");
    CHECK(eval("1.5+1.5") == "3");
    CHECK(eval("0.1+0.2") == "0.3");
    CHECK(eval("1.25*2") == "2.5");
    CHECK(eval("7.5%2") == "1.5");
    CHECK(eval("3/2*2") == "3");
    CHECK(eval("100000000000*100000000000") == "1e+22");
}

TEST_CASE("expr: comparisons are numeric between numbers, else bytewise") {
    CHECK(eval("1=1") == "1");
    CHECK(eval("1==1") == "1");
    CHECK(eval("1=2") == "0");
    CHECK(eval("5=5") == "1");  // $[${A}=5] with A=5
    CHECK(eval("1.50 = 1.5") == "1");
    CHECK(eval("007 = 7") == "1");
    CHECK(eval("1 != 2") == "1");
    CHECK(eval("10 < 9") == "0");
    CHECK(eval("9 < 10") == "1");
    CHECK(eval("10 > 9") == "1");
    CHECK(eval("10 <= 10") == "1");
    CHECK(eval("10 >= 11") == "0");
    CHECK(eval("10 < 9a") == "1");  // "9a" is a string: bytewise "10" < "9a"
    CHECK(eval("abc = abc") == "1");
    CHECK(eval("\"abc\" = \"abc\"") == "1");
    CHECK(eval("\"abc\" = abc") == "1");
    CHECK(eval("abc = abd") == "0");
    CHECK(eval("abc != abd") == "1");
    CHECK(eval("abc < abd") == "1");
    CHECK(eval("b > a") == "1");
    CHECK(eval("a >= a") == "1");
    CHECK(eval("a <= b") == "1");
    CHECK(eval("ABC < abc") == "1");
    CHECK(eval("\"10\" < \"9\"") == "1");  // quoted operands are strings
    CHECK(eval("\"\" = \"\"") == "1");
    CHECK(eval("(1+1) = 2") == "1");
    CHECK(eval("(1+1) = 2x") == "0");
    CHECK(eval("1 < 2 < 3") == "1");  // (1 < 2) < 3
    CHECK(eval("3 > 2 > 1") == "0");  // (3 > 2) > 1
    CHECK(eval("1+1=2") == "1");      // arithmetic binds tighter
}

TEST_CASE("expr: '|' and '&'") {
    CHECK(eval("1 | 0") == "1");
    CHECK(eval("0 | 5") == "5");
    CHECK(eval("0 | 0") == "0");
    CHECK(eval("\"\" | x") == "x");
    CHECK(eval("abc | def") == "abc");
    CHECK(eval("\"0\" | y") == "y");
    CHECK(eval("0.0 | y") == "y");
    CHECK(eval("1 || 0") == "1");
    CHECK(eval("1 & 2") == "1");
    CHECK(eval("1 & 0") == "0");
    CHECK(eval("0 & 1") == "0");
    CHECK(eval("abc & def") == "abc");
    CHECK(eval("\"\" & def") == "0");
    CHECK(eval("1 && 1") == "1");
    CHECK(eval("1 = 1 & 2 = 2") == "1");
    CHECK(eval("0 | 1 & 0") == "0");  // & binds tighter than |
    CHECK(eval("1 | 0 & 0") == "1");
}

TEST_CASE("expr: conditional a ? b :: c") {
    CHECK(eval("1 ? yes :: no") == "yes");
    CHECK(eval("0 ? yes :: no") == "no");
    CHECK(eval("\"\" ? yes :: no") == "no");
    CHECK(eval("abc ? yes :: no") == "yes");
    CHECK(eval("\"0\" ? yes :: no") == "no");
    CHECK(eval("5 = 5 ? five :: other") == "five");
    CHECK(eval("2 > 3 ? 1+1 :: 2*5") == "10");
    CHECK(eval("1 ? \"a b\" :: c") == "a b");
    CHECK(eval("1?a::b") == "a");
    // Nested in the middle, and left-associative like Asterisk's grammar.
    CHECK(eval("1 ? 0 ? a :: b :: c") == "b");
    CHECK(eval("1 ? 0 :: 1 ? b :: c") == "c");  // (1 ? 0 :: 1) ? b :: c
    CHECK(eval("(1 ? 0 :: 1) ? b :: c") == "c");
    CHECK(eval("1 ? 0 :: (1 ? b :: c)") == "0");
}

TEST_CASE("expr: branches that are not taken are not evaluated") {
    CHECK(eval("1 ? ok :: 1/0") == "ok");
    CHECK(eval("0 ? 1/0 :: ok") == "ok");
    CHECK(eval("1 | 1/0") == "1");
    CHECK(eval("0 & 1/0") == "0");
    CHECK(eval("0 ? (x : \"(\") :: ok") == "ok");
    CHECK_FALSE(evaluate("0 | 1/0").ok());
    CHECK_FALSE(evaluate("1 & 1/0").ok());
}

TEST_CASE("expr: ':' is an anchored regular expression match") {
    CHECK(eval("abcdef : abc") == "3");
    CHECK(eval("abcdef : bcd") == "0");
    CHECK(eval("abcdef : \"a.*\"") == "6");
    CHECK(eval("abcdef : \"a(bc)\"") == "bc");
    CHECK(eval("abcdef : \"(bcd)\"") == "");
    CHECK(eval("abcdef : (bcd)") == "0");  // unquoted, the parentheses group the expression
    CHECK(eval("12345 : \"([0-9]{3})\"") == "123");
    CHECK(eval("5551212 : 555") == "3");
    CHECK(eval("\"hello world\" : \"hello w\"") == "7");
    CHECK(eval("\"hello world\" : \"hello (.*)\"") == "world");
    CHECK(eval("abc : \"x(y)?abc\"") == "");  // no match, and the pattern has a group
    CHECK(eval("abc : \"(y)?abc\"") == "3");  // the group took no part: the length
    CHECK(eval("\"\" : \"\"") == "0");
    CHECK(eval("(123abc : \"([0-9]+)\") + 1") == "124");  // a numeric capture is a number
}

TEST_CASE("expr: '=~' is an unanchored match and '~~' concatenates") {
    CHECK(eval("abcdef =~ bcd") == "3");
    CHECK(eval("abcdef =~ \"c(d)e\"") == "d");
    CHECK(eval("abc =~ x") == "0");
    CHECK(eval("abc =~ \"(x)\"") == "");
    CHECK(eval("\"SIP/100-0001\" =~ \"SIP/([0-9]+)\"") == "100");
    CHECK(eval("abc =~ b") == "1");
    CHECK(eval("a ~~ b") == "ab");
    CHECK(eval("\"a \" ~~ \"b\"") == "a b");
    CHECK(eval("(1 ~~ 2) + 1") == "13");
    CHECK(eval("1+2 ~~ 3") == "24");  // ~~ binds tighter than +
}

TEST_CASE("expr: regex operators bind tighter than unary ones") {
    CHECK(eval("!abc : b") == "1");  // !(abc : b) = !0
    CHECK(eval("-1 : 1") == "-1");   // -(1 : 1)
    CHECK(eval("(-1) : 1") == "0");
    CHECK(eval("abc : a : 1") == "1");  // (abc : a) : 1
    CHECK(eval("2 * abc : ab") == "4");
}

TEST_CASE("expr: regex errors and limits") {
    CHECK(contains(fails("abc : \"(b\""), "invalid regular expression"));
    CHECK(evaluate("abc : \"(b\"").value == "");
    CHECK(contains(fails("aa =~ \"(a)\\1\""), "back-references"));
    CHECK(eval("\"a\\1\" =~ \"a\\\\1\"") == "3");  // an escaped backslash is not one
    CHECK(contains(fails("a =~ \"(a{1,100}){1,100}\""), "too complex"));
    CHECK(contains(fails("a =~ \"a{1,30000}\""), "too complex"));
    CHECK(contains(fails("a =~ \"" + std::string(40, '(') + "a" + std::string(40, ')') + "\""), "nested too deeply"));
    CHECK(eval("a =~ \"a{1,100}\"") == "1");
    CHECK(eval("a =~ \"[[:alpha:]]\"") == "1");
    CHECK(eval("\"x]\" =~ \"[]x]+\"") == "2");
    const std::string big(kMaxRegexSubject + 1, 'a');
    CHECK(contains(fails(big + " : a"), "longer than"));
    CHECK(eval(std::string(kMaxRegexSubject, 'a') + " =~ \"(.*)(.*)(.*)x\"") == "");
}

TEST_CASE("expr: '-' between words is an operator") {
    const ExprResult r = evaluate("abc-def");
    CHECK_FALSE(r.ok());
    CHECK(contains(r.error, "non-numeric"));
    CHECK(r.value == "0");
    CHECK(eval("5-3") == "2");
    CHECK(eval("\"abc-def\"") == "abc-def");
}

TEST_CASE("expr: non-numeric arithmetic reports an error and gives Asterisk's value") {
    const auto check = [](std::string_view text, std::string_view value) {
        const ExprResult r = evaluate(text);
        INFO(std::string(text));
        CHECK(r.value == value);
        CHECK(contains(r.error, "non-numeric"));
    };
    check("abc + 1", "1");
    check("1 + abc", "1");
    check("abc + def", "0");
    check("abc - 1", "-1");
    check("1 - abc", "1");
    check("abc * 2", "0");
    check("abc / 2", "0");
    check("2 / abc", "2147483647");
    check("abc % 2", "0");
    check("-abc", "0");
    check("\"5\" + 1", "1");  // quoted operands are never numbers
}

TEST_CASE("expr: division by zero is an error, not a crash") {
    const ExprResult div = evaluate("1/0");
    CHECK_FALSE(div.ok());
    CHECK(contains(div.error, "division by zero"));
    CHECK(div.value == "2147483647");
    const ExprResult mod = evaluate("5%0");
    CHECK(contains(mod.error, "division by zero"));
    CHECK(mod.value == "0");
    CHECK(contains(fails("1/0.0"), "division by zero"));
    CHECK(contains(fails("(1/0)+1"), "division by zero"));
}

TEST_CASE("expr: syntax errors give \"0\" and a description") {
    const auto syntax = [](std::string_view text) {
        const ExprResult r = evaluate(text);
        INFO(std::string(text), " -> ", r.error);
        CHECK_FALSE(r.ok());
        CHECK(r.value == "0");
        CHECK(contains(r.error, "syntax error"));
        return r.error;
    };
    CHECK(contains(syntax("1 +"), "missing operand"));
    CHECK(contains(syntax("+ 1"), "unexpected '+'"));
    CHECK(contains(syntax("1 + * 2"), "unexpected '*'"));
    CHECK(contains(syntax("(1"), "missing ')'"));
    CHECK(contains(syntax("((1+2)"), "missing ')'"));
    CHECK(contains(syntax("1)"), "unbalanced ')'"));
    CHECK(contains(syntax("(1))"), "unbalanced ')'"));
    CHECK(contains(syntax("()"), "unexpected ')'"));
    CHECK(contains(syntax(")"), "unexpected ')'"));
    CHECK(contains(syntax("1 2"), "unexpected '2'"));
    CHECK(contains(syntax("hello world"), "unexpected 'world'"));
    CHECK(contains(syntax("\"abc"), "unterminated string"));
    CHECK(contains(syntax("1 ? 2"), "missing '::'"));
    CHECK(contains(syntax("1 ? 2 : 3"), "missing '::'"));
    CHECK(contains(syntax("1 :: 2"), "unexpected '::'"));
    CHECK(contains(syntax("a{b}"), "unexpected '{'"));
    CHECK(contains(syntax("a ~ b"), "unexpected '~'"));
    CHECK(contains(syntax("1,2"), "unexpected ','"));
    CHECK(contains(syntax("${FOO}"), "unexpected '${'"));
    CHECK(contains(syntax("a $"), "unexpected '$'"));
    CHECK(contains(syntax("ABS(-5)"), "function calls are not supported"));
    CHECK(contains(syntax("!"), "missing operand"));
    CHECK(contains(syntax("-"), "missing operand"));
    CHECK(contains(syntax(std::string("1 \x01 2")), "byte 0x01"));
    CHECK(contains(syntax("1 +"), "syntax error"));
}

TEST_CASE("expr: nesting depth is bounded") {
    const auto nested = [](int n) { return std::string(n, '(') + "1" + std::string(n, ')'); };
    CHECK(eval(nested(50)) == "1");
    CHECK(contains(fails(nested(200)), "nested too deeply"));
    CHECK(contains(fails(nested(100000)), "nested too deeply"));
    CHECK(contains(fails(std::string(100000, '(')), "nested too deeply"));
    CHECK(contains(fails(std::string(100000, '!') + "1"), "nested too deeply"));
    CHECK(contains(fails(std::string(100000, '-') + "1"), "nested too deeply"));
    std::string ternaries;
    for (int i = 0; i < 500; ++i) ternaries += "1 ? ";
    ternaries += "x";
    for (int i = 0; i < 500; ++i) ternaries += " :: y";
    CHECK(contains(fails(ternaries), "nested too deeply"));
    CHECK(eval(std::string(40, '!') + "1") == "1");
}

TEST_CASE("expr: long flat expressions are fine") {
    std::string sum = "1";
    for (int i = 0; i < 20000; ++i) sum += "+1";
    CHECK(eval(sum) == "20001");
    std::string chain = "a";
    for (int i = 0; i < 5000; ++i) chain += " ~~ b";
    CHECK(eval(chain).size() == 5001);
    const std::string huge_number(5000, '9');
    CHECK(eval(huge_number) == huge_number);
    CHECK(contains(fails(huge_number + " + 1"), "non-numeric"));
}

TEST_CASE("expr: random input never crashes") {
    std::mt19937 rng(4242);
    const std::string alphabet = "01 9a\"()?:|&=!<>+-*/%~,.x${}[]\\";
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::uniform_int_distribution<int> len(0, 40);
    for (int round = 0; round < 5000; ++round) {
        std::string text;
        for (int i = len(rng); i > 0; --i) text += alphabet[pick(rng)];
        const ExprResult r = evaluate(text);
        if (!r.ok()) CHECK_FALSE(r.error.empty());
    }
}
