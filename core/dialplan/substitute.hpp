// ${...} and $[...] substitution in dialplan text, and the splitting of an
// application's argument string, as Asterisk does them.
//
// ${NAME}            variable; unset substitutes ""
// ${NAME:off}        from character `off`; negative counts from the end
// ${NAME:off:len}    at most `len` characters; a negative `len` drops that many
//                    from the end. Parsed like sscanf("%d:%d"): a missing or
//                    malformed number leaves the default (0, and the whole rest)
// ${FUNC(args)}      dialplan function: FUNC is the text before the first '(',
//                    args run to the matching ')' (for unbalanced text, to the
//                    last ')', as Asterisk does). ":off:len" may follow.
// $[expr]            expression (expr.hpp), evaluated after substitution inside it
// Whatever sits between ${ and } is substituted first, so names and arguments
// may themselves hold ${...} and $[...] ("${FOO${N}}", "${LEN(${CUT(x,-,1)})}").
// Other text, including '$' not followed by '{' or '[' and every backslash,
// is copied unchanged.
//
// Problems never abort: an unterminated "${" or "$[" is copied literally from
// there to the end; nesting deeper than kMaxSubstituteDepth leaves the
// too-deep construct as written; a failing function substitutes ""; a broken
// expression substitutes what evaluate() returns ("0" for a syntax error);
// output beyond kMaxSubstituteOutput bytes is cut off. Each is described in
// `errors` when given.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::dialplan {

class Resolver {
public:
    virtual ~Resolver() = default;
    // The value of a variable, or nullopt when unset (substitutes "").
    virtual std::optional<std::string> variable(std::string_view name) = 0;
    // Reads a dialplan function; on failure returns nullopt and describes why in `error`.
    virtual std::optional<std::string> function(std::string_view name, std::string_view args, std::string& error) = 0;
};

inline constexpr int kMaxSubstituteDepth = 15;
inline constexpr std::size_t kMaxSubstituteOutput = 64 * 1024;

std::string substitute(std::string_view text, Resolver& r, std::vector<std::string>* errors = nullptr);

// Asterisk's substring rule for ${NAME:offset:length}. A negative offset
// counts from the end (clamped to the start); an offset past the end gives "";
// a negative length drops that many characters from the end.
std::string substring(std::string_view value, long long offset, long long length);

// Splits application arguments on `sep` (Asterisk's ast_app_separate_args).
// Separators inside (...), [...] or "..." do not split; the double quotes are
// removed; a backslash makes the next character literal and is removed.
// Leading blanks (spaces and tabs) of each argument are skipped; everything
// else is kept. "" gives no arguments; "a,,b" gives {"a", "", "b"}; a
// trailing separator gives a trailing empty argument.
std::vector<std::string> split_args(std::string_view args, char sep = ',');

}  // namespace tandem::dialplan
