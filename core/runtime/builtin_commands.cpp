#include "runtime/builtin_commands.hpp"

#include "cli/server.hpp"
#include "dialplan/engine.hpp"
#include "loader/module_loader.hpp"
#include "runtime/core_impl.hpp"
#include "runtime/memory_stats.hpp"

#include <tandem/kvstore.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <unistd.h>

namespace asio = boost::asio;

namespace tandem {

namespace {

std::string join(const std::vector<std::string>& w, std::size_t from = 0) {
    std::string s;
    for (std::size_t i = from; i < w.size(); ++i) s += (i > from ? " " : "") + w[i];
    return s;
}

std::string format_duration(std::chrono::seconds s) {
    auto secs = s.count();
    auto days = secs / 86400, hours = secs / 3600 % 24, mins = secs / 60 % 60;
    std::string out;
    if (days) out += fmt::format("{} day{}, ", days, days == 1 ? "" : "s");
    if (days || hours) out += fmt::format("{} hour{}, ", hours, hours == 1 ? "" : "s");
    if (days || hours || mins) out += fmt::format("{} minute{}, ", mins, mins == 1 ? "" : "s");
    out += fmt::format("{} second{}", secs % 60, secs % 60 == 1 ? "" : "s");
    return out;
}

using Handler = std::function<awaitable<int>(CliRequest&)>;

struct ChannelSnapshot {
    std::string name, uniqueid, context, exten, app, data;
    int priority = 0;
    ChannelState state = ChannelState::down;
};

// Resumes the calling coroutine on the channel's loop, following it should it
// move to another loop meanwhile.
awaitable<void> visit(const Channel& c) {
    do co_await asio::post(asio::bind_executor(c.executor(), asio::use_awaitable));
    while (!c.loop().get_executor().running_in_this_thread());
}

// A channel's fields belong to its loop: visit each channel there, then come back.
awaitable<std::vector<ChannelSnapshot>> snapshot_channels(CoreImpl& core) {
    auto home = co_await asio::this_coro::executor;
    std::vector<ChannelSnapshot> out;
    for (auto& c : core.channels()) {
        co_await visit(*c);
        if (c->finished()) continue;
        out.push_back({c->name(), c->uniqueid(), c->context(), c->exten(), c->last_app(), c->last_data(), c->priority(),
                       c->state()});
    }
    co_await asio::post(asio::bind_executor(home, asio::use_awaitable));
    co_return out;
}

struct Adder {
    CoreImpl& core;
    std::vector<Registration>& out;
    void operator()(std::vector<std::string> words, std::string summary, std::string usage, Handler h,
                    decltype(CliCommand::complete) complete = nullptr) {
        out.push_back(add_command(
            core.cli_commands(),
            CliCommand{std::move(words), std::move(summary), std::move(usage), std::move(h), std::move(complete)},
            &core.core_use()));
    }
};

}  // namespace

void register_builtin_commands(CoreImpl& core, std::vector<Registration>& out) {
    Adder add{core, out};

    add({"help"}, "Show commands, or the usage of one",
        "Usage: help [command words]\n  Lists commands starting with the words given, or shows the usage of one "
        "command.",
        [&core](CliRequest& r) -> awaitable<int> {
            auto prefix = join(r.args);
            if (auto c = core.cli_commands().find(prefix); c && !prefix.empty()) {
                r.out.print("{}\n", c->usage);
                co_return cli_status::ok;
            }
            int n = 0;
            core.cli_commands().for_each([&](const std::string& name, const CliCommand& c, const std::string&) {
                if (name.rfind(prefix, 0) != 0) return;
                r.out.print("{:<40} {}\n", name, c.summary);
                ++n;
            });
            if (!n) r.out.print("No commands match '{}'\n", prefix);
            co_return n ? cli_status::ok : cli_status::failure;
        });

    add({"core", "show", "version"}, "Show the version of Tandem", "Usage: core show version",
        [](CliRequest& r) -> awaitable<int> {
            r.out.print("Tandem {} (SDK {}) built with {} on {} {}\n", TANDEM_VERSION, TANDEM_ABI_TAG, __VERSION__,
                        __DATE__, __TIME__);
            co_return cli_status::ok;
        });

    add({"core", "show", "memory"}, "Show the memory the process holds", "Usage: core show memory",
        [&core](CliRequest& r) -> awaitable<int> {
            auto m = memory_stats();
            auto kib = [](std::uint64_t b) { return fmt::format("{} KiB", b / 1024); };
            r.out.print("  {:<28} {}\n", "Allocator:", m.allocator);
            r.out.print("  {:<28} {}\n", "Heap in use:", kib(m.in_use));
            // Pages that hold live objects, against the objects themselves:
            // the difference is the holes freed objects left in those pages.
            if (m.active) r.out.print("  {:<28} {}\n", "Heap pages in use:", kib(m.active));
            if (m.metadata) r.out.print("  {:<28} {}\n", "Allocator metadata:", kib(m.metadata));
            if (m.resident) r.out.print("  {:<28} {}\n", "Heap resident:", kib(m.resident));
            r.out.print("  {:<28} {}\n", "Process resident (RSS):", kib(m.rss));
            r.out.print("  {:<28} {}\n", "Channels:", core.channel_count());
            co_return cli_status::ok;
        });

    add({"core", "show", "uptime"}, "Show how long the PBX has been running", "Usage: core show uptime [seconds]",
        [&core](CliRequest& r) -> awaitable<int> {
            using namespace std::chrono;
            auto now = system_clock::now();
            auto up = duration_cast<seconds>(now - core.started_at());
            auto rl = duration_cast<seconds>(now - core.reloaded_at());
            if (!r.args.empty() && r.args[0] == "seconds") {
                r.out.print("System uptime: {}\nLast reload: {}\n", up.count(), rl.count());
            } else {
                r.out.print("System uptime: {}\nLast reload: {}\n", format_duration(up), format_duration(rl));
            }
            co_return cli_status::ok;
        });

    add({"core", "show", "settings"}, "Show the PBX's settings and directories", "Usage: core show settings",
        [&core](CliRequest& r) -> awaitable<int> {
            auto& p = core.paths();
            r.out.print("PBX core settings\n-----------------\n");
            r.out.print("  {:<28} {}\n", "Version:", TANDEM_VERSION);
            r.out.print("  {:<28} {}\n", "Process id:", ::getpid());
            r.out.print("  {:<28} {}\n", "Event loops:", core.loop_count());
            r.out.print("  {:<28} {}\n", "Worker threads:", core.worker_count());
            r.out.print("  {:<28} {}\n",
                        "Maximum calls:", core.max_calls() ? std::to_string(core.max_calls()) : "unlimited");
            r.out.print("  {:<28} {}\n", "Accepting calls:", core.accepting_calls() ? "yes" : "no (stopping)");
            r.out.print("  {:<28} {}\n", "Log level (terminal):", to_string(core.core_log().terminal_level()));
            r.out.print("  {:<28} {}\n", "Configuration directory:", p.config_dir.string());
            r.out.print("  {:<28} {}\n", "Module directory:", p.module_dir.string());
            r.out.print("  {:<28} {}\n", "Run directory:", p.run_dir.string());
            r.out.print("  {:<28} {}\n", "Spool directory:", p.spool_dir.string());
            r.out.print("  {:<28} {}\n", "Database directory:", p.db_dir.string());
            r.out.print("  {:<28} {}\n", "Log directory:", p.log_dir.string());
            co_return cli_status::ok;
        });

    add({"core", "show", "channels"}, "List active channels", "Usage: core show channels [concise|count]",
        [&core](CliRequest& r) -> awaitable<int> {
            auto chans = co_await snapshot_channels(core);
            bool concise = !r.args.empty() && r.args[0] == "concise";
            bool count = !r.args.empty() && r.args[0] == "count";
            if (!count && !concise)
                r.out.print("{:<40} {:<28} {:<8} {}\n", "Channel", "Location", "State", "Application(Data)");
            for (auto& c : chans) {
                if (count) break;
                auto loc = fmt::format("{}@{}:{}", c.exten, c.context, c.priority);
                auto app = c.app.empty() ? std::string("(None)") : c.app + "(" + c.data + ")";
                if (concise)
                    r.out.print("{}!{}!{}!{}!{}!{}!{}!{}\n", c.name, c.context, c.exten, c.priority, to_string(c.state),
                                c.app, c.data, c.uniqueid);
                else
                    r.out.print("{:<40} {:<28} {:<8} {}\n", c.name, loc, to_string(c.state), app);
            }
            if (!concise)
                r.out.print("{} active channel{}\n{} calls processed\n", chans.size(), chans.size() == 1 ? "" : "s",
                            core.calls_processed());
            co_return cli_status::ok;
        });

    add({"core", "show", "channel"}, "Show one channel in detail",
        "Usage: core show channel NAME\n  State, caller, dialplan position, application, the channel it is bridged "
        "or dialled to, the event loop it lives on, and its variables.",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() != 1) co_return cli_status::usage;
            auto c = core.find_channel(r.args[0]);
            if (!c) {
                r.out.print("No channel named '{}'\n", r.args[0]);
                co_return cli_status::failure;
            }
            auto home = co_await asio::this_coro::executor;
            co_await visit(*c);
            std::size_t loop = 0;
            while (loop < core.loop_count() && &core.loop(loop) != &c->loop()) ++loop;
            std::string text;
            auto line = [&](std::string_view k, std::string_view v) { text += fmt::format("{:<18}{}\n", k, v); };
            line("Name:", c->name());
            line("UniqueID:", c->uniqueid());
            line("State:", to_string(c->state()));
            line("Caller ID:", c->caller().number.empty() ? "(N/A)" : c->caller().number);
            line("Caller ID name:", c->caller().name.empty() ? "(N/A)" : c->caller().name);
            line("Location:", fmt::format("{}@{}:{}", c->exten(), c->context(), c->priority()));
            line("Application:",
                 c->last_app().empty() ? std::string("(None)") : c->last_app() + "(" + c->last_data() + ")");
            line("Bridged/dialled:", c->peer_name().empty() ? "(None)" : c->peer_name());
            line("Event loop:", loop < core.loop_count() ? std::to_string(loop) : "?");
            text += "Variables:\n";
            for (auto& v : c->variables()) text += fmt::format("  {}={}\n", v.name, v.value);
            co_await asio::post(asio::bind_executor(home, asio::use_awaitable));
            r.out.print("{}", text);
            co_return cli_status::ok;
        });

    add({"core", "show", "applications"}, "List dialplan applications", "Usage: core show applications [like TEXT]",
        [&core](CliRequest& r) -> awaitable<int> {
            std::string like = r.args.size() >= 2 && r.args[0] == "like" ? r.args[1] : "";
            int n = 0;
            core.applications().for_each([&](const std::string& name, const Application& a, const std::string& mod) {
                if (!like.empty() && name.find(like) == std::string::npos) return;
                r.out.print("{:>20}: {} [{}]\n", name, a.synopsis, mod);
                ++n;
            });
            r.out.print("{} applications\n", n);
            co_return cli_status::ok;
        });

    auto app_names = [&core](const std::vector<std::string>&, std::size_t, std::string_view) {
        return core.applications().names();
    };
    add(
        {"core", "show", "application"}, "Show the documentation of an application",
        "Usage: core show application NAME",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.empty()) co_return cli_status::usage;
            auto a = core.applications().find(r.args[0]);
            if (!a) {
                r.out.print("No application '{}'\n", r.args[0]);
                co_return cli_status::failure;
            }
            r.out.print(
                "  -= Info about application '{}' "
                "=-\n\n[Synopsis]\n{}\n\n[Syntax]\n{}\n\n[Description]\n{}\n\n[Module]\n{}\n",
                r.args[0], a->synopsis, a->syntax, a->description, a.module());
            co_return cli_status::ok;
        },
        app_names);

    add({"core", "show", "functions"}, "List dialplan functions", "Usage: core show functions [like TEXT]",
        [&core](CliRequest& r) -> awaitable<int> {
            std::string like = r.args.size() >= 2 && r.args[0] == "like" ? r.args[1] : "";
            int n = 0;
            core.functions().for_each([&](const std::string& name, const Function& f, const std::string&) {
                if (!like.empty() && name.find(like) == std::string::npos) return;
                r.out.print("{:<20} {:<40} {}\n", name, f.syntax, f.synopsis);
                ++n;
            });
            r.out.print("{} functions\n", n);
            co_return cli_status::ok;
        });

    add(
        {"core", "show", "function"}, "Show the documentation of a dialplan function", "Usage: core show function NAME",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.empty()) co_return cli_status::usage;
            auto f = core.functions().find(r.args[0]);
            if (!f) {
                r.out.print("No function '{}'\n", r.args[0]);
                co_return cli_status::failure;
            }
            r.out.print(
                "  -= Info about function '{}' "
                "=-\n\n[Synopsis]\n{}\n\n[Syntax]\n{}\n\n[Description]\n{}\n\n[Module]\n{}\n",
                r.args[0], f->synopsis, f->syntax, f->description, f.module());
            co_return cli_status::ok;
        },
        [&core](const std::vector<std::string>&, std::size_t, std::string_view) { return core.functions().names(); });

    add({"core", "reload"}, "Reload configuration, modules and dialplan", "Usage: core reload",
        [&core](CliRequest& r) -> awaitable<int> {
            std::string report;
            bool ok = core.reload(report);
            r.out.write(report);
            r.out.print(
                "{}\n",
                ok ? "Reloaded." : "Reloaded with problems (the running configuration was kept where it was broken).");
            co_return ok ? cli_status::ok : cli_status::failure;
        });

    add({"core", "stop", "now"}, "Hang up all calls and stop", "Usage: core stop now",
        [&core](CliRequest& r) -> awaitable<int> {
            r.out.print("Stopping now.\n");
            core.post_control(CoreImpl::Control::stop_now);
            co_return cli_status::ok;
        });
    add({"core", "stop", "gracefully"}, "Refuse new calls, stop when the last one ends", "Usage: core stop gracefully",
        [&core](CliRequest& r) -> awaitable<int> {
            r.out.print("Stopping gracefully: new calls are refused, {} channels still up.\n", core.channel_count());
            core.post_control(CoreImpl::Control::stop_graceful);
            co_return cli_status::ok;
        });

    auto levels = [](const std::vector<std::string>&, std::size_t, std::string_view) {
        return std::vector<std::string>{"trace", "debug", "info", "notice", "warning", "error", "off"};
    };
    add(
        {"logger", "set", "level"}, "Set the log level of the terminal and log file",
        "Usage: logger set level {trace|debug|info|notice|warning|error|off}\n"
        "  Consoles choose their own level when attaching (tandem -r -v ...).",
        [&core](CliRequest& r) -> awaitable<int> {
            LogLevel l;
            if (r.args.size() != 1 || !parse_log_level(r.args[0], l)) co_return cli_status::usage;
            core.core_log().set_terminal_level(l);
            r.out.print("Log level set to {}\n", to_string(l));
            co_return cli_status::ok;
        },
        levels);

    auto module_names = [&core](const std::vector<std::string>&, std::size_t, std::string_view) {
        std::vector<std::string> n;
        for (auto& m : core.modules().list()) n.push_back(m.name);
        return n;
    };
    add({"module", "show"}, "List loaded modules", "Usage: module show [like TEXT]",
        [&core](CliRequest& r) -> awaitable<int> {
            std::string like = r.args.size() >= 2 && r.args[0] == "like" ? r.args[1] : "";
            if (r.args.size() == 1 && r.args[0] != "like") like = r.args[0];
            r.out.print("{:<24} {:<44} {:<8} {}\n", "Module", "Description", "Use", "Kind");
            int n = 0;
            for (auto& m : core.modules().list()) {
                if (!like.empty() && m.name.find(like) == std::string::npos) continue;
                r.out.print("{:<24} {:<44} {:<8} {}\n", m.name, m.description, m.use_count, m.kind);
                ++n;
            }
            r.out.print("{} modules loaded\n", n);
            co_return cli_status::ok;
        });
    add(
        {"module", "load"}, "Load a module", "Usage: module load NAME",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() != 1) co_return cli_status::usage;
            std::string msg;
            bool ok = core.modules().load(r.args[0], msg);
            r.out.print("{}\n", msg);
            co_return ok ? cli_status::ok : cli_status::failure;
        },
        [&core](const std::vector<std::string>&, std::size_t, std::string_view) { return core.modules().available(); });
    add(
        {"module", "unload"}, "Unload a module (refused while in use)", "Usage: module unload NAME",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() != 1) co_return cli_status::usage;
            std::string msg;
            // On the worker pool: an unload waits until every loop (this one
            // too) has let go of the module's handlers.
            bool ok = co_await run_blocking(core, [&] { return core.modules().unload(r.args[0], msg); });
            r.out.print("{}\n", msg);
            co_return ok ? cli_status::ok : cli_status::failure;
        },
        module_names);
    add(
        {"module", "reload"}, "Reload a module's configuration, or everything", "Usage: module reload [NAME]",
        [&core](CliRequest& r) -> awaitable<int> {
            std::string msg;
            bool ok;
            if (r.args.empty()) {
                ok = core.reload(msg);
                if (msg.empty()) msg = "Reloaded.";
            } else {
                ok = core.modules().reload(r.args[0], msg);
            }
            r.out.print("{}\n", msg);
            co_return ok ? cli_status::ok : cli_status::failure;
        },
        module_names);

    auto channel_names = [&core](const std::vector<std::string>&, std::size_t, std::string_view) {
        std::vector<std::string> n{"all"};
        for (auto& c : core.channels()) n.push_back(c->name());
        return n;
    };
    add(
        {"channel", "request", "hangup"}, "Hang up a channel, or all",
        "Usage: channel request hangup {NAME|all} [cause]",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.empty()) co_return cli_status::usage;
            int c = r.args.size() > 1 ? cause::parse(r.args[1]) : cause::normal_clearing;
            if (!c) c = cause::normal_clearing;
            if (r.args[0] == "all") {
                auto chans = core.channels();
                for (auto& ch : chans) ch->request_hangup(c);
                r.out.print("Requested hangup of {} channels\n", chans.size());
                co_return cli_status::ok;
            }
            auto ch = core.find_channel(r.args[0]);
            if (!ch) {
                r.out.print("No channel '{}'\n", r.args[0]);
                co_return cli_status::failure;
            }
            ch->request_hangup(c);
            r.out.print("Requested hangup of {}\n", ch->name());
            co_return cli_status::ok;
        },
        channel_names);

    add(
        {"channel", "originate"}, "Place a call and connect it to an application or extension",
        "Usage: channel originate TECH/DEST application APP [ARGS...]\n"
        "       channel originate TECH/DEST extension EXTEN@CONTEXT\n"
        "  Calls TECH/DEST; when it answers, runs APP or continues the call in the dialplan.",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() < 3) co_return cli_status::usage;
            dialplan::OriginateTarget t;
            if (r.args[1] == "application") {
                t.app = r.args[2];
                t.app_args = join(r.args, 3);
            } else if (r.args[1] == "extension") {
                auto at = r.args[2].find('@');
                t.exten = r.args[2].substr(0, at);
                t.context = at == std::string::npos ? "default" : r.args[2].substr(at + 1);
            } else {
                co_return cli_status::usage;
            }
            std::string error;
            auto name = dialplan::originate(core, r.args[0], std::move(t), error);
            if (name.empty()) {
                r.out.print("Originate failed: {}\n", error);
                co_return cli_status::failure;
            }
            r.out.print("Originated {}\n", name);
            co_return cli_status::ok;
        },
        [&core](const std::vector<std::string>& args, std::size_t index, std::string_view) {
            if (index == 1) return std::vector<std::string>{"application", "extension"};
            if (index == 2 && args.size() > 1 && args[1] == "application") return core.applications().names();
            return std::vector<std::string>{};
        });

    add({"database", "show"}, "Show the key/value store", "Usage: database show [FAMILY]",
        [&core](CliRequest& r) -> awaitable<int> {
            auto entries = core.kv().list(r.args.empty() ? std::string_view{} : std::string_view(r.args[0]));
            for (auto& [k, v] : entries) r.out.print("{:<40}: {}\n", k, v);
            r.out.print("{} results found.\n", entries.size());
            co_return cli_status::ok;
        });
    add({"database", "put"}, "Store a value", "Usage: database put FAMILY KEY VALUE",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() != 3) co_return cli_status::usage;
            std::string err;
            if (!core.kv().put(r.args[0], r.args[1], r.args[2], &err)) {
                r.out.print("Failed to update entry: {}\n", err);
                co_return cli_status::failure;
            }
            r.out.print("Updated database successfully\n");
            co_return cli_status::ok;
        });
    add({"database", "get"}, "Read a value", "Usage: database get FAMILY KEY",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() != 2) co_return cli_status::usage;
            auto v = core.kv().get(r.args[0], r.args[1]);
            if (!v) {
                r.out.print("Database entry not found.\n");
                co_return cli_status::failure;
            }
            r.out.print("Value: {}\n", *v);
            co_return cli_status::ok;
        });
    add({"database", "del"}, "Delete a value", "Usage: database del FAMILY KEY",
        [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.size() != 2) co_return cli_status::usage;
            bool ok = core.kv().del(r.args[0], r.args[1]);
            r.out.print("{}\n", ok ? "Database entry removed." : "Database entry does not exist.");
            co_return ok ? cli_status::ok : cli_status::failure;
        });
    add({"database", "deltree"}, "Delete a family (or a key prefix in it)",
        "Usage: database deltree FAMILY [KEYPREFIX]", [&core](CliRequest& r) -> awaitable<int> {
            if (r.args.empty() || r.args.size() > 2) co_return cli_status::usage;
            auto n =
                core.kv().del_tree(r.args[0], r.args.size() > 1 ? std::string_view(r.args[1]) : std::string_view{});
            r.out.print("{} database entries removed.\n", n);
            co_return cli_status::ok;
        });
}

}  // namespace tandem
