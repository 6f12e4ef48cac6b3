// Parser for Asterisk-dialect .conf files, and typed option binding.
// See include/tandem/config.hpp for the public contract.
#include "tandem/config.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <utility>

namespace tandem::config {

namespace fs = std::filesystem;

namespace {

constexpr int kMaxIncludeDepth = 32;
// A file that produces this many errors is almost certainly not a config
// file at all (a .wav named *.conf, say); stop flooding the log with it.
constexpr int kMaxErrorsPerFile = 100;

std::string_view trim(std::string_view s) {
    const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
}

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    return true;
}

std::string single_quoted(std::string_view s) {
    return "'" + std::string(s) + "'";
}

// --- glob support ----------------------------------------------------------
// Only the standard library is used, so shell-style matching is done here:
// '*', '?', and bracket classes such as [abc], [a-z], [!x] / [^x].

bool has_wildcard(std::string_view s) {
    return s.find_first_of("*?[") != std::string_view::npos;
}

// Matches one bracket class starting at pattern[p] == '['. On success stores
// the index just past ']' in `next` and whether `c` is a member in `hit`.
// Returns false if the class is unterminated (then '[' is taken literally).
bool match_class(std::string_view pattern, std::size_t p, char c, std::size_t& next, bool& hit) {
    std::size_t i = p + 1;
    bool negate = false;
    if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
        negate = true;
        ++i;
    }
    bool found = false;
    bool first = true;  // a ']' right after '[' or '[!' is a member, not the end
    for (; i < pattern.size(); ++i) {
        if (pattern[i] == ']' && !first) {
            next = i + 1;
            hit = (found != negate);
            return true;
        }
        first = false;
        if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
            if (pattern[i] <= c && c <= pattern[i + 2]) found = true;
            i += 2;
        } else if (pattern[i] == c) {
            found = true;
        }
    }
    return false;
}

bool wildcard_match(std::string_view pattern, std::string_view name) {
    // Iterative matcher with single-star backtracking: on a mismatch, let the
    // most recent '*' swallow one more character and retry from there.
    std::size_t p = 0, n = 0;
    std::size_t star_p = std::string_view::npos, star_n = 0;
    while (n < name.size()) {
        if (p < pattern.size()) {
            const char pc = pattern[p];
            if (pc == '*') {
                star_p = p++;
                star_n = n;
                continue;
            }
            if (pc == '?') {
                ++p;
                ++n;
                continue;
            }
            if (pc == '[') {
                std::size_t next = 0;
                bool hit = false;
                if (match_class(pattern, p, name[n], next, hit)) {
                    if (hit) {
                        p = next;
                        ++n;
                        continue;
                    }
                } else if (name[n] == '[') {
                    ++p;
                    ++n;
                    continue;
                }
            } else if (pc == name[n]) {
                ++p;
                ++n;
                continue;
            }
        }
        if (star_p == std::string_view::npos) return false;
        p = star_p + 1;
        n = ++star_n;
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

// Expands `pattern` (relative to `start` unless absolute), any component of
// which may contain wildcards. Returns regular files only, sorted, as glob(3)
// would. Wildcard characters in `start` itself are taken literally.
std::vector<fs::path> expand_glob(const fs::path& start, const fs::path& pattern) {
    std::vector<fs::path> candidates{pattern.is_absolute() ? fs::path{} : start};
    for (const fs::path& part : pattern) {
        const std::string comp = part.string();
        std::vector<fs::path> next;
        if (!has_wildcard(comp)) {
            for (const auto& c : candidates) next.push_back(c / part);
        } else {
            for (const auto& dir : candidates) {
                std::error_code ec;
                fs::directory_iterator it(dir.empty() ? fs::path(".") : dir, ec);
                if (ec) continue;
                for (; it != fs::directory_iterator(); it.increment(ec)) {
                    if (ec) break;
                    const std::string fname = it->path().filename().string();
                    // As in the shell, wildcards do not match hidden files.
                    if (fname.starts_with('.') && !comp.starts_with('.')) continue;
                    if (wildcard_match(comp, fname)) next.push_back(dir / fname);
                }
            }
        }
        candidates = std::move(next);
        if (candidates.empty()) break;
    }
    std::vector<fs::path> out;
    for (auto& c : candidates) {
        std::error_code ec;
        if (fs::is_regular_file(c, ec)) out.push_back(c.lexically_normal());
    }
    std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) { return a.string() < b.string(); });
    return out;
}

// Reads a whole file; on failure returns nullopt and sets `why`.
std::optional<std::string> read_whole_file(const fs::path& path, std::string& why) {
    std::error_code ec;
    const auto st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
        why = ec ? ec.message() : "No such file or directory";
        return std::nullopt;
    }
    if (fs::is_directory(st)) {
        why = "is a directory";
        return std::nullopt;
    }
    if (!fs::is_regular_file(st)) {  // a FIFO or device could block forever
        why = "not a regular file";
        return std::nullopt;
    }
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        why = errno ? std::generic_category().message(errno) : "cannot open";
        return std::nullopt;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
        why = "read error";
        return std::nullopt;
    }
    return std::move(buf).str();
}

// --- the parser --------------------------------------------------------------

class Parser {
public:
    ParseResult result;

    // Parses one buffer. `key` identifies the file for loop detection (its
    // canonical path, or "" for in-memory text).
    void parse_buffer(std::string_view text, const std::string& display, const fs::path& base, const std::string& key);

private:
    // Per-file state: comments and error counts do not cross file borders.
    struct Frame {
        std::string display;
        fs::path base;
        int line = 0;
        int errors = 0;
        int block_depth = 0;  // nesting level of ;-- --; comments
        int block_start = 0;  // line where the outermost one began
    };

    std::vector<Frame*> stack_;                           // files being parsed, outermost first
    std::vector<std::string> stack_keys_;                 // their loop-detection keys
    std::unordered_map<std::string, std::size_t> index_;  // section name -> position
    std::optional<std::size_t> current_;                  // section receiving variables

    void error(Frame& f, std::string message) { error_at(f, f.line, std::move(message)); }
    void error_at(Frame& f, int line, std::string message) {
        ++f.errors;
        result.errors.push_back({{f.display, line}, std::move(message)});
    }

    std::string strip_comments(Frame& f, std::string_view raw);
    void handle_line(Frame& f, std::string_view line);
    void handle_section(Frame& f, std::string_view line);
    void handle_directive(Frame& f, std::string_view line);
    void handle_variable(Frame& f, std::string_view line);
    void include(Frame& f, std::string_view target, bool optional);
    void include_one(Frame& f, const fs::path& path);
    std::size_t find_or_create(const std::string& name, const Location& where);
};

void Parser::parse_buffer(std::string_view text, const std::string& display, const fs::path& base,
                          const std::string& key) {
    Frame f;
    f.display = display;
    f.base = base;
    stack_.push_back(&f);
    stack_keys_.push_back(key);

    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 BOM

    bool gave_up = false;
    std::size_t pos = 0;
    while (pos < text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view raw = text.substr(pos, end - pos);
        pos = end + 1;
        ++f.line;
        if (raw.ends_with('\r')) raw.remove_suffix(1);  // CRLF
        handle_line(f, strip_comments(f, raw));
        if (f.errors >= kMaxErrorsPerFile) {
            error(f, "too many errors; ignoring the rest of this file");
            gave_up = true;
            break;
        }
    }
    if (f.block_depth > 0 && !gave_up)
        error_at(f, f.block_start, "unterminated block comment (';--' without matching '--;')");

    stack_.pop_back();
    stack_keys_.pop_back();
}

// Removes ';' comments and ';--' ... '--;' block comments (which nest and
// may span lines, tracked in the Frame), turns '\;' into ';', and leaves ';'
// alone inside double quotes. Quotes and other backslashes are kept verbatim.
std::string Parser::strip_comments(Frame& f, std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    bool in_quotes = false;
    for (std::size_t i = 0; i < raw.size();) {
        const std::string_view rest = raw.substr(i);
        if (f.block_depth > 0) {
            if (rest.starts_with(";--")) {
                ++f.block_depth;
                i += 3;
            } else if (rest.starts_with("--;")) {
                --f.block_depth;
                i += 3;
            } else {
                ++i;
            }
            continue;
        }
        const char c = raw[i];
        if (c == '\\' && i + 1 < raw.size()) {
            if (raw[i + 1] == ';') {
                out += ';';
            } else {
                // Keep the pair as is; consuming both stops "\"" from
                // toggling the quote state.
                out += c;
                out += raw[i + 1];
            }
            i += 2;
            continue;
        }
        if (c == '"') {
            in_quotes = !in_quotes;
        } else if (c == ';' && !in_quotes) {
            if (!rest.starts_with(";--")) break;  // comment to end of line
            f.block_depth = 1;
            f.block_start = f.line;
            i += 3;
            continue;
        }
        out += c;
        ++i;
    }
    return out;
}

void Parser::handle_line(Frame& f, std::string_view line) {
    line = trim(line);
    if (line.empty()) return;

    // Control characters never belong in a config line (tab aside); this
    // catches NUL bytes and binary files read by mistake.
    const auto bad = std::find_if(line.begin(), line.end(), [](char ch) {
        const auto u = static_cast<unsigned char>(ch);
        return (u < 0x20 && ch != '\t') || u == 0x7F;
    });
    if (bad != line.end()) {
        static constexpr char hex[] = "0123456789ABCDEF";
        const auto u = static_cast<unsigned char>(*bad);
        error(f, std::string("line contains binary data (byte 0x") + hex[u >> 4] + hex[u & 0xF] + "); ignored");
        return;
    }

    if (line.front() == '[')
        handle_section(f, line);
    else if (line.front() == '#')
        handle_directive(f, line);
    else
        handle_variable(f, line);
}

std::size_t Parser::find_or_create(const std::string& name, const Location& where) {
    if (auto it = index_.find(name); it != index_.end()) return it->second;
    Section s;
    s.name = name;
    s.where = where;
    result.file.sections.push_back(std::move(s));
    index_.emplace(name, result.file.sections.size() - 1);
    return result.file.sections.size() - 1;
}

// [name], [name](!), [name](tpl1,tpl2), [name](!,tpl), [name](+)
void Parser::handle_section(Frame& f, std::string_view line) {
    const std::size_t close = line.find(']');
    if (close == std::string_view::npos) {
        error(f, "unterminated section header " + single_quoted(line));
        return;
    }
    const std::string name(trim(line.substr(1, close - 1)));
    if (name.empty()) {
        error(f, "empty section name");
        return;
    }

    bool is_template = false, append = false;
    std::vector<std::string> parents;
    std::string_view tail = trim(line.substr(close + 1));
    if (tail.starts_with('(') && tail.ends_with(')')) {
        std::string_view opts = tail.substr(1, tail.size() - 2);
        while (true) {
            const std::size_t comma = opts.find(',');
            const std::string_view opt = trim(opts.substr(0, comma));
            if (opt == "!")
                is_template = true;
            else if (opt == "+")
                append = true;
            else if (opt.empty())
                error(f, "empty template name in section header [" + name + "]");
            else
                parents.emplace_back(opt);
            if (comma == std::string_view::npos) break;
            opts.remove_prefix(comma + 1);
        }
    } else if (!tail.empty()) {
        error(f, "unexpected text after section header [" + name + "]: " + single_quoted(tail));
    }

    const Location here{f.display, f.line};
    if (append && !index_.contains(name)) error(f, "cannot append to section [" + name + "]: it has not been declared");
    const std::size_t idx = find_or_create(name, here);
    current_ = idx;

    auto& sections = result.file.sections;
    if (is_template) sections[idx].is_template = true;
    for (const auto& parent : parents) {
        // Like Asterisk, any earlier section can serve as a template.
        const auto it = index_.find(parent);
        if (it == index_.end()) {
            error(f, "unknown template '" + parent + "' for section [" + name + "]");
            continue;
        }
        if (it->second == idx) {
            error(f, "section [" + name + "] cannot inherit from itself");
            continue;
        }
        // Variables are copied with their original Locations, so errors in
        // inherited values point at the template's own lines.
        const auto& from = sections[it->second].variables;
        auto& to = sections[idx].variables;
        to.insert(to.end(), from.begin(), from.end());
        sections[idx].templates.push_back(parent);
    }
}

void Parser::handle_variable(Frame& f, std::string_view line) {
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
        error(f, "expected 'name = value', '[section]' or a directive, got " + single_quoted(line));
        return;
    }
    Variable v;
    v.name = trim(line.substr(0, eq));
    std::string_view value = line.substr(eq + 1);
    if (value.starts_with('>')) {
        v.object = true;
        value.remove_prefix(1);
    }
    v.value = trim(value);
    if (v.name.empty()) {
        error(f, "missing variable name before '" + std::string(v.object ? "=>" : "=") + "'");
        return;
    }
    v.where = {f.display, f.line};
    if (!current_) current_ = find_or_create("", v.where);  // the general pseudo-section
    result.file.sections[*current_].variables.push_back(std::move(v));
}

void Parser::handle_directive(Frame& f, std::string_view line) {
    std::size_t n = 1;
    while (n < line.size() && std::isalpha(static_cast<unsigned char>(line[n]))) ++n;
    const std::string_view word = line.substr(1, n - 1);
    std::string_view arg = trim(line.substr(n));

    if (word == "exec") {
        error(f, "#exec is not supported");
        return;
    }
    if (word != "include" && word != "tryinclude") {
        error(f, "unknown directive " + single_quoted(line.substr(0, n)));
        return;
    }
    // "file", <file> or a bare file name.
    if (!arg.empty() && (arg.front() == '"' || arg.front() == '<')) {
        const char closer = arg.front() == '"' ? '"' : '>';
        const std::size_t close = arg.find(closer, 1);
        if (close == std::string_view::npos) {
            error(f, "#" + std::string(word) + ": unterminated file name " + single_quoted(arg));
            return;
        }
        if (!trim(arg.substr(close + 1)).empty()) {
            error(f, "#" + std::string(word) + ": unexpected text after file name " + single_quoted(arg));
            return;
        }
        arg = trim(arg.substr(1, close - 1));
    }
    if (arg.empty()) {
        error(f, "#" + std::string(word) + " requires a file name");
        return;
    }
    include(f, arg, word == "tryinclude");
}

void Parser::include(Frame& f, std::string_view target, bool optional) {
    if (has_wildcard(target)) {
        // A glob that matches nothing is fine: conf.d/ may simply be empty.
        for (const auto& match : expand_glob(f.base, fs::path(target))) include_one(f, match);
        return;
    }
    fs::path path(target);
    if (path.is_relative()) path = f.base / path;
    path = path.lexically_normal();
    std::error_code ec;
    if (optional && !fs::exists(path, ec)) return;
    include_one(f, path);
}

void Parser::include_one(Frame& f, const fs::path& path) {
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(path, ec);
    if (ec) canon = fs::absolute(path, ec).lexically_normal();
    const std::string key = canon.string();

    if (std::find(stack_keys_.begin(), stack_keys_.end(), key) != stack_keys_.end()) {
        std::string chain;
        for (const Frame* fr : stack_) chain += fr->display + " -> ";
        error(f, "include loop: " + chain + path.string());
        return;
    }
    // The top-level file is depth 0, so this allows 32 levels of #include.
    if (static_cast<int>(stack_.size()) > kMaxIncludeDepth) {
        error(f, "includes nested too deeply (limit " + std::to_string(kMaxIncludeDepth) + ") at " +
                     single_quoted(path.string()));
        return;
    }
    std::string why;
    const auto text = read_whole_file(path, why);
    if (!text) {
        error(f, "cannot read include file " + single_quoted(path.string()) + ": " + why);
        return;
    }
    result.file.files_read.push_back(path.string());
    // Included lines continue in the current section, and a section opened
    // by the included file stays current afterwards (as in Asterisk).
    parse_buffer(*text, path.string(), path.parent_path(), key);
}

}  // namespace

// --- public parser API ---------------------------------------------------------

std::string Location::str() const {
    return line > 0 ? file + ":" + std::to_string(line) : file;
}

std::string Diagnostic::str() const {
    return where.str() + ": " + message;
}

const Variable* Section::find(std::string_view n) const {
    for (auto it = variables.rbegin(); it != variables.rend(); ++it)
        if (iequals(it->name, n)) return &*it;
    return nullptr;
}

std::vector<const Variable*> Section::all(std::string_view n) const {
    std::vector<const Variable*> out;
    for (const auto& v : variables)
        if (iequals(v.name, n)) out.push_back(&v);
    return out;
}

std::string Section::get(std::string_view n, std::string_view fallback) const {
    const Variable* v = find(n);
    return v ? v->value : std::string(fallback);
}

const Section* File::section(std::string_view n) const {
    for (const auto& s : sections)
        if (s.name == n) return &s;
    return nullptr;
}

ParseResult parse_file(const fs::path& path) {
    Parser p;
    p.result.file.path = path.string();
    std::string why;
    const auto text = read_whole_file(path, why);
    if (!text) {
        p.result.errors.push_back({{path.string(), 0}, "cannot read config file: " + why});
        return std::move(p.result);
    }
    p.result.file.files_read.push_back(path.string());
    std::error_code ec;
    fs::path canon = fs::weakly_canonical(path, ec);
    if (ec) canon = path;
    p.parse_buffer(*text, path.string(), path.parent_path(), canon.string());
    return std::move(p.result);
}

ParseResult parse_text(std::string_view text, std::string display_name, const fs::path& include_base) {
    Parser p;
    p.result.file.path = display_name;
    p.parse_buffer(text, display_name, include_base, std::string{});
    return std::move(p.result);
}

// --- option binding ------------------------------------------------------------

namespace {

// A value wholly enclosed in one pair of double quotes loses them;
// '"a" "b"' is not wholly enclosed and is kept as written.
std::string unquote(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"' &&
        v.substr(1, v.size() - 2).find('"') == std::string_view::npos)
        return std::string(v.substr(1, v.size() - 2));
    return std::string(v);
}

std::optional<long long> parse_integer(std::string_view s) {
    if (s.starts_with('+')) s.remove_prefix(1);
    long long v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<bool> parse_boolean(std::string_view s) {
    for (const char* t : {"yes", "true", "on", "1"})
        if (iequals(s, t)) return true;
    for (const char* t : {"no", "false", "off", "0"})
        if (iequals(s, t)) return false;
    return std::nullopt;
}

// Returns milliseconds; rejects negatives and overflow.
std::optional<long long> parse_duration(std::string_view s) {
    std::size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    if (digits == 0) return std::nullopt;
    long long n = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + digits, n);
    if (ec != std::errc{} || end != s.data() + digits) return std::nullopt;
    const std::string_view unit = trim(s.substr(digits));
    long long scale = 0;
    if (unit.empty() || iequals(unit, "s"))
        scale = 1000;
    else if (iequals(unit, "ms"))
        scale = 1;
    else if (iequals(unit, "m"))
        scale = 60'000;
    else if (iequals(unit, "h"))
        scale = 3'600'000;
    else
        return std::nullopt;
    if (n > std::numeric_limits<long long>::max() / scale) return std::nullopt;
    return n * scale;
}

std::vector<std::string> split_list(std::string_view s) {
    std::vector<std::string> items;
    while (true) {
        const std::size_t comma = s.find(',');
        const std::string_view item = trim(s.substr(0, comma));
        if (!item.empty()) items.emplace_back(item);
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
    }
    return items;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::string range_text(const OptionSpec& spec, const char* unit) {
    constexpr auto lo = std::numeric_limits<long long>::min();
    constexpr auto hi = std::numeric_limits<long long>::max();
    const auto n = [unit](long long v) { return std::to_string(v) + unit; };
    if (spec.min != lo && spec.max != hi) return " between " + n(spec.min) + " and " + n(spec.max);
    if (spec.min != lo) return " of at least " + n(spec.min);
    if (spec.max != hi) return " of at most " + n(spec.max);
    return "";
}

// What a valid value looks like, for error messages.
std::string expectation(const OptionSpec& spec) {
    switch (spec.type) {
        case OptionType::integer:
            return "an integer" + range_text(spec, "");
        case OptionType::boolean:
            return "a boolean (yes/no, true/false, on/off, 1/0)";
        case OptionType::duration:
            return "a duration such as 500ms, 30s, 5m or 2h" + range_text(spec, "ms");
        case OptionType::choice:
            return "one of " + join(spec.choices);
        case OptionType::string:
        case OptionType::list:
            break;
    }
    return "a string";
}

// Interprets `raw` according to `spec`, filling `v`. False if invalid.
template <typename Value>
bool interpret(const OptionSpec& spec, std::string_view raw, Value& v) {
    const std::string text = unquote(trim(raw));
    v.type = spec.type;
    v.text = text;
    v.number = 0;
    v.items.clear();
    switch (spec.type) {
        case OptionType::string:
            return true;
        case OptionType::list:
            v.items = split_list(text);
            return true;
        case OptionType::integer:
        case OptionType::duration: {
            const auto n = spec.type == OptionType::integer ? parse_integer(text) : parse_duration(text);
            if (!n || *n < spec.min || *n > spec.max) return false;
            v.number = *n;
            return true;
        }
        case OptionType::boolean: {
            const auto b = parse_boolean(text);
            if (!b) return false;
            v.number = *b ? 1 : 0;
            return true;
        }
        case OptionType::choice:
            for (const auto& c : spec.choices) {
                if (iequals(c, text)) {
                    v.text = c;
                    return true;
                }
            }
            return false;
    }
    return false;
}

}  // namespace

std::vector<Diagnostic> bind(const Section& s, std::span<const OptionSpec> schema, Options& out, bool allow_unknown) {
    out.values_.clear();
    // Defaults first; a schema that contradicts itself is a programming error.
    for (const auto& spec : schema) {
        if (spec.name.empty()) throw std::invalid_argument("config schema: option with empty name");
        if (spec.type == OptionType::choice && spec.choices.empty())
            throw std::invalid_argument("config schema: choice option '" + spec.name + "' has no choices");
        Options::Value v;
        v.type = spec.type;
        if (!spec.default_value.empty() && !interpret(spec, spec.default_value, v))
            throw std::invalid_argument("config schema: default '" + spec.default_value + "' of option '" + spec.name +
                                        "' is not " + expectation(spec));
        if (!out.values_.emplace(spec.name, std::move(v)).second)
            throw std::invalid_argument("config schema: option '" + spec.name + "' declared twice");
    }

    // One pass in file order. Only the effective (last) occurrence of an
    // option is validated; an unknown name is reported once per section.
    std::vector<Diagnostic> diags;
    std::vector<std::string> reported_unknown;
    for (const auto& var : s.variables) {
        const auto spec =
            std::find_if(schema.begin(), schema.end(), [&](const OptionSpec& o) { return iequals(o.name, var.name); });
        if (spec == schema.end()) {
            const bool seen = std::any_of(reported_unknown.begin(), reported_unknown.end(),
                                          [&](const std::string& n) { return iequals(n, var.name); });
            if (allow_unknown || seen) continue;
            reported_unknown.push_back(var.name);
            diags.push_back({var.where, "unknown option '" + var.name + "' in [" + s.name + "]"});
            continue;
        }
        if (s.find(var.name) != &var) continue;  // overridden further down
        Options::Value v;
        if (!interpret(*spec, var.value, v)) {
            // Keep the default so the module can still run (and report more).
            diags.push_back(
                {var.where, "option '" + spec->name + "' must be " + expectation(*spec) + ", got '" + var.value + "'"});
            continue;
        }
        v.set = true;
        v.where = var.where;
        out.values_[spec->name] = std::move(v);
    }
    for (const auto& spec : schema) {
        if (spec.required && !s.find(spec.name))
            diags.push_back({s.where, "required option '" + spec.name + "' missing in [" + s.name + "]"});
    }
    return diags;
}

const Options::Value& Options::lookup(std::string_view name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) throw std::out_of_range("config: option '" + std::string(name) + "' is not in the schema");
    return it->second;
}

const Options::Value& Options::lookup(std::string_view name, OptionType type) const {
    const Value& v = lookup(name);
    if (v.type != type)
        throw std::invalid_argument("config: option '" + std::string(name) + "' read with the wrong type");
    return v;
}

std::string Options::str(std::string_view name) const {
    return lookup(name).text;
}
long long Options::integer(std::string_view name) const {
    return lookup(name, OptionType::integer).number;
}
bool Options::boolean(std::string_view name) const {
    return lookup(name, OptionType::boolean).number != 0;
}
std::chrono::milliseconds Options::duration(std::string_view name) const {
    return std::chrono::milliseconds(lookup(name, OptionType::duration).number);
}
std::vector<std::string> Options::list(std::string_view name) const {
    return lookup(name, OptionType::list).items;
}
bool Options::has(std::string_view name) const {
    return lookup(name).set;
}
std::optional<Location> Options::where(std::string_view name) const {
    const Value& v = lookup(name);
    return v.set ? std::optional<Location>(v.where) : std::nullopt;
}

}  // namespace tandem::config
