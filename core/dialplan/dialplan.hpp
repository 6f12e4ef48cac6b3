// The compiled dialplan: an immutable snapshot of extensions.conf.
//
// load() parses and validates the whole file (unknown applications, wrong
// argument counts, malformed lines: `file:line: message`) and returns a new
// Snapshot, or nullptr when anything is wrong, so a broken file never replaces
// a working plan. The core swaps snapshots with one atomic store; a call reads
// the current snapshot at each step and never sees a half-loaded plan.
#pragma once

#include "dialplan/pattern.hpp"
#include "dialplan/timespec.hpp"

#include <tandem/application.hpp>
#include <tandem/config.hpp>
#include <tandem/registry.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace tandem::dialplan {

struct Priority {
    int number = 0;
    std::string label;
    std::string app;
    std::string args;
    config::Location where;
};

struct Extension {
    std::string name;  // as written, e.g. "100" or "_1NXX"
    std::string cid;   // caller-id match ("" = any caller)
    std::optional<Pattern> pattern;
    std::string hint;
    std::vector<Priority> priorities;  // sorted by number
    config::Location where;

    const Priority* find_priority(int n) const;
    int find_label(std::string_view label) const;  // 0 when absent
    bool matches_caller(std::string_view callerid) const;
};

struct Include {
    std::string context;
    std::optional<TimeSpec> when;
    config::Location where;
};

// Heterogeneous hashing, so lookups by string_view do not allocate.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

struct Context {
    std::string name;
    config::Location where;
    std::deque<Extension> storage;  // stable addresses
    // Plain names (without dashes) -> their caller-id variants, specific ones first.
    std::unordered_map<std::string, std::vector<const Extension*>, StringHash, std::equal_to<>> exact;
    std::vector<const Extension*> patterns;  // in Asterisk's match order
    // Patterns indexed by their literal prefix ("_2005XXXXXXX" -> "2005"): a
    // number only needs the buckets of its own prefixes, each in match order
    // (indexes into `patterns`).
    std::unordered_map<std::string, std::vector<std::uint32_t>, StringHash, std::equal_to<>> pattern_index;
    std::vector<std::size_t> prefix_lengths;  // distinct prefix lengths, ascending
    std::vector<Include> includes;
    std::vector<std::string> ignorepats;
};

struct Snapshot {
    std::map<std::string, Context, std::less<>> contexts;
    std::vector<std::pair<std::string, std::string>> globals;
    std::vector<std::string> warnings;  // "file:line: warning: ..."
    std::vector<std::string> files;
    std::size_t extension_count = 0;
};

// Parses and validates `path` (and its #includes) against the registered applications.
std::shared_ptr<const Snapshot> load(const std::filesystem::path& path, const Registry<Application>& apps,
                                     std::vector<config::Diagnostic>& problems);
// The same from an already parsed file (tests, benchmarks).
std::shared_ptr<const Snapshot> compile(const config::File& file, const Registry<Application>* apps,
                                        std::vector<config::Diagnostic>& problems);

// Finds the extension a call to `exten` from `callerid` reaches in `context`,
// searching included contexts in order (time-limited ones only when open).
const Extension* find_extension(const Snapshot& plan, std::string_view context, std::string_view exten,
                                std::string_view callerid, std::chrono::system_clock::time_point now,
                                const Context** found_in = nullptr);

// How a partly dialed number relates to a context and its includes, for
// collecting digits (Asterisk's ast_canmatch_extension and
// ast_matchmore_extension). `can_match`: some extension is the number or
// starts with it; `match_more`: some extension is longer than the number and
// starts with it, so another digit could still change where the call goes.
// An early match ('!') counts as a match that wants nothing more.
struct DigitsMatch {
    bool can_match = false;
    bool match_more = false;
};
DigitsMatch match_digits(const Snapshot& plan, std::string_view context, std::string_view digits,
                         std::string_view callerid, std::chrono::system_clock::time_point now);

// Splits "[[context,]exten,]priority" (Goto's argument) into its parts.
struct GotoTarget {
    std::string context, exten, priority;
};
GotoTarget parse_goto(std::string_view text);

}  // namespace tandem::dialplan
