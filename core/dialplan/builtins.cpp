// Built-in dialplan applications and functions, and the dialplan CLI commands.
#include "dialplan/dialplan.hpp"
#include "dialplan/engine.hpp"
#include "dialplan/expr.hpp"
#include "dialplan/substitute.hpp"
#include "dialplan/timespec.hpp"
#include "runtime/core_impl.hpp"

#include <tandem/kvstore.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <regex.h>

#include <charconv>
#include <cmath>
#include <mutex>
#include <random>

namespace asio = boost::asio;

namespace tandem::dialplan {

namespace {

using namespace std::chrono_literals;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool truthy(std::string_view s) {
    s = trim(s);
    return !s.empty() && s != "0";
}

std::optional<double> to_number(std::string_view s) {
    s = trim(s);
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// Splits "cond?a:b" at the first top-level '?' and then ':'.
struct Conditional {
    std::string cond, if_true, if_false;
    bool has_question = false;
};
Conditional split_conditional(std::string_view s) {
    Conditional c;
    int depth = 0;
    std::size_t q = std::string_view::npos;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '(' || s[i] == '[') ++depth;
        if ((s[i] == ')' || s[i] == ']') && depth > 0) --depth;
        if (s[i] == '?' && depth == 0) {
            q = i;
            break;
        }
    }
    if (q == std::string_view::npos) {
        c.cond = std::string(s);
        return c;
    }
    c.has_question = true;
    c.cond = std::string(s.substr(0, q));
    auto rest = s.substr(q + 1);
    depth = 0;
    for (std::size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '(' || rest[i] == '[') ++depth;
        if ((rest[i] == ')' || rest[i] == ']') && depth > 0) --depth;
        if (rest[i] == ':' && depth == 0) {
            c.if_true = std::string(rest.substr(0, i));
            c.if_false = std::string(rest.substr(i + 1));
            return c;
        }
    }
    c.if_true = std::string(rest);
    return c;
}

// Goto-style target "[[context,]exten,]priority|label" → a jump on the channel.
bool jump(Channel& c, std::string_view target) {
    auto t = parse_goto(target);
    auto prio = std::string(trim(t.priority));
    if (prio.empty()) return false;
    int n = 0;
    auto [p, ec] = std::from_chars(prio.data(), prio.data() + prio.size(), n);
    std::string ctx(trim(t.context)), ext(trim(t.exten));
    if (ec == std::errc() && p == prio.data() + prio.size() && n > 0)
        c.jump_to(ctx, ext, n);
    else
        c.jump_to(ctx, ext, 0, prio);
    return true;
}

std::chrono::milliseconds seconds_arg(std::string_view s, std::chrono::milliseconds fallback) {
    auto v = to_number(s);
    if (!v || *v < 0) return fallback;
    return std::chrono::milliseconds(static_cast<long long>(*v * 1000.0));
}

struct Registrar {
    CoreImpl& core;
    std::vector<Registration>& out;
    void app(std::string name, Application a) {
        out.push_back(core.applications().add(std::move(name), std::move(a), &core.core_use()));
    }
    void fn(std::string name, Function f) {
        out.push_back(core.functions().add(std::move(name), std::move(f), &core.core_use()));
    }
};

void register_apps(Registrar& r) {
    CoreImpl& core = r.core;

    r.app("Answer", {"Answer a channel if ringing", "Answer([delay])",
                     "Answers the channel, then waits `delay` milliseconds if given.", 0, 1,
                     [](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                         if (!co_await c.answer()) co_return AppResult::hangup;
                         if (auto d = to_number(a[0]); d && *d > 0)
                             co_await c.sleep(std::chrono::milliseconds(static_cast<long long>(*d)));
                         co_return AppResult::next;
                     }});

    r.app("Hangup", {"Hang up the calling channel", "Hangup([causecode])",
                     "Hangs up with the given Q.850 cause (a number or a name such as USER_BUSY); 16 by default.", 0, 1,
                     [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                         int cause = a[0].empty() ? cause::normal_clearing : cause::parse(a[0]);
                         if (!cause) {
                             core.log().warning("{}: Hangup: unknown cause '{}', using 16", c.name(), a[0]);
                             cause = cause::normal_clearing;
                         }
                         if (!c.hangup_cause()) c.set_hangup_cause(cause);
                         co_return AppResult::hangup;
                     }});

    r.app("NoOp", {"Do nothing", "NoOp([text])", "Does nothing; its argument is substituted, which helps debugging.", 0,
                   -1, [](Channel&, const AppArgs&) -> awaitable<AppResult> { co_return AppResult::next; }});

    r.app("Wait", {"Wait for a number of seconds", "Wait(seconds)",
                   "Waits for the given number of seconds (decimals allowed), or until hangup.", 1, 1,
                   [](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                       auto d = seconds_arg(a[0], 0ms);
                       if (!co_await c.sleep(d)) co_return AppResult::hangup;
                       co_return AppResult::next;
                   }});

    r.app("Goto", {"Jump to a particular priority, extension or context", "Goto([[context,]extension,]priority)",
                   "Continues at the given place; priority may be a number or a label.", 1, 3,
                   [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                       if (!jump(c, a.raw)) {
                           core.log().warning("{}: Goto: bad target '{}'", c.name(), a.raw);
                           co_return AppResult::hangup;
                       }
                       co_return AppResult::next;
                   }});

    r.app("GotoIf", {"Conditional goto", "GotoIf(condition?[labeliftrue]:[labeliffalse])",
                     "Jumps to labeliftrue when the condition is true (non-empty and not 0), else to "
                     "labeliffalse; an empty label continues at the next priority.",
                     1, -1, [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                         auto cond = split_conditional(a.raw);
                         if (!cond.has_question) {
                             core.log().warning("{}: GotoIf needs condition?label1:label2", c.name());
                             co_return AppResult::next;
                         }
                         auto& target = truthy(cond.cond) ? cond.if_true : cond.if_false;
                         if (!trim(target).empty()) jump(c, target);
                         co_return AppResult::next;
                     }});

    r.app("GotoIfTime",
          {"Conditional goto on the current time",
           "GotoIfTime(times,weekdays,mdays,months[,timezone]?[labeliftrue]:[labeliffalse])",
           "Jumps when the current time matches, e.g. GotoIfTime(9:00-17:00,mon-fri,*,*?open:closed).", 1, -1,
           [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
               auto cond = split_conditional(a.raw);
               std::string err;
               auto spec = TimeSpec::parse(cond.cond, err);
               if (!spec || !cond.has_question) {
                   core.log().warning("{}: GotoIfTime: {}", c.name(), spec ? "needs ?label1:label2" : err);
                   co_return AppResult::next;
               }
               auto& target = spec->matches(std::chrono::system_clock::now()) ? cond.if_true : cond.if_false;
               if (!trim(target).empty()) jump(c, target);
               co_return AppResult::next;
           }});

    r.app("Gosub", {"Jump to a subroutine, which returns with Return()",
                    "Gosub([[context,]exten,]priority[(arg1[,...][,argN])])",
                    "Saves the return position, sets ${ARG1}..${ARGn} as local variables and jumps.", 1, -1,
                    [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                        std::string_view raw = a.raw;
                        std::string_view target = raw, arglist;
                        if (auto open = raw.find('('); open != std::string_view::npos) {
                            auto close = raw.rfind(')');
                            if (close == std::string_view::npos || close < open) {
                                core.log().warning("{}: Gosub: missing ')' in '{}'", c.name(), raw);
                                co_return AppResult::hangup;
                            }
                            target = raw.substr(0, open);
                            arglist = raw.substr(open + 1, close - open - 1);
                        }
                        if (c.gosub_stack().size() >= 100) {
                            core.log().error("{}: Gosub: stack overflow (100 levels)", c.name());
                            co_return AppResult::hangup;
                        }
                        Channel::StackFrame f{c.context(), c.exten(), c.priority() + 1, {}, {}, 0};
                        auto args = split_args(arglist);
                        // Save whatever ARGn and LOCAL variables the caller had; restore on Return.
                        std::size_t prev = c.gosub_stack().empty() ? 0 : c.gosub_stack().back().arg_count;
                        for (std::size_t i = 1; i <= std::max(prev, args.size()); ++i) {
                            auto name = "ARG" + std::to_string(i);
                            if (auto v = c.variable(name)) f.saved_locals.push_back({name, *v, 0});
                            f.local_names.push_back(name);
                        }
                        f.arg_count = args.size();
                        for (std::size_t i = 1; i <= std::max(prev, args.size()); ++i)
                            c.unset_variable("ARG" + std::to_string(i));
                        for (std::size_t i = 0; i < args.size(); ++i)
                            c.set_variable("ARG" + std::to_string(i + 1), args[i]);
                        c.gosub_stack().push_back(std::move(f));
                        if (!jump(c, target)) {
                            core.log().warning("{}: Gosub: bad target '{}'", c.name(), target);
                            co_return AppResult::hangup;
                        }
                        co_return AppResult::next;
                    }});

    r.app("Return", {"Return from a Gosub", "Return([value])",
                     "Returns to the priority after the matching Gosub, setting ${GOSUB_RETVAL}.", 0, 1,
                     [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                         auto& st = c.gosub_stack();
                         if (st.empty()) {
                             core.log().warning("{}: Return without Gosub", c.name());
                             co_return AppResult::hangup;
                         }
                         auto f = std::move(st.back());
                         st.pop_back();
                         for (auto& n : f.local_names) c.unset_variable(n);
                         for (auto& v : f.saved_locals) c.set_variable(v.name, v.value);
                         c.set_variable("GOSUB_RETVAL", a.raw);
                         c.jump_to(f.context, f.exten, f.priority);
                         co_return AppResult::next;
                     }});

    r.app("Set", {"Set a channel variable or function value", "Set(name=value)",
                  "Sets a variable (`_name`/`__name` are inherited by channels this one calls) or writes a "
                  "function such as DB(family/key)=value or GLOBAL(name)=value.",
                  1, -1, [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                      auto eq = a.raw.find('=');
                      if (eq == std::string::npos) {
                          core.log().warning("{}: Set requires name=value, got '{}'", c.name(), a.raw);
                          co_return AppResult::next;
                      }
                      auto name = std::string(trim(std::string_view(a.raw).substr(0, eq)));
                      auto value = a.raw.substr(eq + 1);
                      if (auto open = name.find('('); open != std::string::npos && name.back() == ')') {
                          auto fname = name.substr(0, open);
                          auto fargs = name.substr(open + 1, name.size() - open - 2);
                          auto fn = core.functions().find(fname);
                          std::string err;
                          if (!fn || !fn->write) {
                              core.log().warning("{}: Set: function '{}' {}", c.name(), fname,
                                                 fn ? "is read-only" : "does not exist");
                          } else if (!fn->write(&c, fargs, value, err)) {
                              core.log().warning("{}: Set {}: {}", c.name(), name, err);
                          }
                      } else {
                          c.set_variable(name, value);
                      }
                      co_return AppResult::next;
                  }});

    r.app("Verbose", {"Send a message to the log", "Verbose([level,]message)",
                      "Logs the message at info level (the numeric verbosity level is accepted for compatibility).", 0,
                      -1, [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                          std::string_view msg = a.raw;
                          if (a.size() >= 2 && to_number(a[0]))
                              msg = std::string_view(a.raw).substr(a.raw.find(',') + 1);
                          core.log().info("{}: {}", c.name(), msg);
                          co_return AppResult::next;
                      }});

    r.app("Log", {"Send a message to the log at a level", "Log(level,message)",
                  "level is ERROR, WARNING, NOTICE, DEBUG, VERBOSE or DTMF.", 2, -1,
                  [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
                      std::string lvl(trim(a[0]));
                      for (auto& ch : lvl) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                      auto msg = std::string_view(a.raw).substr(a.raw.find(',') + 1);
                      LogLevel l = lvl == "ERROR"     ? LogLevel::error
                                   : lvl == "WARNING" ? LogLevel::warning
                                   : lvl == "NOTICE"  ? LogLevel::notice
                                   : lvl == "DEBUG"   ? LogLevel::debug
                                                      : LogLevel::info;
                      core.log().write(l, fmt::format("{}: {}", c.name(), msg));
                      co_return AppResult::next;
                  }});

    r.app("ExecIf",
          {"Run an application if a condition is true", "ExecIf(expression?appiftrue(args)[:appiffalse(args)])",
           "Runs appiftrue when the expression is true, else appiffalse if given.", 1, -1,
           [&core](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
               auto cond = split_conditional(a.raw);
               if (!cond.has_question) {
                   core.log().warning("{}: ExecIf needs expression?app(args)", c.name());
                   co_return AppResult::next;
               }
               std::string call(trim(truthy(cond.cond) ? cond.if_true : cond.if_false));
               if (call.empty()) co_return AppResult::next;
               std::string app = call, args;
               if (auto open = call.find('('); open != std::string::npos) {
                   app = call.substr(0, open);
                   auto close = call.rfind(')');
                   args = call.substr(open + 1, (close == std::string::npos ? call.size() : close) - open - 1);
               }
               co_return co_await exec_app(core, c, app, args);
           }});

    r.app("Progress", {"Indicate progress (early media)", "Progress()", "Sends a progress indication (SIP 183).", 0, 0,
                       [](Channel& c, const AppArgs&) -> awaitable<AppResult> {
                           c.indicate(Indication::progress);
                           co_return AppResult::next;
                       }});

    r.app("Ringing", {"Indicate ringing", "Ringing()", "Tells the caller the call is ringing (SIP 180).", 0, 0,
                      [](Channel& c, const AppArgs&) -> awaitable<AppResult> {
                          c.indicate(Indication::ringing);
                          co_return AppResult::next;
                      }});

    auto tone_app = [](Indication ind, int cause) {
        return [ind, cause](Channel& c, const AppArgs& a) -> awaitable<AppResult> {
            c.indicate(ind);
            if (!c.hangup_cause()) c.set_hangup_cause(cause);
            // Wait for the caller to hang up, or the timeout (Asterisk: forever by default).
            auto d = a[0].empty() ? std::chrono::milliseconds(std::chrono::hours(24)) : seconds_arg(a[0], 0ms);
            co_await c.sleep(d);
            co_return AppResult::hangup;
        };
    };
    r.app("Busy", {"Indicate busy and wait for hangup", "Busy([timeout])",
                   "Sends a busy indication (SIP 486) and waits for the caller to hang up or `timeout` seconds.", 0, 1,
                   tone_app(Indication::busy, cause::user_busy)});
    r.app("Congestion", {"Indicate congestion and wait for hangup", "Congestion([timeout])",
                         "Sends a congestion indication (SIP 503) and waits for hangup or `timeout` seconds.", 0, 1,
                         tone_app(Indication::congestion, cause::normal_circuit_congestion)});
}

void register_functions(Registrar& r) {
    CoreImpl& core = r.core;

    r.fn("CALLERID",
         {"Caller ID of the channel", "CALLERID(datatype)", "datatype is name, num, all (\"name\" <num>), dnid or ani.",
          [](Channel* c, std::string_view args, std::string& err) -> std::optional<std::string> {
              if (!c) {
                  err = "CALLERID needs a channel";
                  return std::nullopt;
              }
              auto f = trim(args);
              if (f == "name") return c->caller().name;
              if (f == "num" || f == "number" || f == "ani") return c->caller().number;
              if (f == "dnid") return c->dialed_number();
              if (f == "all")
                  return c->caller().name.empty() ? c->caller().number
                                                  : "\"" + c->caller().name + "\" <" + c->caller().number + ">";
              err = "CALLERID: unknown datatype '" + std::string(f) + "'";
              return std::nullopt;
          },
          [](Channel* c, std::string_view args, std::string_view value, std::string& err) {
              if (!c) return false;
              auto f = trim(args);
              if (f == "name")
                  c->caller().name = std::string(value);
              else if (f == "num" || f == "number" || f == "ani")
                  c->caller().number = std::string(value);
              else if (f == "dnid")
                  c->dialed_number() = std::string(value);
              else if (f == "all") {
                  auto lt = value.find('<'), gt = value.find('>');
                  if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt) {
                      auto name = trim(value.substr(0, lt));
                      if (name.size() >= 2 && name.front() == '"' && name.back() == '"')
                          name = name.substr(1, name.size() - 2);
                      c->caller().name = std::string(name);
                      c->caller().number = std::string(value.substr(lt + 1, gt - lt - 1));
                  } else {
                      c->caller().number = std::string(trim(value));
                  }
              } else {
                  err = "CALLERID: unknown datatype '" + std::string(f) + "'";
                  return false;
              }
              return true;
          }});

    r.fn("IF", {"Conditional value", "IF(expression?truevalue:falsevalue)",
                "Returns truevalue when the expression is true, else falsevalue.",
                [](Channel*, std::string_view args, std::string&) -> std::optional<std::string> {
                    auto c = split_conditional(args);
                    if (!c.has_question) return std::string();
                    return truthy(c.cond) ? c.if_true : c.if_false;
                }});

    r.fn("LEN", {"Length of a string", "LEN(string)", "Returns the number of bytes in the string.",
                 [](Channel*, std::string_view args, std::string&) -> std::optional<std::string> {
                     return std::to_string(args.size());
                 }});

    r.fn("ISNULL", {"Whether a string is empty", "ISNULL(string)", "Returns 1 if the string is empty, else 0.",
                    [](Channel*, std::string_view args, std::string&) -> std::optional<std::string> {
                        return args.empty() ? "1" : "0";
                    }});

    r.fn("CUT", {"Slice a string on a delimiter", "CUT(varname,char-delim,range-spec)",
                 "Splits the variable's value on the delimiter and returns the fields in range-spec "
                 "(e.g. 2, 1-3, 2-, -2, or 1&3).",
                 [&core](Channel* c, std::string_view args, std::string& err) -> std::optional<std::string> {
                     auto a = split_args(args);
                     if (a.size() < 3) {
                         err = "CUT needs varname,delimiter,fields";
                         return std::nullopt;
                     }
                     std::string value = c ? c->variable(a[0]).value_or("") : core.global_variable(a[0]).value_or("");
                     char delim = a[1].empty() ? '-' : (a[1] == "\\," ? ',' : a[1][0]);
                     std::vector<std::string_view> fields;
                     std::string_view v = value;
                     for (;;) {
                         auto p = v.find(delim);
                         fields.push_back(v.substr(0, p));
                         if (p == std::string_view::npos) break;
                         v.remove_prefix(p + 1);
                     }
                     std::string out;
                     bool first = true;
                     for (auto part : split_args(a[2], '&')) {
                         int from = 1, to;
                         auto dash = part.find('-');
                         auto parse = [](std::string_view s, int fb) {
                             int n = fb;
                             if (!s.empty()) std::from_chars(s.data(), s.data() + s.size(), n);
                             return n;
                         };
                         if (dash == std::string::npos) {
                             from = to = parse(part, 1);
                         } else {
                             from = parse(std::string_view(part).substr(0, dash), 1);
                             to = parse(std::string_view(part).substr(dash + 1), static_cast<int>(fields.size()));
                         }
                         for (int i = std::max(from, 1); i <= to && i <= static_cast<int>(fields.size()); ++i) {
                             if (!first) out.push_back(delim);
                             out += fields[static_cast<std::size_t>(i - 1)];
                             first = false;
                         }
                     }
                     return out;
                 }});

    r.fn("REGEX", {"Match a regular expression", "REGEX(\"regular expression\" string)",
                   "Returns 1 if the string matches the POSIX extended regular expression, else 0.",
                   [](Channel*, std::string_view args, std::string& err) -> std::optional<std::string> {
                       auto s = trim(args);
                       if (s.empty() || s.front() != '"') {
                           err = "REGEX needs \"regex\" string";
                           return std::nullopt;
                       }
                       auto close = s.find('"', 1);
                       if (close == std::string_view::npos) {
                           err = "REGEX: missing closing quote";
                           return std::nullopt;
                       }
                       std::string re(s.substr(1, close - 1));
                       std::string subject(s.substr(close + 1));
                       if (!subject.empty() && subject.front() == ' ') subject.erase(0, 1);
                       regex_t rx;
                       if (int rc = regcomp(&rx, re.c_str(), REG_EXTENDED | REG_NOSUB); rc != 0) {
                           char buf[256];
                           regerror(rc, &rx, buf, sizeof buf);
                           err = std::string("REGEX: bad expression: ") + buf;
                           return std::nullopt;
                       }
                       bool m = regexec(&rx, subject.c_str(), 0, nullptr, 0) == 0;
                       regfree(&rx);
                       return m ? "1" : "0";
                   }});

    auto family_key = [](std::string_view args, std::string& fam, std::string& key, std::string& err) {
        args = trim(args);
        auto slash = args.find('/');
        if (slash == std::string_view::npos || slash == 0 || slash + 1 == args.size()) {
            err = "expected family/key, got '" + std::string(args) + "'";
            return false;
        }
        fam = std::string(args.substr(0, slash));
        key = std::string(args.substr(slash + 1));
        return true;
    };
    r.fn("DB", {"Read or write the key/value store", "DB(family/key)",
                "Reads the value stored at family/key (empty if none); Set(DB(family/key)=value) stores it. "
                "Per-user state such as DND and call forwarding lives here.",
                [&core, family_key](Channel* c, std::string_view args, std::string& err) -> std::optional<std::string> {
                    std::string fam, key;
                    if (!family_key(args, fam, key, err)) return std::nullopt;
                    auto v = core.kv().get(fam, key);
                    if (c) c->set_variable("DB_RESULT", v.value_or(""));
                    return v.value_or("");
                },
                [&core, family_key](Channel*, std::string_view args, std::string_view value, std::string& err) {
                    std::string fam, key;
                    if (!family_key(args, fam, key, err)) return false;
                    return core.kv().put(fam, key, value, &err);
                }});
    r.fn("DB_EXISTS",
         {"Whether a key exists in the key/value store", "DB_EXISTS(family/key)",
          "Returns 1 and sets ${DB_RESULT} when family/key exists, else 0.",
          [&core, family_key](Channel* c, std::string_view args, std::string& err) -> std::optional<std::string> {
              std::string fam, key;
              if (!family_key(args, fam, key, err)) return std::nullopt;
              auto v = core.kv().get(fam, key);
              if (c && v) c->set_variable("DB_RESULT", *v);
              return v ? "1" : "0";
          }});
    r.fn("DB_DELETE",
         {"Read and delete a key of the key/value store", "DB_DELETE(family/key)",
          "Returns the value of family/key and deletes it.",
          [&core, family_key](Channel*, std::string_view args, std::string& err) -> std::optional<std::string> {
              std::string fam, key;
              if (!family_key(args, fam, key, err)) return std::nullopt;
              auto v = core.kv().get(fam, key);
              core.kv().del(fam, key);
              return v.value_or("");
          }});

    r.fn("STRFTIME", {"Format a time", "STRFTIME([epoch][,[timezone][,format]])",
                      "Formats epoch (default now) in the timezone (default local) with a strftime format "
                      "(default %c).",
                      [](Channel*, std::string_view args, std::string&) -> std::optional<std::string> {
                          auto a = split_args(args);
                          std::time_t t = std::time(nullptr);
                          if (!a.empty() && !trim(a[0]).empty())
                              if (auto n = to_number(a[0])) t = static_cast<std::time_t>(*n);
                          std::string fmtstr = a.size() >= 3 && !a[2].empty() ? a[2] : "%c";
                          std::tm tm{};
                          if (a.size() >= 2 && (trim(a[1]) == "UTC" || trim(a[1]) == "GMT"))
                              gmtime_r(&t, &tm);
                          else
                              localtime_r(&t, &tm);
                          char buf[512];
                          auto n = std::strftime(buf, sizeof buf, fmtstr.c_str(), &tm);
                          return std::string(buf, n);
                      }});

    r.fn("RAND", {"A random number", "RAND([min][,max])",
                  "Returns a random integer between min (default 0) and max (default 2147483647), inclusive.",
                  [](Channel*, std::string_view args, std::string&) -> std::optional<std::string> {
                      auto a = split_args(args);
                      long long lo = 0, hi = 2147483647;
                      if (!a.empty() && !a[0].empty())
                          if (auto n = to_number(a[0])) lo = static_cast<long long>(*n);
                      if (a.size() > 1 && !a[1].empty())
                          if (auto n = to_number(a[1])) hi = static_cast<long long>(*n);
                      if (hi < lo) std::swap(lo, hi);
                      thread_local std::mt19937_64 rng{std::random_device{}()};
                      return std::to_string(std::uniform_int_distribution<long long>(lo, hi)(rng));
                  }});

    r.fn("EXISTS", {"Whether a dialplan location exists", "DIALPLAN_EXISTS(context[,extension[,priority]])",
                    "Returns 1 when the context (and extension, and priority or label) exists, else 0.",
                    [&core](Channel* c, std::string_view args, std::string&) -> std::optional<std::string> {
                        auto a = split_args(args);
                        if (a.empty()) return "0";
                        auto plan = core.dialplan();
                        if (a.size() == 1) return plan->contexts.count(a[0]) ? "1" : "0";
                        std::string cid = c ? c->caller().number : "";
                        auto* ext = find_extension(*plan, a[0], a[1], cid, std::chrono::system_clock::now());
                        if (!ext) return "0";
                        if (a.size() < 3 || a[2].empty()) return "1";
                        int n = 0;
                        auto [p, ec] = std::from_chars(a[2].data(), a[2].data() + a[2].size(), n);
                        if (ec == std::errc() && p == a[2].data() + a[2].size())
                            return ext->find_priority(n) ? "1" : "0";
                        return ext->find_label(a[2]) ? "1" : "0";
                    }});

    r.fn("CHANNEL", {"Channel properties", "CHANNEL(item)",
                     "item: name, uniqueid, linkedid, state, language, accountcode, userfield, context, exten, "
                     "priority, hangupcause, peer, technology, musicclass. language, accountcode, userfield and "
                     "musicclass are writable.",
                     [](Channel* c, std::string_view args, std::string& err) -> std::optional<std::string> {
                         if (!c) {
                             err = "CHANNEL needs a channel";
                             return std::nullopt;
                         }
                         auto f = trim(args);
                         if (f == "name") return c->name();
                         if (f == "uniqueid") return c->uniqueid();
                         if (f == "linkedid") return c->linkedid();
                         if (f == "state") return std::string(to_string(c->state()));
                         if (f == "language") return c->language();
                         if (f == "accountcode") return c->accountcode();
                         if (f == "userfield") return c->userfield();
                         if (f == "context") return c->context();
                         if (f == "exten") return c->exten();
                         if (f == "priority") return std::to_string(c->priority());
                         if (f == "hangupcause") return std::to_string(c->hangup_cause());
                         if (f == "peer") return c->peer_name();
                         if (f == "technology" || f == "channeltype") return std::string(c->technology());
                         if (f == "musicclass") return c->music_class();
                         err = "CHANNEL: unknown item '" + std::string(f) + "'";
                         return std::nullopt;
                     },
                     [](Channel* c, std::string_view args, std::string_view value, std::string& err) {
                         if (!c) return false;
                         auto f = trim(args);
                         if (f == "language")
                             c->language() = std::string(value);
                         else if (f == "accountcode")
                             c->accountcode() = std::string(value);
                         else if (f == "userfield")
                             c->userfield() = std::string(value);
                         else if (f == "musicclass")
                             c->music_class() = std::string(value);
                         else {
                             err = "CHANNEL: item '" + std::string(f) + "' is read-only or unknown";
                             return false;
                         }
                         return true;
                     }});

    r.fn("MAX_FORWARDS",
         {"The call's hop budget", "MAX_FORWARDS()",
          "How many more hops the call may take: the incoming SIP request's Max-Forwards (70 without one or for "
          "calls that start here), one less on every channel Dial or Originate creates from this one, and the "
          "Max-Forwards of the INVITEs they send. At 0 Dial refuses to call on (cause 25, SIP 483 Too Many "
          "Hops), which ends routing loops. Writable, 0 to 255: Set(MAX_FORWARDS()=10) before dialling a trunk.",
          [](Channel* c, std::string_view, std::string& err) -> std::optional<std::string> {
              if (!c) {
                  err = "MAX_FORWARDS needs a channel";
                  return std::nullopt;
              }
              return std::to_string(c->max_forwards());
          },
          [](Channel* c, std::string_view, std::string_view value, std::string& err) {
              if (!c) return false;
              auto v = trim(value);
              int n = -1;
              auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
              if (ec != std::errc() || p != v.data() + v.size() || n < 0 || n > 255) {
                  err = "MAX_FORWARDS: '" + std::string(v) + "' is not a number of hops from 0 to 255";
                  return false;
              }
              c->set_max_forwards(n);
              return true;
          }});

    r.fn("TONE_DETECT",
         {"In-band detection on the channel", "TONE_DETECT(dtmf|fax)",
          "dtmf: on or off, DTMF heard in the channel's incoming audio becomes digits (as with sip.conf "
          "dtmfmode=inband). fax: no, cng, ced or yes (both), fax tones set FAXDETECTED and go to the `fax` "
          "extension once (as faxdetect=). Readable and writable: Set(TONE_DETECT(dtmf)=on).",
          [](Channel* c, std::string_view args, std::string& err) -> std::optional<std::string> {
              if (!c) {
                  err = "TONE_DETECT needs a channel";
                  return std::nullopt;
              }
              auto what = c->tone_detection();
              auto item = trim(args);
              if (item == "dtmf") return std::string(what.dtmf ? "on" : "off");
              if (item == "fax")
                  return std::string(what.fax_cng && what.fax_ced ? "yes"
                                     : what.fax_cng               ? "cng"
                                     : what.fax_ced               ? "ced"
                                                                  : "no");
              err = "TONE_DETECT: unknown item '" + std::string(item) + "' (dtmf, fax)";
              return std::nullopt;
          },
          [](Channel* c, std::string_view args, std::string_view value, std::string& err) {
              if (!c) return false;
              auto what = c->tone_detection();
              auto item = trim(args);
              auto v = trim(value);
              if (item == "dtmf") {
                  what.dtmf = v == "on" || v == "yes" || (v != "off" && v != "no" && truthy(v));
              } else if (item == "fax") {
                  auto fax = parse_faxdetect(v);
                  if (!fax) {
                      err = "TONE_DETECT(fax): '" + std::string(v) + "' is not no, cng, ced or yes";
                      return false;
                  }
                  what.fax_cng = fax->fax_cng;
                  what.fax_ced = fax->fax_ced;
              } else {
                  err = "TONE_DETECT: unknown item '" + std::string(item) + "' (dtmf, fax)";
                  return false;
              }
              if (!c->set_tone_detection(what)) {
                  err = "TONE_DETECT: the detector could not be set up";
                  return false;
              }
              return true;
          }});

    r.fn("GLOBAL", {"Global variables", "GLOBAL(name)", "Reads or (with Set) writes a global variable.",
                    [&core](Channel*, std::string_view args, std::string&) -> std::optional<std::string> {
                        return core.global_variable(trim(args)).value_or("");
                    },
                    [&core](Channel*, std::string_view args, std::string_view value, std::string&) {
                        core.set_global_variable(trim(args), std::string(value));
                        return true;
                    }});
}

}  // namespace

void register_cli(CoreImpl& core, std::vector<Registration>& out);

void register_builtins(CoreImpl& core, std::vector<Registration>& out) {
    Registrar r{core, out};
    register_apps(r);
    register_functions(r);
    // DIALPLAN_EXISTS is Asterisk's name for EXISTS.
    auto ex = core.functions().find("EXISTS");
    out.push_back(core.functions().add("DIALPLAN_EXISTS", Function(*ex), &core.core_use()));
    register_cli(core, out);
}

}  // namespace tandem::dialplan
