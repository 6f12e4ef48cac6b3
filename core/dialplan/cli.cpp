// Dialplan CLI commands: show, reload, trace.
#include "dialplan/dialplan.hpp"
#include "dialplan/engine.hpp"
#include "cli/server.hpp"
#include "runtime/core_impl.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/this_coro.hpp>

#include <fmt/format.h>

#include <charconv>
#include <atomic>
#include <mutex>

namespace asio = boost::asio;

namespace tandem::dialplan {

namespace {

std::string app_call(const Priority& p) {
    return p.app + "(" + p.args + ")";
}

void show_extension(CliOutput& out, const Extension& e) {
    auto name = e.cid.empty() ? e.name : e.name + "/" + e.cid;
    bool first = true;
    if (!e.hint.empty()) {
        out.print("  {:<18} {:<46} [{}]\n", "'" + name + "' =>", "hint: " + e.hint, e.where.str());
        first = false;
    }
    for (auto& p : e.priorities) {
        auto prio = p.label.empty() ? fmt::format("{}.", p.number) : fmt::format("{}. ({})", p.number, p.label);
        out.print("  {:<18} {:<8} {:<37} [{}]\n", first ? "'" + name + "' =>" : "", prio, app_call(p), p.where.str());
        first = false;
    }
}

// Lists the extensions `exten` reaches in `ctx` and its includes, in match order.
void show_matches(CliOutput& out, const Snapshot& plan, const std::string& ctxname, const std::string& exten,
                  std::vector<std::string>& seen, int& count) {
    auto it = plan.contexts.find(ctxname);
    if (it == plan.contexts.end() || std::find(seen.begin(), seen.end(), ctxname) != seen.end()) return;
    seen.push_back(ctxname);
    auto& ctx = it->second;
    std::vector<const Extension*> hits;
    if (auto e = ctx.exact.find(strip_dashes(exten)); e != ctx.exact.end())
        for (auto* x : e->second) hits.push_back(x);
    for (auto* x : ctx.patterns)
        if (x->pattern->matches(exten)) hits.push_back(x);
    if (!hits.empty()) {
        out.print("[ Context '{}' ]\n", ctxname);
        for (auto* x : hits) {
            show_extension(out, *x);
            ++count;
        }
        out.print("\n");
    }
    for (auto& inc : ctx.includes) show_matches(out, plan, inc.context, exten, seen, count);
}

// A Trace channel is a caller with no wire: it answers at once and ignores media.
struct TraceDriver final : ChannelDriver {};

}  // namespace

void register_cli(CoreImpl& core, std::vector<Registration>& out) {
    out.push_back(core.technologies().add("Trace",
                                          ChannelTechnology{"Test calls with no phone (dialplan trace)",
                                                            [](Core& c, const ChannelRequest& req, int&) {
                                                                return c.create_channel(
                                                                    "Trace", "Trace/" + req.destination,
                                                                    std::make_unique<TraceDriver>(), c.pick_loop());
                                                            }},
                                          &core.core_use()));
    auto add = [&](std::vector<std::string> words, std::string summary, std::string usage,
                   std::function<awaitable<int>(CliRequest&)> h, decltype(CliCommand::complete) comp = nullptr) {
        out.push_back(add_command(
            core.cli_commands(),
            CliCommand{std::move(words), std::move(summary), std::move(usage), std::move(h), std::move(comp)},
            &core.core_use()));
    };
    auto contexts = [&core](const std::vector<std::string>&, std::size_t, std::string_view) {
        std::vector<std::string> n;
        for (auto& [name, c] : core.dialplan()->contexts) n.push_back(name);
        return n;
    };

    add(
        {"dialplan", "show"}, "Show the dialplan, a context, or what an extension matches",
        "Usage: dialplan show [[EXTEN@]CONTEXT]\n"
        "  With EXTEN@CONTEXT, shows the extensions that number would reach, in the order they are tried.",
        [&core](CliRequest& r) -> awaitable<int> {
            auto plan = core.dialplan();
            std::string arg = r.args.empty() ? "" : r.args[0];
            auto at = arg.find('@');
            if (at != std::string::npos) {
                std::vector<std::string> seen;
                int count = 0;
                auto exten = arg.substr(0, at), ctx = arg.substr(at + 1);
                if (!plan->contexts.count(ctx)) {
                    r.out.print("There is no existence of '{}' context\n", ctx);
                    co_return cli_status::failure;
                }
                show_matches(r.out, *plan, ctx, exten, seen, count);
                r.out.print("-= {} extension{} match '{}' in '{}' =-\n", count, count == 1 ? "" : "s", exten, ctx);
                co_return count ? cli_status::ok : cli_status::failure;
            }
            int nctx = 0, next = 0, nprio = 0;
            for (auto& [name, ctx] : plan->contexts) {
                if (!arg.empty() && name != arg) continue;
                ++nctx;
                r.out.print("[ Context '{}' created at {} ]\n", name, ctx.where.str());
                // Extensions in the order they are tried: exact ones first, then patterns.
                std::vector<const Extension*> order;
                for (auto& e : ctx.storage)
                    if (!e.pattern) order.push_back(&e);
                std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
                order.insert(order.end(), ctx.patterns.begin(), ctx.patterns.end());
                for (auto* e : order) {
                    show_extension(r.out, *e);
                    ++next;
                    nprio += static_cast<int>(e->priorities.size());
                }
                for (auto& inc : ctx.includes)
                    r.out.print("  {:<18} {:<46} [{}]\n", "Include =>",
                                "'" + inc.context + "'" + (inc.when ? " " + inc.when->text() : ""), inc.where.str());
                for (auto& ip : ctx.ignorepats) r.out.print("  {:<18} '{}'\n", "Ignore pattern =>", ip);
                r.out.print("\n");
            }
            if (!arg.empty() && !nctx) {
                r.out.print("There is no existence of '{}' context\n", arg);
                co_return cli_status::failure;
            }
            r.out.print("-= {} extension{} ({} priorit{}) in {} context{}. =-\n", next, next == 1 ? "" : "s", nprio,
                        nprio == 1 ? "y" : "ies", nctx, nctx == 1 ? "" : "s");
            co_return cli_status::ok;
        },
        contexts);

    add({"dialplan", "reload"}, "Reload extensions.conf",
        "Usage: dialplan reload\n"
        "  Builds a new dialplan and swaps it in at once; on any error the running plan is kept.",
        [&core](CliRequest& r) -> awaitable<int> {
            std::vector<std::string> problems;
            bool ok = core.reload_dialplan(problems);
            for (auto& p : problems) r.out.print("{}\n", p);
            auto plan = core.dialplan();
            for (auto& w : plan->warnings) r.out.print("{}\n", w);
            if (ok)
                r.out.print("Dialplan reloaded: {} contexts, {} extensions.\n", plan->contexts.size(),
                            plan->extension_count);
            else
                r.out.print("Dialplan NOT reloaded ({} problems): the running dialplan is unchanged.\n",
                            problems.size());
            co_return ok ? cli_status::ok : cli_status::failure;
        });

    add(
        {"dialplan", "trace"}, "Run a test call through the dialplan and show every step",
        "Usage: dialplan trace EXTEN@CONTEXT [CALLERID] [timeout SECONDS]\n"
        "  Runs a call with no phone (a Trace channel, answered at once) from EXTEN@CONTEXT and prints each\n"
        "  priority executed and each variable set, until the call ends or the timeout (default 30 s).",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.empty() || r.args[0].find('@') == std::string::npos) co_return cli_status::usage;
            auto at = r.args[0].find('@');
            auto exten = r.args[0].substr(0, at), ctx = r.args[0].substr(at + 1);
            std::string cid;
            int timeout = 30;
            for (std::size_t i = 1; i < r.args.size(); ++i) {
                if (r.args[i] == "timeout" && i + 1 < r.args.size()) {
                    auto& t = r.args[++i];
                    std::from_chars(t.data(), t.data() + t.size(), timeout);
                } else {
                    cid = r.args[i];
                }
            }
            auto chan = core.create_channel("Trace", "Trace/" + exten + "@" + ctx, std::make_unique<TraceDriver>(),
                                            core.pick_loop());
            if (!chan) {
                r.out.print("Cannot create a trace channel (is the PBX stopping?)\n");
                co_return cli_status::failure;
            }
            // Not started yet: nothing else touches the channel until start_pbx.
            chan->caller().number = cid;
            chan->set_position(ctx, exten, 1);
            // Steps arrive on the channel's loop; collect them and print from here.
            struct Shared {
                std::mutex mu;
                std::vector<std::string> lines;
                int steps = 0;
                std::atomic<bool> ended{false};
                std::atomic<int> cause{0};
            };
            auto shared = std::make_shared<Shared>();
            auto uid = chan->uniqueid();
            auto sub = core.events().subscribe([shared, uid](const Event& e) {
                if (auto* s = std::get_if<event::DialplanStep>(&e); s && s->uniqueid == uid) {
                    std::lock_guard lock(shared->mu);
                    ++shared->steps;
                    shared->lines.push_back(fmt::format("  -- Executing [{}@{}:{}] {}(\"{}\")", s->exten, s->context,
                                                        s->priority, s->app, s->args));
                } else if (auto* v = std::get_if<event::VariableSet>(&e); v && v->uniqueid == uid) {
                    std::lock_guard lock(shared->mu);
                    shared->lines.push_back(fmt::format("       Set {}={}", v->name, v->value));
                } else if (auto* h = std::get_if<event::ChannelHangup>(&e); h && h->uniqueid == uid) {
                    shared->cause = h->cause;
                    shared->ended = true;
                }
            });
            r.out.print("Tracing {} from caller '{}'\n", chan->name(), cid);
            core.start_pbx(chan);
            asio::steady_timer t(co_await asio::this_coro::executor);
            auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
            bool timed_out = false;
            auto flush = [&] {
                std::vector<std::string> lines;
                {
                    std::lock_guard lock(shared->mu);
                    lines.swap(shared->lines);
                }
                for (auto& l : lines) r.out.print("{}\n", l);
            };
            // The channel belongs to its own loop: only its events are read here.
            while (!shared->ended) {
                if (std::chrono::steady_clock::now() > deadline) {
                    timed_out = true;
                    chan->request_hangup(cause::normal_clearing);
                    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
                }
                t.expires_after(std::chrono::milliseconds(10));
                co_await t.async_wait(asio::use_awaitable);
                flush();
            }
            sub.reset();
            flush();
            r.out.print("  == Trace ended{}: {} steps, hangup cause {} ({})\n", timed_out ? " (timeout)" : "",
                        shared->steps, cause::name(shared->cause), shared->cause.load());
            co_return cli_status::ok;
        },
        contexts);
}

}  // namespace tandem::dialplan
