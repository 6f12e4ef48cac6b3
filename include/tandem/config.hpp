// tandem/config.hpp - the one parser for every Tandem .conf file.
//
// Every module reads its configuration through this header: parse_file()
// turns an Asterisk-dialect file (sections, templates, #include, comments)
// into a plain tree of Sections and Variables, and bind() checks a Section
// against a module's typed schema so that `tandem -t` can validate a whole
// configuration without starting anything.
//
// Threading: the parser keeps no global or static state, so any number of
// threads may parse at the same time. A ParseResult, File, Section, Variable
// or bound Options object is an ordinary value that nothing mutates after it
// is returned; such values are safe to share read-only across threads (for
// example, publish a std::shared_ptr<const File> and swap it on reload).
//
// Errors never escape as exceptions from parse_file()/parse_text(): every
// problem becomes a Diagnostic ("file:line: message") and parsing carries on
// with the next line. Exceptions are used only for programming errors
// (a malformed schema, or asking Options for an option it does not declare).
#pragma once

#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::config {

// Where something came from. `line` is 1-based; 0 means "the file as a
// whole" (for example, a file that could not be opened).
struct Location {
    std::string file{};
    int line = 0;

    // "file:line", or just "file" when line is 0.
    std::string str() const;
};

struct Diagnostic {
    Location where{};
    std::string message{};

    // "file:line: message"
    std::string str() const;
};

struct Variable {
    std::string name{};
    std::string value{};
    bool object = false;  // written with "=>" rather than "="
    Location where{};     // original file and line, even via #include or a template
};

// Variable-name lookups (find/all/get, and bind()) ignore ASCII case, as
// Asterisk does. Section names are case-sensitive (dialplan contexts are).
struct Section {
    std::string name{};                    // "" for lines that appear before the first [section]
    Location where{};                      // where the section was first declared
    bool is_template = false;              // declared with (!)
    std::vector<std::string> templates{};  // inherited from, in order
    std::vector<Variable> variables{};     // inherited ones first, then its own

    // The last occurrence wins, so a section's own value overrides a
    // template's. nullptr when absent.
    const Variable* find(std::string_view name) const;
    // Every occurrence, in order (dialplan lines, repeated allow=, ...).
    std::vector<const Variable*> all(std::string_view name) const;
    // Value of find(name), or `fallback` when absent.
    std::string get(std::string_view name, std::string_view fallback = {}) const;
};

struct File {
    std::string path{};  // the top-level file (or display name for parse_text)
    // In order of first appearance, templates included (is_template set).
    // A re-opened [name] adds to the existing Section, so names are unique.
    std::vector<Section> sections{};
    // Every file actually read from disk: the top-level file first (for
    // parse_file), then each included file in the order it was read.
    std::vector<std::string> files_read{};

    const Section* section(std::string_view name) const;
};

struct ParseResult {
    File file{};
    std::vector<Diagnostic> errors{};

    bool ok() const { return errors.empty(); }
};

// Parses `path`; relative #include paths resolve against its directory.
ParseResult parse_file(const std::filesystem::path& path);

// Parses in-memory text. `display_name` is used in Locations; relative
// #include paths resolve against `include_base`.
ParseResult parse_text(std::string_view text, std::string display_name, const std::filesystem::path& include_base);

// ---------------------------------------------------------------------------
// Typed option binding.
//
// Value rules (applied after one pair of enclosing double quotes, if the
// value is wholly quoted, has been stripped):
//   string   any text
//   integer  decimal, optional sign, within [min, max]
//   boolean  yes/no, true/false, on/off, 1/0 (any case)
//   duration 500ms, 30s, 5m, 2h, or a bare number of seconds; [min, max]
//            are compared in milliseconds
//   choice   one of `choices` (any case; the spelling in `choices` is kept)
//   list     comma-separated; items trimmed, empty items dropped
// If a variable is repeated, the last occurrence is used (as Section::find);
// use Section::all() directly for options that accumulate.

enum class OptionType { string, integer, boolean, duration, choice, list };

// Every member has an initializer so that designated initializers such as
// {.name = "port", .type = OptionType::integer, .min = 1, .max = 65535}
// compile cleanly under -Wextra (g++ 12 warns about omitted members
// otherwise).
struct OptionSpec {
    std::string name{};
    OptionType type = OptionType::string;
    std::string default_value{};  // used when absent; "" means no default
    long long min = std::numeric_limits<long long>::min();
    long long max = std::numeric_limits<long long>::max();
    std::vector<std::string> choices{};  // for OptionType::choice
    std::string help{};
    bool required = false;
};

class Options {
public:
    // Every accessor throws std::out_of_range for a name the schema did not
    // declare. The typed accessors throw std::invalid_argument when the
    // option has another type; str() works for every type and returns the
    // (unquoted) text. An absent option without a default reads as "", 0,
    // false, 0ms or an empty list.
    std::string str(std::string_view name) const;
    long long integer(std::string_view name) const;
    bool boolean(std::string_view name) const;
    std::chrono::milliseconds duration(std::string_view name) const;
    std::vector<std::string> list(std::string_view name) const;

    // True when the section set the option (a default does not count).
    bool has(std::string_view name) const;
    // Location of the variable that set the option, if the section did.
    std::optional<Location> where(std::string_view name) const;

private:
    struct Value {
        OptionType type = OptionType::string;
        bool set = false;
        std::string text;
        long long number = 0;  // integer, boolean (0/1), duration (ms)
        std::vector<std::string> items;
        Location where;
    };
    const Value& lookup(std::string_view name) const;
    const Value& lookup(std::string_view name, OptionType type) const;

    std::map<std::string, Value, std::less<>> values_;

    friend std::vector<Diagnostic> bind(const Section&, std::span<const OptionSpec>, Options&, bool);
};

// Fills `out` (replacing its contents) from `s` according to `schema` and
// returns the problems found: invalid values (reported at the variable's own
// file:line; the default is used instead), unknown options (unless
// allow_unknown) and missing required options (reported at the section).
// Throws std::invalid_argument if the schema itself is malformed (duplicate
// names, a default that does not satisfy its own rules, a choice without
// choices).
std::vector<Diagnostic> bind(const Section& s, std::span<const OptionSpec> schema, Options& out,
                             bool allow_unknown = false);

}  // namespace tandem::config
