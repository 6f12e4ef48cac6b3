// The $[ ... ] expression language of extensions.conf (Asterisk's expr2).
//
// Operands are bare words ("abc", "12", "1.5", "SIP/100" is three tokens),
// or double-quoted strings, which may hold spaces and operators; the quotes
// are dropped from the value and a quoted operand is always a string, never
// a number. Operators, lowest precedence first:
//   a ? b :: c                 conditional (left-associative)
//   |  ||                      a if a is non-empty and not zero, else b
//   &  &&                      a if both are non-empty and not zero, else 0
//   = == != < > <= >=          1 or 0; numeric when neither side is a string
//                              (a word that is not a plain decimal number), else bytewise
//   + -                        arithmetic on decimal numbers
//   * / %
//   - !                        unary minus, logical not (prefix)
//   :  =~  ~~                  regular expression match anchored at the start,
//                              unanchored match, string concatenation
//   ( )
// The regex operators use POSIX extended regular expressions. They return the
// text of the first parenthesised group when the pattern has one (an empty
// string when it does not match), otherwise the length of the match (0 when
// none). Back-references are not supported.
//
// Numbers print as integers when whole, otherwise with at most 6 decimals,
// trailing zeros dropped ($[1/3] is 0.333333). A word that is already a number
// comes back as written ($[05] is 05).
//
// Errors. A syntax error (missing operand, unbalanced parentheses, nesting
// deeper than kMaxExprDepth, an unexpected character) makes `value` "0", the
// result Asterisk substitutes for a broken expression. Other problems (division
// by zero, a non-numeric operand to arithmetic, a bad or oversized regular
// expression) are reported in `error`, while `value` still holds the result
// Asterisk computes in that case (for example 2147483647 for x/0).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tandem::dialplan {

struct ExprResult {
    std::string value;
    std::string error;  // empty on success
    bool ok() const noexcept { return error.empty(); }
};

// Evaluates the text between "$[" and "]", after ${...} substitution.
// An empty or all-blank expression gives "" without error.
ExprResult evaluate(std::string_view text);

// Parentheses, conditionals and unary operators nested deeper than this are
// a syntax error.
inline constexpr int kMaxExprDepth = 100;
// Regular expression operands: longest subject string accepted, and a bound
// on the pattern's size once counted repetitions ({m,n}) are expanded.
inline constexpr std::size_t kMaxRegexSubject = 4096;
inline constexpr std::size_t kMaxRegexCost = 500;

}  // namespace tandem::dialplan
