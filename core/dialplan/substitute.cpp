// ${...} / $[...] substitution and application argument splitting; see substitute.hpp.
#include "dialplan/substitute.hpp"

#include "dialplan/expr.hpp"

#include <algorithm>
#include <climits>
#include <utility>

namespace tandem::dialplan {

namespace {

constexpr std::size_t npos = std::string_view::npos;

struct State {
    Resolver& resolver;
    std::vector<std::string>* errors;
    bool truncated = false;
};

void report(State& st, std::string message) {
    if (st.errors) st.errors->push_back(std::move(message));
}

// Quotes `s` for a message, shortened when long.
std::string shown(std::string_view s) {
    constexpr std::size_t kShown = 60;
    std::string out = "'";
    if (s.size() <= kShown) {
        out.append(s);
    } else {
        out.append(s.substr(0, kShown - 3));
        out += "...";
    }
    out += '\'';
    return out;
}

// Appends within the output limit; false (and the whole substitution stops)
// once the limit is reached.
bool append(State& st, std::string& out, std::string_view s) {
    if (st.truncated) return false;
    if (out.size() + s.size() > kMaxSubstituteOutput) {
        out.append(s.substr(0, kMaxSubstituteOutput - out.size()));
        st.truncated = true;
        report(st, "substitution output truncated to " + std::to_string(kMaxSubstituteOutput) + " bytes");
        return false;
    }
    out.append(s);
    return true;
}

// `start` is just after "${". Returns the index just past the matching '}'.
std::size_t find_brace_end(std::string_view t, std::size_t start) {
    std::size_t depth = 1;
    for (std::size_t i = start; i < t.size(); ++i) {
        if (t[i] == '$' && i + 1 < t.size() && t[i + 1] == '{') {
            ++depth;
            ++i;
        } else if (t[i] == '{') {
            ++depth;
        } else if (t[i] == '}') {
            if (--depth == 0) return i + 1;
        }
    }
    return npos;
}

// `start` is just after "$[". Returns the index just past the matching ']'.
std::size_t find_bracket_end(std::string_view t, std::size_t start) {
    std::size_t depth = 1;
    for (std::size_t i = start; i < t.size(); ++i) {
        if (t[i] == '$' && i + 1 < t.size() && (t[i + 1] == '[' || t[i + 1] == '{')) {
            if (t[i + 1] == '[') ++depth;
            ++i;
        } else if (t[i] == '[') {
            ++depth;
        } else if (t[i] == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return npos;
}

bool is_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

// One sscanf "%30d" conversion: blanks, optional sign, digits; clamped to int.
bool scan_int(std::string_view s, std::size_t& i, long long& out) {
    std::size_t j = i;
    while (j < s.size() && is_space(s[j])) ++j;
    const std::size_t start = j;
    bool negative = false;
    if (j < s.size() && (s[j] == '+' || s[j] == '-')) {
        negative = s[j] == '-';
        ++j;
    }
    const std::size_t digits = j;
    long long v = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9' && j - start < 30) {
        v = std::min<long long>(v * 10 + (s[j] - '0'), static_cast<long long>(INT_MAX) + 1);
        ++j;
    }
    if (j == digits) return false;
    out = std::clamp<long long>(negative ? -v : v, INT_MIN, INT_MAX);
    i = j;
    return true;
}

// Resolves the substituted text between "${" and "}".
std::string resolve(State& st, const std::string& spec) {
    // ":offset:length" starts at the first ':' outside parentheses.
    int parens = 0;
    bool is_function = false;
    std::size_t colon = npos;
    for (std::size_t i = 0; i < spec.size(); ++i) {
        const char c = spec[i];
        if (c == '(') {
            is_function = true;
            ++parens;
        } else if (c == ')') {
            --parens;
        } else if (c == ':' && parens == 0) {
            colon = i;
            break;
        }
    }
    const std::string_view base = std::string_view(spec).substr(0, colon);

    std::string value;
    if (is_function) {
        // The name runs to the first '(', the arguments to the last ')'
        // (for well-formed text, the one matching that '(').
        const std::size_t open = base.find('(');
        const std::string_view name = base.substr(0, open);
        const std::size_t close = base.rfind(')');
        std::string_view args;
        if (close != npos && close > open) {
            args = base.substr(open + 1, close - open - 1);
            if (close + 1 < base.size()) {
                report(st, "ignoring " + shown(base.substr(close + 1)) + " after the arguments in " +
                               shown("${" + spec + "}"));
            }
        } else {
            args = base.substr(open + 1);
            report(st, "missing ')' in " + shown("${" + spec + "}"));
        }
        std::string why;
        auto result = st.resolver.function(name, args, why);
        if (!result) {
            report(st, "function " + std::string(name) + ": " + (why.empty() ? std::string("failed") : why));
            return {};
        }
        value = std::move(*result);
    } else {
        if (base.empty()) return {};
        auto result = st.resolver.variable(base);
        if (!result) return {};
        value = std::move(*result);
    }
    if (colon == npos) return value;

    long long offset = 0;
    long long length = INT_MAX;
    const std::string_view range = std::string_view(spec).substr(colon + 1);
    std::size_t i = 0;
    if (scan_int(range, i, offset) && i < range.size() && range[i] == ':') {
        ++i;
        scan_int(range, i, length);
    }
    return substring(value, offset, length);
}

void run(State& st, std::string_view text, int depth, std::string& out) {
    std::size_t i = 0;
    while (i < text.size() && !st.truncated) {
        const std::size_t dollar = text.find('$', i);
        if (dollar == npos) {
            append(st, out, text.substr(i));
            return;
        }
        if (!append(st, out, text.substr(i, dollar - i))) return;
        const char kind = dollar + 1 < text.size() ? text[dollar + 1] : '\0';
        if (kind != '{' && kind != '[') {
            append(st, out, "$");
            i = dollar + 1;
            continue;
        }
        const std::size_t end = kind == '{' ? find_brace_end(text, dollar + 2) : find_bracket_end(text, dollar + 2);
        if (end == npos) {
            report(st, std::string("unterminated '$") + kind + "' in " + shown(text.substr(dollar)));
            append(st, out, text.substr(dollar));
            return;
        }
        const std::string_view whole = text.substr(dollar, end - dollar);
        const std::string_view inner = text.substr(dollar + 2, end - dollar - 3);
        i = end;
        if (depth >= kMaxSubstituteDepth) {
            report(st, "substitution nested deeper than " + std::to_string(kMaxSubstituteDepth) + " levels in " +
                           shown(whole));
            append(st, out, whole);
            continue;
        }
        std::string expanded;
        run(st, inner, depth + 1, expanded);
        if (st.truncated) return;
        if (kind == '{') {
            append(st, out, resolve(st, expanded));
        } else {
            const ExprResult r = evaluate(expanded);
            if (!r.ok()) report(st, "expression " + shown("$[" + expanded + "]") + ": " + r.error);
            append(st, out, r.value);
        }
    }
}

}  // namespace

std::string substitute(std::string_view text, Resolver& r, std::vector<std::string>* errors) {
    State st{r, errors};
    std::string out;
    run(st, text, 0, out);
    return out;
}

std::string substring(std::string_view value, long long offset, long long length) {
    const auto size = static_cast<long long>(value.size());
    if (offset == 0 && length >= size) return std::string(value);
    if (offset < 0) offset = std::max<long long>(size + offset, 0);
    if (offset >= size) return {};
    const long long remaining = size - offset;
    long long take = 0;
    if (length >= 0) {
        take = std::min(length, remaining);
    } else {
        take = std::max<long long>(remaining + length, 0);
    }
    return std::string(value.substr(static_cast<std::size_t>(offset), static_cast<std::size_t>(take)));
}

std::vector<std::string> split_args(std::string_view args, char sep) {
    std::vector<std::string> out;
    if (args.empty()) return out;
    std::string current;
    int parens = 0;
    int brackets = 0;
    bool quoted = false;
    bool at_start = true;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const char c = args[i];
        if (at_start && (c == ' ' || c == '\t') && c != sep) continue;
        at_start = false;
        if (c == '(') {
            ++parens;
        } else if (c == ')') {
            if (parens > 0) --parens;
        } else if (c == '[') {
            ++brackets;
        } else if (c == ']') {
            if (brackets > 0) --brackets;
        } else if (c == '"' && sep != '"') {
            quoted = !quoted;
            continue;
        } else if (c == '\\') {
            if (i + 1 < args.size()) current += args[++i];
            continue;
        } else if (c == sep && parens == 0 && brackets == 0 && !quoted) {
            out.push_back(std::move(current));
            current.clear();
            at_start = true;
            continue;
        }
        current += c;
    }
    out.push_back(std::move(current));
    return out;
}

}  // namespace tandem::dialplan
