#include "dialplan/dialplan.hpp"

#include "dialplan/substitute.hpp"

#include <algorithm>
#include <charconv>
#include <fmt/format.h>
#include <climits>
#include <cstdint>
#include <set>

namespace tandem::dialplan {

const Priority* Extension::find_priority(int n) const {
    auto it = std::lower_bound(priorities.begin(), priorities.end(), n,
                               [](const Priority& p, int v) { return p.number < v; });
    return it != priorities.end() && it->number == n ? &*it : nullptr;
}

int Extension::find_label(std::string_view label) const {
    for (auto& p : priorities)
        if (!p.label.empty() && p.label == label) return p.number;
    return 0;
}

bool Extension::matches_caller(std::string_view callerid) const {
    return cid.empty() || caller_matches(cid, callerid);
}

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Splits at the first comma outside parentheses.
std::pair<std::string_view, std::string_view> split_first(std::string_view s) {
    int depth = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '(')
            ++depth;
        else if (c == ')' && depth > 0)
            --depth;
        else if (c == ',' && depth == 0)
            return {s.substr(0, i), s.substr(i + 1)};
    }
    return {s, std::string_view{}};
}

// The characters a pattern matches literally before its first wildcard.
std::string literal_prefix(std::string_view pattern) {
    std::string out;
    for (char c : pattern.substr(1)) {
        if (c == '-') continue;
        if (std::string_view("XxZzNn[.!").find(c) != std::string_view::npos) break;
        out.push_back(c);
    }
    return out;
}

struct Builder {
    const Registry<Application>* apps;
    std::vector<config::Diagnostic>& problems;
    Snapshot& snap;
    // Per context: the extension being written by `same =>` and its last priority.
    std::string last_exten, last_cid;
    int last_priority = 0;
    bool have_last = false;

    void error(const config::Location& where, std::string msg) { problems.push_back({where, std::move(msg)}); }

    // (context, name, cid) -> extension, so that building is linear in the file size.
    std::unordered_map<std::string, Extension*> index;

    Extension& extension_for(Context& ctx, const std::string& name, const std::string& cid,
                             const config::Location& where) {
        auto key = ctx.name + '\0' + name + '\0' + cid;
        if (auto it = index.find(key); it != index.end()) return *it->second;
        auto& e = ctx.storage.emplace_back();
        index.emplace(std::move(key), &e);
        e.name = name;
        e.cid = cid;
        e.where = where;
        return e;
    }

    void add_exten(Context& ctx, const config::Variable& v, bool same) {
        std::string_view rest = v.value;
        std::string name, cid;
        if (!same) {
            auto [ext, r] = split_first(rest);
            rest = r;
            ext = trim(ext);
            auto slash = ext.find('/');
            // A slash after '_' may be part of the pattern only inside brackets; Asterisk
            // treats the first '/' as the caller-id separator.
            name = std::string(trim(ext.substr(0, slash)));
            if (slash != std::string_view::npos) cid = std::string(trim(ext.substr(slash + 1)));
            if (name.empty()) return error(v.where, "extension name is empty");
        } else {
            if (!have_last) return error(v.where, "'same =>' without a preceding 'exten =>' in this context");
            name = last_exten;
            cid = last_cid;
        }
        auto [prio_text, app_part] = split_first(rest);
        prio_text = trim(prio_text);
        if (prio_text.empty()) return error(v.where, "missing priority");
        // Priority: number, 'n', 's' (same), 'hint', each with an optional (label).
        std::string label;
        if (auto open = prio_text.find('('); open != std::string_view::npos) {
            auto close = prio_text.find(')', open);
            if (close == std::string_view::npos || close != prio_text.size() - 1)
                return error(v.where, fmt::format("malformed priority label in '{}'", prio_text));
            label = std::string(prio_text.substr(open + 1, close - open - 1));
            prio_text = trim(prio_text.substr(0, open));
        }
        bool continuing = have_last && name == last_exten && cid == last_cid;
        int number = 0;
        if (prio_text == "hint") {
            auto& e = extension_for(ctx, name, cid, v.where);
            e.hint = std::string(trim(app_part));
            return;
        } else if (prio_text == "n") {
            if (!continuing)
                return error(v.where, fmt::format("priority 'n' of '{}' follows no earlier priority", name));
            number = last_priority + 1;
        } else if (prio_text == "s") {
            if (!continuing)
                return error(v.where, fmt::format("priority 's' of '{}' follows no earlier priority", name));
            number = last_priority;
        } else if (prio_text.size() > 2 && prio_text.substr(0, 2) == "n+") {
            int add = 0;
            auto t = prio_text.substr(2);
            auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), add);
            if (!continuing || ec != std::errc() || p != t.data() + t.size() || add < 1)
                return error(v.where, fmt::format("bad priority '{}'", prio_text));
            number = last_priority + add;
        } else {
            auto [p, ec] = std::from_chars(prio_text.data(), prio_text.data() + prio_text.size(), number);
            if (ec != std::errc() || p != prio_text.data() + prio_text.size() || number < 1)
                return error(v.where,
                             fmt::format("priority must be a number > 0, 'n', 's' or 'hint', got '{}'", prio_text));
        }
        // Application: App(args), App, or the old App,args form.
        auto app_text = trim(app_part);
        std::string app, args;
        auto paren = app_text.find('(');
        auto comma = app_text.find(',');
        if (paren != std::string_view::npos && (comma == std::string_view::npos || paren < comma)) {
            app = std::string(trim(app_text.substr(0, paren)));
            auto close = app_text.rfind(')');
            if (close == std::string_view::npos || close < paren)
                return error(v.where, fmt::format("missing ')' after the arguments of {}", app));
            if (!trim(app_text.substr(close + 1)).empty())
                return error(v.where, fmt::format("unexpected text after {}(...)", app));
            args = std::string(app_text.substr(paren + 1, close - paren - 1));
        } else if (comma != std::string_view::npos) {
            app = std::string(trim(app_text.substr(0, comma)));
            args = std::string(app_text.substr(comma + 1));
        } else {
            app = std::string(app_text);
        }
        if (app.empty()) app = "NoOp";
        if (!std::all_of(app.begin(), app.end(),
                         [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }))
            return error(v.where, fmt::format("bad application name '{}'", app));
        if (apps) {
            auto a = apps->find(app);
            if (!a) return error(v.where, fmt::format("unknown application '{}'", app));
            int n = static_cast<int>(split_args(args).size());
            if (n < a->min_args || (a->max_args >= 0 && n > a->max_args)) {
                std::string want = a->max_args < 0              ? fmt::format("at least {}", a->min_args)
                                   : a->min_args == a->max_args ? fmt::format("{}", a->min_args)
                                                                : fmt::format("{} to {}", a->min_args, a->max_args);
                return error(v.where, fmt::format("{} takes {} argument{}, got {} (syntax: {})", app, want,
                                                  a->max_args == 1 ? "" : "s", n, a->syntax));
            }
        }
        auto& e = extension_for(ctx, name, cid, v.where);
        if (!e.pattern && name.size() > 1 && name[0] == '_') {
            std::string perr;
            e.pattern = Pattern::compile(name, &perr);
            if (!e.pattern) return error(v.where, fmt::format("bad pattern '{}': {}", name, perr));
        }
        for (auto& p : e.priorities)
            if (p.number == number)
                return error(v.where, fmt::format("duplicate priority {} of extension '{}' (first at {})", number, name,
                                                  p.where.str()));
        if (!label.empty() && e.find_label(label))
            return error(v.where, fmt::format("duplicate label '{}' in extension '{}'", label, name));
        e.priorities.push_back({number, label, std::move(app), std::move(args), v.where});
        last_exten = name;
        last_cid = cid;
        last_priority = number;
        have_last = true;
    }

    void finish(Context& ctx) {
        for (auto& e : ctx.storage) {
            std::sort(e.priorities.begin(), e.priorities.end(),
                      [](const Priority& a, const Priority& b) { return a.number < b.number; });
            if (e.pattern)
                ctx.patterns.push_back(&e);
            else
                ctx.exact[strip_dashes(e.name)].push_back(&e);
        }
        // Caller-id specific variants are tried before the catch-all one.
        for (auto& [n, list] : ctx.exact)
            std::stable_sort(list.begin(), list.end(),
                             [](const Extension* a, const Extension* b) { return !a->cid.empty() && b->cid.empty(); });
        std::stable_sort(ctx.patterns.begin(), ctx.patterns.end(), [](const Extension* a, const Extension* b) {
            int c = compare_extensions(a->name, b->name);
            if (c != 0) return c < 0;
            return !a->cid.empty() && b->cid.empty();
        });
        for (std::uint32_t i = 0; i < ctx.patterns.size(); ++i) {
            auto prefix = literal_prefix(ctx.patterns[i]->name);
            if (std::find(ctx.prefix_lengths.begin(), ctx.prefix_lengths.end(), prefix.size()) ==
                ctx.prefix_lengths.end())
                ctx.prefix_lengths.push_back(prefix.size());
            ctx.pattern_index[prefix].push_back(i);
        }
        std::sort(ctx.prefix_lengths.begin(), ctx.prefix_lengths.end());
        snap.extension_count += ctx.storage.size();
    }
};

}  // namespace

std::shared_ptr<const Snapshot> compile(const config::File& file, const Registry<Application>* apps,
                                        std::vector<config::Diagnostic>& problems) {
    auto snap = std::make_shared<Snapshot>();
    snap->files = file.files_read;
    auto before = problems.size();
    Builder b{apps, problems, *snap, {}, {}, 0, false, {}};
    for (auto& s : file.sections) {
        if (s.is_template) continue;
        if (s.name.empty()) {
            for (auto& v : s.variables) b.error(v.where, fmt::format("'{}' outside of any [context]", v.name));
            continue;
        }
        if (s.name == "general") {
            static const std::set<std::string> known = {"static",          "writeprotect",         "autofallthrough",
                                                        "clearglobalvars", "extenpatternmatchnew", "userscontext",
                                                        "priorityjumping"};
            for (auto& v : s.variables)
                if (!known.count(v.name)) b.error(v.where, fmt::format("unknown [general] option '{}'", v.name));
            continue;
        }
        if (s.name == "globals") {
            for (auto& v : s.variables) snap->globals.emplace_back(v.name, v.value);
            continue;
        }
        auto [it, inserted] = snap->contexts.try_emplace(s.name);
        auto& ctx = it->second;
        if (inserted) {
            ctx.name = s.name;
            ctx.where = s.where;
        }
        b.have_last = false;
        for (auto& v : s.variables) {
            if (v.name == "exten") {
                b.add_exten(ctx, v, false);
            } else if (v.name == "same") {
                b.add_exten(ctx, v, true);
            } else if (v.name == "include") {
                auto [name, when] = split_first(v.value);
                Include inc{std::string(trim(name)), std::nullopt, v.where};
                if (!when.empty()) {
                    std::string err;
                    inc.when = TimeSpec::parse(trim(when), err);
                    if (!inc.when) {
                        b.error(v.where, fmt::format("include of '{}': {}", inc.context, err));
                        continue;
                    }
                } else if (auto bar = inc.context.find('|'); bar != std::string::npos) {
                    // Old syntax: include => ctx|times|weekdays|mdays|months
                    std::string err;
                    inc.when = TimeSpec::parse(inc.context.substr(bar + 1), err);
                    inc.context.resize(bar);
                    if (!inc.when) {
                        b.error(v.where, fmt::format("include of '{}': {}", inc.context, err));
                        continue;
                    }
                }
                if (inc.context.empty()) {
                    b.error(v.where, "include without a context name");
                    continue;
                }
                ctx.includes.push_back(std::move(inc));
            } else if (v.name == "ignorepat") {
                ctx.ignorepats.push_back(std::string(trim(v.value)));
            } else if (v.name == "switch" || v.name == "eswitch" || v.name == "lswitch") {
                b.error(v.where, "switches are not supported; use include => or a Dial() to the other system");
            } else {
                b.error(v.where, fmt::format("unknown dialplan statement '{}' in [{}]", v.name, s.name));
            }
        }
    }
    for (auto& [n, ctx] : snap->contexts) b.finish(ctx);
    for (auto& [n, ctx] : snap->contexts)
        for (auto& inc : ctx.includes)
            if (!snap->contexts.count(inc.context))
                snap->warnings.push_back(fmt::format("{}: warning: [{}] includes '{}', which does not exist",
                                                     inc.where.str(), n, inc.context));
    if (problems.size() != before) return nullptr;
    return snap;
}

std::shared_ptr<const Snapshot> load(const std::filesystem::path& path, const Registry<Application>& apps,
                                     std::vector<config::Diagnostic>& problems) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        problems.push_back({{path.string(), 0}, "dialplan file not found"});
        return nullptr;
    }
    auto parsed = config::parse_file(path);
    for (auto& e : parsed.errors) problems.push_back(e);
    // Compile even a file with syntax errors, so that one check reports every problem.
    auto plan = compile(parsed.file, &apps, problems);
    return parsed.ok() ? plan : nullptr;
}

namespace {

const Extension* search_context(const Context& ctx, std::string_view exten, std::string_view callerid) {
    std::string stripped;
    std::string_view key = exten;
    if (exten.find('-') != std::string_view::npos) {
        stripped = strip_dashes(exten);
        key = stripped;
    }
    if (auto e = ctx.exact.find(key); e != ctx.exact.end())
        for (auto* x : e->second)
            if (x->matches_caller(callerid)) return x;
    // The first pattern in match order among the buckets of the number's prefixes.
    std::uint32_t best = UINT32_MAX;
    for (auto len : ctx.prefix_lengths) {
        if (len > key.size()) break;
        auto bucket = ctx.pattern_index.find(key.substr(0, len));
        if (bucket == ctx.pattern_index.end()) continue;
        for (auto i : bucket->second) {
            if (i >= best) break;
            auto* x = ctx.patterns[i];
            if (x->pattern->matches(exten) && x->matches_caller(callerid)) {
                best = i;
                break;
            }
        }
    }
    return best == UINT32_MAX ? nullptr : ctx.patterns[best];
}

struct Seen {
    const Context* items[64];
    std::size_t size = 0;
    bool contains(const Context* c) const { return std::find(items, items + size, c) != items + size; }
};

const Extension* search(const Snapshot& plan, std::string_view context, std::string_view exten,
                        std::string_view callerid, std::chrono::system_clock::time_point now, Seen& seen,
                        const Context** found_in) {
    auto it = plan.contexts.find(context);
    if (it == plan.contexts.end()) return nullptr;
    const Context& ctx = it->second;
    if (seen.contains(&ctx) || seen.size == std::size(seen.items)) return nullptr;
    seen.items[seen.size++] = &ctx;
    if (auto* x = search_context(ctx, exten, callerid)) {
        if (found_in) *found_in = &ctx;
        return x;
    }
    for (auto& inc : ctx.includes) {
        if (inc.when && !inc.when->matches(now)) continue;
        if (auto* x = search(plan, inc.context, exten, callerid, now, seen, found_in)) return x;
    }
    return nullptr;
}
}  // namespace

const Extension* find_extension(const Snapshot& plan, std::string_view context, std::string_view exten,
                                std::string_view callerid, std::chrono::system_clock::time_point now,
                                const Context** found_in) {
    Seen seen;
    return search(plan, context, exten, callerid, now, seen, found_in);
}

namespace {

void match_digits_in(const Snapshot& plan, std::string_view context, std::string_view digits, std::string_view callerid,
                     std::chrono::system_clock::time_point now, Seen& seen, DigitsMatch& out) {
    auto it = plan.contexts.find(context);
    if (it == plan.contexts.end()) return;
    const Context& ctx = it->second;
    if (seen.contains(&ctx) || seen.size == std::size(seen.items)) return;
    seen.items[seen.size++] = &ctx;
    // Every extension is looked at: a prompt's digits are few, and so are the
    // extensions of an IVR context; the prefix index only helps complete numbers.
    const std::string dialed = strip_dashes(digits);
    for (const Extension& x : ctx.storage) {
        if (!x.matches_caller(callerid)) continue;
        MatchMore m = MatchMore::none;
        if (x.pattern) {
            m = x.pattern->can_match(digits);
        } else {
            // A plain name: the digits must be the name or its beginning.
            const std::string name = strip_dashes(x.name);
            if (name.starts_with(dialed)) m = name.size() == dialed.size() ? MatchMore::full : MatchMore::more;
        }
        if (m == MatchMore::none) continue;
        out.can_match = true;
        if (wants_more(m)) out.match_more = true;
        if (out.match_more) return;
    }
    for (auto& inc : ctx.includes) {
        if (inc.when && !inc.when->matches(now)) continue;
        match_digits_in(plan, inc.context, digits, callerid, now, seen, out);
        if (out.match_more) return;
    }
}

}  // namespace

DigitsMatch match_digits(const Snapshot& plan, std::string_view context, std::string_view digits,
                         std::string_view callerid, std::chrono::system_clock::time_point now) {
    DigitsMatch out;
    Seen seen;
    match_digits_in(plan, context, digits, callerid, now, seen, out);
    return out;
}

GotoTarget parse_goto(std::string_view text) {
    auto parts = split_args(text);
    GotoTarget t;
    if (parts.size() == 1) {
        t.priority = parts[0];
    } else if (parts.size() == 2) {
        t.exten = parts[0];
        t.priority = parts[1];
    } else if (parts.size() >= 3) {
        t.context = parts[0];
        t.exten = parts[1];
        t.priority = parts[2];
    }
    return t;
}

}  // namespace tandem::dialplan
