// $[ ... ] expression evaluation; see expr.hpp.
//
// A recursive-descent parser that evaluates while it parses. Branches that
// cannot affect the result (the untaken side of ?::, the right side of a
// decided | or &) are parsed for syntax but not evaluated, so they report no
// errors. Values keep Asterisk's three kinds: numbers computed by operators,
// words that look like decimal numbers, and strings.
#include "dialplan/expr.hpp"

#include <regex.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace tandem::dialplan {

namespace {

// ---- values -----------------------------------------------------------------

enum class Kind { number, numeric, string };

struct Value {
    Kind kind = Kind::string;
    long double num = 0;
    std::string str;  // numeric and string kinds
};

Value make_number(long double v) {
    Value x;
    x.kind = Kind::number;
    x.num = v;
    return x;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// A computed string (regex capture, concatenation) counts as a number when
// it consists of digits and dots and starts with either.
Value make_result_string(std::string s) {
    Value x;
    x.kind = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_digit(c) || c == '.'; })
                 ? Kind::numeric
                 : Kind::string;
    x.str = std::move(s);
    return x;
}

// [0-9]+(\.[0-9]+)?
bool is_decimal(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == 0) return false;
    if (i == s.size()) return true;
    if (s[i] != '.') return false;
    const std::size_t frac = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    return i > frac && i == s.size();
}

// Reads the leading number of a digits-and-dots string. Like strtold, text
// without digits reads as 0; out-of-range values are not numbers.
std::optional<long double> parse_number(std::string_view s) {
    long double v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    (void)ptr;
    if (ec == std::errc::result_out_of_range) return std::nullopt;
    if (ec != std::errc{}) return 0.0L;
    return v;
}

std::optional<long double> to_number(const Value& v) {
    switch (v.kind) {
        case Kind::number:
            return v.num;
        case Kind::numeric:
            return parse_number(v.str);
        case Kind::string:
            break;
    }
    return std::nullopt;
}

std::string format_number(long double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
    if (v == 0) return "0";
    char buf[128];
    if (std::fabs(v) < 1e18L) {
        if (v == std::trunc(v)) return std::to_string(static_cast<long long>(v));
        const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 6);
        std::string s(buf, r.ptr);
        while (!s.empty() && s.back() == '0') s.pop_back();
        if (!s.empty() && s.back() == '.') s.pop_back();
        if (s == "-0" || s.empty()) return "0";
        return s;
    }
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 18);
    return std::string(buf, r.ptr);
}

std::string to_text(const Value& v) {
    return v.kind == Kind::number ? format_number(v.num) : v.str;
}

// False-ness for |, & and ?::: empty, zero, or the string "0".
bool is_null(const Value& v) {
    switch (v.kind) {
        case Kind::number:
            return v.num == 0;
        case Kind::numeric: {
            if (v.str.empty()) return true;
            const auto n = parse_number(v.str);
            return n && *n == 0;
        }
        case Kind::string:
            break;
    }
    return v.str.empty() || v.str == "0";
}

// Whether C's atoi would return non-zero (leading blanks, sign, digits).
bool atoi_nonzero(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    for (; i < s.size() && is_digit(s[i]); ++i) {
        if (s[i] != '0') return true;
    }
    return false;
}

// ---- tokens -----------------------------------------------------------------

enum class Op {
    none,
    or_,
    and_,
    eq,
    ne,
    lt,
    gt,
    le,
    ge,
    plus,
    minus,
    mul,
    div,
    mod,
    cond,
    colon_colon,
    colon,
    eq_tilde,
    tilde_tilde,
    not_,
    lparen,
    rparen,
    comma,
};

enum class TokType { operand, op, end };

struct Token {
    TokType type = TokType::end;
    Op op = Op::none;
    std::string text;  // operator spelling or operand value (quotes removed)
    bool quoted = false;
    bool numeric = false;
    std::size_t column = 0;  // 1-based
};

struct SyntaxError {
    std::string message;
};

std::string at_column(std::size_t column) {
    return " at column " + std::to_string(column);
}

bool is_word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(static_cast<char>(c)) || c == '.' ||
           c == '\'' || c == ';' || c == '\\' || c == '_' || c == '^' || c == '#' || c == '@' || c >= 0x80;
}

std::string describe_char(unsigned char c) {
    if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
    static const char* const hex = "0123456789abcdef";
    return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
}

struct OpSpelling {
    std::string_view text;
    Op op;
};

// Two-character operators first: the longest spelling wins.
constexpr OpSpelling kOperators[] = {
    {"||", Op::or_},  {"&&", Op::and_}, {"==", Op::eq},    {"=~", Op::eq_tilde},    {"~~", Op::tilde_tilde},
    {">=", Op::ge},   {"<=", Op::le},   {"!=", Op::ne},    {"::", Op::colon_colon}, {"|", Op::or_},
    {"&", Op::and_},  {"=", Op::eq},    {">", Op::gt},     {"<", Op::lt},           {"+", Op::plus},
    {"-", Op::minus}, {"*", Op::mul},   {"/", Op::div},    {"%", Op::mod},          {"?", Op::cond},
    {"!", Op::not_},  {":", Op::colon}, {"(", Op::lparen}, {")", Op::rparen},       {",", Op::comma},
};

std::vector<Token> tokenize(std::string_view s) {
    std::vector<Token> out;
    std::size_t i = 0;
    const std::size_t n = s.size();
    while (i < n) {
        const char c = s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            ++i;
            continue;
        }
        Token t;
        t.column = i + 1;
        bool matched = false;
        for (const auto& o : kOperators) {
            if (s.substr(i, o.text.size()) == o.text) {
                t.type = TokType::op;
                t.op = o.op;
                t.text = std::string(o.text);
                i += o.text.size();
                matched = true;
                break;
            }
        }
        if (matched) {
            out.push_back(std::move(t));
            continue;
        }
        if (c == '"') {
            const std::size_t close = s.find('"', i + 1);
            if (close == std::string_view::npos) throw SyntaxError{"unterminated string" + at_column(t.column)};
            t.type = TokType::operand;
            t.quoted = true;
            t.text = std::string(s.substr(i + 1, close - i - 1));
            out.push_back(std::move(t));
            i = close + 1;
            continue;
        }
        std::size_t j = i;
        while (j < n) {
            if (is_word_char(static_cast<unsigned char>(s[j]))) {
                ++j;
            } else if (s[j] == '$' && j + 1 < n && s[j + 1] != '{') {
                j += 2;
            } else {
                break;
            }
        }
        if (j == i) {
            if (c == '$' && i + 1 < n) throw SyntaxError{"unexpected '${'" + at_column(t.column)};
            throw SyntaxError{"unexpected " + describe_char(static_cast<unsigned char>(c)) + at_column(t.column)};
        }
        t.type = TokType::operand;
        t.text = std::string(s.substr(i, j - i));
        t.numeric = is_decimal(t.text);
        out.push_back(std::move(t));
        i = j;
    }
    return out;
}

// ---- regular expressions ----------------------------------------------------

constexpr std::size_t kMaxRegexGroupDepth = 32;
constexpr std::size_t kCostCap = std::size_t{1} << 40;  // saturation point of cost arithmetic

std::size_t skip_bracket(std::string_view p, std::size_t i) {
    const std::size_t n = p.size();
    std::size_t j = i + 1;
    if (j < n && p[j] == '^') ++j;
    if (j < n && p[j] == ']') ++j;
    while (j < n && p[j] != ']') {
        if (p[j] == '[' && j + 1 < n && (p[j + 1] == ':' || p[j + 1] == '.' || p[j + 1] == '=')) {
            const char delim = p[j + 1];
            std::size_t k = j + 2;
            while (k + 1 < n && !(p[k] == delim && p[k + 1] == ']')) ++k;
            j = k + 1 < n ? k + 2 : n;
        } else {
            ++j;
        }
    }
    return j < n ? j + 1 : n;
}

// Rejects patterns that would make the C library's matcher slow or huge:
// back-references, deep group nesting, and counted repetitions whose
// expansion exceeds kMaxRegexCost. Returns an empty string when acceptable.
std::string regex_problem(std::string_view p) {
    const auto add = [](std::size_t a, std::size_t b) { return std::min(a + b, kCostCap); };
    const auto mul = [](std::size_t a, std::size_t b) { return (a != 0 && b > kCostCap / a) ? kCostCap : a * b; };
    std::vector<std::size_t> enclosing;
    std::size_t total = 0;
    std::size_t last = 0;
    const auto atom = [&](std::size_t cost) {
        total = add(total, cost);
        last = cost;
    };
    const std::size_t n = p.size();
    std::size_t i = 0;
    while (i < n) {
        const char c = p[i];
        if (c == '\\') {
            if (i + 1 < n && p[i + 1] >= '1' && p[i + 1] <= '9') return "back-references are not supported";
            i += 2;
            atom(1);
        } else if (c == '[') {
            i = skip_bracket(p, i);
            atom(1);
        } else if (c == '(') {
            if (enclosing.size() >= kMaxRegexGroupDepth) return "groups nested too deeply";
            enclosing.push_back(total);
            total = 0;
            last = 0;
            ++i;
        } else if (c == ')' && !enclosing.empty()) {
            const std::size_t group = std::max<std::size_t>(total, 1);
            total = enclosing.back();
            enclosing.pop_back();
            atom(group);
            ++i;
        } else if (c == '{') {
            std::size_t j = i + 1;
            std::size_t lo = 0;
            std::size_t hi = 0;
            bool has_lo = false;
            bool has_hi = false;
            bool comma = false;
            while (j < n && is_digit(p[j])) {
                lo = std::min(add(mul(lo, 10), static_cast<std::size_t>(p[j] - '0')), kCostCap);
                has_lo = true;
                ++j;
            }
            if (j < n && p[j] == ',') {
                comma = true;
                ++j;
                while (j < n && is_digit(p[j])) {
                    hi = std::min(add(mul(hi, 10), static_cast<std::size_t>(p[j] - '0')), kCostCap);
                    has_hi = true;
                    ++j;
                }
            }
            if (has_lo && j < n && p[j] == '}') {
                std::size_t copies = has_hi ? std::max(lo, hi) : (comma ? add(lo, 1) : lo);
                copies = std::max<std::size_t>(copies, 1);
                total = add(total, mul(last, copies - 1));
                last = mul(last, copies);
                i = j + 1;
            } else {
                atom(1);
                ++i;
            }
        } else if (c == '+') {
            total = add(total, last);
            last = mul(last, 2);
            ++i;
        } else if (c == '|') {
            last = 0;
            ++i;
        } else if (c == '*' || c == '?') {
            ++i;
        } else {
            atom(1);
            ++i;
        }
    }
    std::size_t sum = total;
    for (const std::size_t t : enclosing) sum = add(sum, t);
    if (sum > kMaxRegexCost) return "regular expression too complex";
    return {};
}

// ---- parser -----------------------------------------------------------------

int precedence(Op op) {
    switch (op) {
        case Op::or_:
            return 1;
        case Op::and_:
            return 2;
        case Op::eq:
        case Op::ne:
        case Op::lt:
        case Op::gt:
        case Op::le:
        case Op::ge:
            return 3;
        case Op::plus:
        case Op::minus:
            return 4;
        case Op::mul:
        case Op::div:
        case Op::mod:
            return 5;
        default:
            return 0;
    }
}

class Parser {
public:
    Parser(std::vector<Token> tokens, std::size_t text_size) : tokens_(std::move(tokens)) {
        Token end;
        end.column = text_size + 1;
        tokens_.push_back(std::move(end));
    }

    Value parse() {
        Value v;
        ternary(true, v);
        const Token& t = peek();
        if (t.type != TokType::end) {
            if (is_op(t, Op::rparen)) fail_at("unbalanced ')'", t.column);
            fail_unexpected(t, "after a complete expression");
        }
        return v;
    }

    const std::string& problem() const { return problem_; }

private:
    class DepthGuard {
    public:
        explicit DepthGuard(Parser& p) : p_(p) {
            if (++p_.depth_ > kMaxExprDepth) fail_too_deep();
        }
        ~DepthGuard() { --p_.depth_; }
        DepthGuard(const DepthGuard&) = delete;
        DepthGuard& operator=(const DepthGuard&) = delete;

    private:
        Parser& p_;
    };

    const Token& peek() const { return tokens_[pos_]; }
    void advance() {
        if (pos_ + 1 < tokens_.size()) ++pos_;
    }
    static bool is_op(const Token& t, Op op) { return t.type == TokType::op && t.op == op; }

    // Failure paths live out of line so the recursive parsing functions keep
    // small stack frames.
    [[noreturn]] [[gnu::noinline]] static void fail(const char* what) { throw SyntaxError{what}; }
    [[noreturn]] [[gnu::noinline]] static void fail_at(const char* what, std::size_t column) {
        throw SyntaxError{what + at_column(column)};
    }
    [[noreturn]] [[gnu::noinline]] static void fail_too_deep() {
        throw SyntaxError{"expression nested too deeply (limit " + std::to_string(kMaxExprDepth) + ")"};
    }
    [[noreturn]] [[gnu::noinline]] static void fail_function(const Token& name) {
        throw SyntaxError{"function calls are not supported in expressions ('" + name.text + "('" +
                          at_column(name.column) + ")"};
    }
    [[noreturn]] [[gnu::noinline]] static void fail_unexpected(const Token& t, const char* where) {
        if (t.type == TokType::end) throw SyntaxError{std::string("unexpected end of expression ") + where};
        const std::string what = t.type == TokType::operand ? (t.quoted ? "\"" + t.text + "\"" : t.text) : t.text;
        throw SyntaxError{"unexpected '" + what + "'" + at_column(t.column) + " " + where};
    }

    [[gnu::noinline]] static Value concatenate(const Value& a, const Value& b) {
        return make_result_string(to_text(a) + to_text(b));
    }

    void note(std::string message) {
        if (problem_.empty()) problem_ = std::move(message);
    }

    // The parsing functions deliver their value through `out`, which keeps
    // the frames of this recursion small. When `live` is false they only
    // check syntax and leave `out` alone.

    // cond ? a :: b, left-associative, lowest precedence.
    void ternary(bool live, Value& out) {
        DepthGuard guard(*this);
        binary(1, live, out);
        Value unused;
        while (is_op(peek(), Op::cond)) {
            advance();
            const bool first = live && !is_null(out);
            const bool second = live && !first;
            ternary(first, first ? out : unused);
            if (!is_op(peek(), Op::colon_colon)) {
                if (is_op(peek(), Op::colon) || peek().type == TokType::end) {
                    fail("missing '::' in conditional (the form is cond ? a :: b)");
                }
                fail_unexpected(peek(), "where '::' was expected");
            }
            advance();
            binary(1, second, second ? out : unused);
        }
    }

    void binary(int min_prec, bool live, Value& lhs) {
        unary(live, lhs);
        Value rhs;
        for (;;) {
            const Token& t = peek();
            if (t.type != TokType::op) break;
            const int prec = precedence(t.op);
            if (prec == 0 || prec < min_prec) break;
            const Op op = t.op;
            const std::string_view spelling = t.text;  // tokens_ never changes: stays valid
            advance();
            bool rhs_live = live;
            if (op == Op::or_) rhs_live = live && is_null(lhs);
            if (op == Op::and_) rhs_live = live && !is_null(lhs);
            binary(prec + 1, rhs_live, rhs);
            if (live) apply(op, spelling, lhs, rhs);
        }
    }

    void unary(bool live, Value& out) {
        const Token& t = peek();
        if (is_op(t, Op::minus) || is_op(t, Op::not_)) {
            DepthGuard guard(*this);
            const Op op = t.op;
            advance();
            unary(live, out);
            if (live) apply_unary(op, out);
            return;
        }
        postfix(live, out);
    }

    // The regex and concatenation operators bind tighter than unary ones.
    void postfix(bool live, Value& lhs) {
        primary(live, lhs);
        Value rhs;
        for (;;) {
            const Token& t = peek();
            if (!is_op(t, Op::colon) && !is_op(t, Op::eq_tilde) && !is_op(t, Op::tilde_tilde)) break;
            const Op op = t.op;
            advance();
            const Token& next = peek();
            if (is_op(next, Op::minus) || is_op(next, Op::not_)) {
                unary(live, rhs);
            } else {
                primary(live, rhs);
            }
            if (live) apply_postfix(op, lhs, rhs);
        }
    }

    void primary(bool live, Value& out) {
        const Token& t = peek();
        if (t.type == TokType::operand) {
            advance();
            if (is_op(peek(), Op::lparen)) fail_function(t);
            if (live) set_operand(t, out);
            return;
        }
        if (is_op(t, Op::lparen)) {
            const std::size_t column = t.column;
            advance();
            if (is_op(peek(), Op::rparen)) fail_unexpected(peek(), "where an operand was expected");
            ternary(live, out);
            if (!is_op(peek(), Op::rparen)) {
                if (peek().type == TokType::end) fail_at("missing ')' for the '('", column);
                fail_unexpected(peek(), "where ')' was expected");
            }
            advance();
            return;
        }
        if (t.type == TokType::end) fail("missing operand at end of expression");
        fail_unexpected(t, "where an operand was expected");
    }

    // ---- operators (evaluated only on live branches) ----

    [[gnu::noinline]] static void set_operand(const Token& t, Value& out) {
        out.kind = (!t.quoted && t.numeric) ? Kind::numeric : Kind::string;
        out.num = 0;
        out.str = t.text;
    }

    // lhs = lhs <op> rhs for the binary operators.
    [[gnu::noinline]] void apply(Op op, std::string_view spelling, Value& lhs, Value& rhs) {
        switch (op) {
            case Op::or_:
                if (is_null(lhs)) lhs = std::move(rhs);
                return;
            case Op::and_:
                if (is_null(lhs) || is_null(rhs)) lhs = make_number(0);
                return;
            case Op::eq:
            case Op::ne:
            case Op::lt:
            case Op::gt:
            case Op::le:
            case Op::ge:
                lhs = compare(op, lhs, rhs);
                return;
            default:
                lhs = arithmetic(op, spelling, lhs, rhs);
                return;
        }
    }

    [[gnu::noinline]] void apply_unary(Op op, Value& v) { v = op == Op::minus ? negate(v) : logical_not(v); }

    [[gnu::noinline]] void apply_postfix(Op op, Value& lhs, const Value& rhs) {
        lhs = op == Op::tilde_tilde ? concatenate(lhs, rhs) : regex_match(lhs, rhs, op == Op::colon);
    }

    [[gnu::noinline]] static Value compare(Op op, const Value& a, const Value& b) {
        int c = 0;
        bool as_strings = a.kind == Kind::string || b.kind == Kind::string;
        if (!as_strings) {
            const auto x = to_number(a);
            const auto y = to_number(b);
            if (x && y) {
                if (std::isnan(*x) || std::isnan(*y)) return make_number(op == Op::ne ? 1 : 0);
                c = *x < *y ? -1 : (*x > *y ? 1 : 0);
            } else {
                as_strings = true;
            }
        }
        if (as_strings) {
            const int r = to_text(a).compare(to_text(b));
            c = r < 0 ? -1 : (r > 0 ? 1 : 0);
        }
        bool result = false;
        switch (op) {
            case Op::eq:
                result = c == 0;
                break;
            case Op::ne:
                result = c != 0;
                break;
            case Op::lt:
                result = c < 0;
                break;
            case Op::gt:
                result = c > 0;
                break;
            case Op::le:
                result = c <= 0;
                break;
            default:
                result = c >= 0;
                break;
        }
        return make_number(result ? 1 : 0);
    }

    void non_numeric(const Value& v, std::string_view spelling) {
        note("non-numeric operand '" + to_text(v) + "' to '" + std::string(spelling) + "'");
    }

    // Non-numeric operands give Asterisk's results (noted as problems):
    // a missing side of + or - counts as 0, x*y and x%y give 0, x/y gives 0 for
    // a bad x and 2147483647 for a bad or zero y.
    [[gnu::noinline]] Value arithmetic(Op op, std::string_view spelling, const Value& a, const Value& b) {
        const auto x = to_number(a);
        const auto y = to_number(b);
        long double r = 0;
        switch (op) {
            case Op::plus:
            case Op::minus:
                if (!x || !y) {
                    non_numeric(!x ? a : b, spelling);
                    if (x) return make_number(*x);
                    if (y) return make_number(op == Op::plus ? *y : -*y);
                    return make_number(0);
                }
                r = op == Op::plus ? *x + *y : *x - *y;
                break;
            case Op::mul:
                if (!x || !y) {
                    non_numeric(!x ? a : b, spelling);
                    return make_number(0);
                }
                r = *x * *y;
                break;
            case Op::div:
                if (!x) {
                    non_numeric(a, spelling);
                    return make_number(0);
                }
                if (!y) {
                    non_numeric(b, spelling);
                    return make_number(INT_MAX);
                }
                if (*y == 0) {
                    note("division by zero");
                    return make_number(INT_MAX);
                }
                r = *x / *y;
                break;
            case Op::mod:
                if (!x || !y) {
                    non_numeric(!x ? a : b, spelling);
                    return make_number(0);
                }
                if (*y == 0) {
                    note("division by zero");
                    return make_number(0);
                }
                r = std::fmod(*x, *y);
                break;
            default:
                fail("unexpected operator");
        }
        if (!std::isfinite(r)) note("numeric overflow in '" + std::string(spelling) + "'");
        return make_number(r);
    }

    [[gnu::noinline]] Value negate(const Value& v) {
        const auto x = to_number(v);
        if (!x) {
            non_numeric(v, "-");
            return make_number(0);
        }
        return make_number(-*x);
    }

    // Asterisk's '!': numbers by value, strings by their leading integer.
    [[gnu::noinline]] static Value logical_not(const Value& v) {
        bool truth = false;
        if (v.kind == Kind::number) {
            truth = v.num != 0;
        } else if (!v.str.empty() && v.str != "0") {
            truth = atoi_nonzero(v.str);
        }
        return make_number(truth ? 0 : 1);
    }

    [[gnu::noinline]] Value regex_match(const Value& a, const Value& b, bool anchored) {
        const std::string subject = to_text(a);
        const std::string pattern = to_text(b);
        const char* const name = anchored ? "':'" : "'=~'";
        if (subject.size() > kMaxRegexSubject) {
            note(std::string("string longer than ") + std::to_string(kMaxRegexSubject) + " bytes matched by " + name);
            return make_result_string({});
        }
        if (const std::string why = regex_problem(pattern); !why.empty()) {
            note("regular expression '" + pattern + "': " + why);
            return make_result_string({});
        }
        regex_t re;
        const int rc = regcomp(&re, pattern.c_str(), REG_EXTENDED);
        if (rc != 0) {
            char buf[256];
            regerror(rc, &re, buf, sizeof buf);
            note("invalid regular expression '" + pattern + "': " + buf);
            return make_result_string({});
        }
        regmatch_t m[2];
        const int found = regexec(&re, subject.c_str(), 2, m, 0);
        const std::size_t groups = re.re_nsub;
        regfree(&re);
        if (found == 0 && (!anchored || m[0].rm_so == 0)) {
            if (m[1].rm_so >= 0 && m[1].rm_eo >= m[1].rm_so) {
                return make_result_string(subject.substr(static_cast<std::size_t>(m[1].rm_so),
                                                         static_cast<std::size_t>(m[1].rm_eo - m[1].rm_so)));
            }
            return make_number(static_cast<long double>(m[0].rm_eo - m[0].rm_so));
        }
        return groups == 0 ? make_number(0) : make_result_string({});
    }

    std::vector<Token> tokens_;
    std::size_t pos_ = 0;
    int depth_ = 0;
    std::string problem_;
};

}  // namespace

ExprResult evaluate(std::string_view text) {
    ExprResult result;
    try {
        std::vector<Token> tokens = tokenize(text);
        if (tokens.empty()) return result;
        Parser parser(std::move(tokens), text.size());
        const Value v = parser.parse();
        result.value = to_text(v);
        result.error = parser.problem();
    } catch (const SyntaxError& e) {
        result.value = "0";
        result.error = "syntax error: " + e.message;
    }
    return result;
}

}  // namespace tandem::dialplan
