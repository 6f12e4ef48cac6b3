#include "runtime/core_impl.hpp"

#include "cdr/cdr_engine.hpp"
#include "cli/server.hpp"
#include "dialplan/dialplan.hpp"
#include "dialplan/engine.hpp"
#include "loader/module_loader.hpp"
#include "media/files.hpp"
#include "media/media_cli.hpp"
#include "media/resample.hpp"
#include "media/translate.hpp"
#include "rtp/engine.hpp"
#include "runtime/builtin_commands.hpp"
#include "runtime/event_log.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <fstream>

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace tandem {

namespace {

fs::path exe_relative_module_dir() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto dir = exe.parent_path().parent_path() / "lib" / "tandem" / "modules";
        if (fs::is_directory(dir, ec)) return dir;
    }
    return TANDEM_DEFAULT_MODULE_DIR;
}

// Prompts next to the program: <build>/sounds in the build tree, or
// <prefix>/share/tandem/sounds when installed.
fs::path exe_relative_sounds_dir() {
    std::error_code ec;
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        auto prefix = exe.parent_path().parent_path();
        for (auto dir : {prefix / "sounds", prefix / "share" / "tandem" / "sounds"})
            if (fs::is_directory(dir, ec)) return dir;
    }
    return "/usr/share/tandem/sounds";
}

// Relative directories in tandem.conf are taken from the configuration
// directory, so the PBX and its consoles agree wherever they are started.
fs::path resolve(const fs::path& p, const fs::path& base) {
    return (p.is_absolute() ? p : base / p).lexically_normal();
}

std::size_t default_loops() {
    auto n = std::thread::hardware_concurrency();
    return n ? n : 2;
}

const config::OptionSpec options_schema[] = {
    {"verbose",
     config::OptionType::choice,
     "info",
     0,
     0,
     {"trace", "debug", "info", "notice", "warning", "error", "off"},
     "Log level of the terminal in the foreground."},
    {"loops", config::OptionType::integer, "0", 0, 256, {}, "Event loops (threads running calls); 0: one per core."},
    {"workers", config::OptionType::integer, "4", 1, 64, {}, "Threads for blocking work (disk, database, SMTP)."},
    {"maxcalls",
     config::OptionType::integer,
     "0",
     0,
     1000000,
     {},
     "Refuse new channels beyond this many; 0: no limit."},
    {"logfile",
     config::OptionType::string,
     "messages.log",
     0,
     0,
     {},
     "Log file name in the log directory; empty: none."},
    {"logfile_level",
     config::OptionType::choice,
     "info",
     0,
     0,
     {"trace", "debug", "info", "notice", "warning", "error", "off"},
     "Log level of the log file."},
};

const config::OptionSpec directories_schema[] = {
    {"modules", config::OptionType::string, "", 0, 0, {}, "Module directory (default: next to the program)."},
    {"run", config::OptionType::string, "/var/run/tandem", 0, 0, {}, "Control socket and pid file."},
    {"spool", config::OptionType::string, "/var/spool/tandem", 0, 0, {}, "Voicemail, recordings, outgoing."},
    {"db", config::OptionType::string, "/var/lib/tandem", 0, 0, {}, "Embedded databases (key/value store)."},
    {"log", config::OptionType::string, "/var/log/tandem", 0, 0, {}, "Log files and CSV CDRs."},
    {"sounds", config::OptionType::string, "", 0, 0, {}, "Prompts (default: next to the program)."},
};

}  // namespace

CoreImpl::CoreImpl(StartOptions options)
    : options_(std::move(options)),
      sink_(options_.terminal_level),
      log_(sink_, "core"),
      workers_(std::make_unique<asio::thread_pool>(1)) {
    std::error_code ec;
    paths_.config_dir = fs::absolute(options_.config_dir, ec).lexically_normal();
    started_ = reloaded_ = std::chrono::system_clock::now();
    plan_.store(std::make_shared<const dialplan::Snapshot>());
    translation_ = std::make_unique<TranslatorGraph>(*this);
    rtp_ = std::make_unique<rtp::EngineImpl>(sink_);
    loader_ = std::make_unique<ModuleLoader>(*this);
    cdr_ = std::make_unique<CdrEngine>(*this);
}

CoreImpl::~CoreImpl() {
    if (running_) shutdown(true);
    workers_->join();
}

bool CoreImpl::read_main_config(std::vector<std::string>& problems) {
    auto parsed = config::parse_file(paths_.config_dir / "tandem.conf");
    for (auto& e : parsed.errors) problems.push_back(e.str());
    config::Options opts, dirs;
    static const config::Section empty_section;
    auto bind = [&](const char* name, std::span<const config::OptionSpec> schema, config::Options& out) {
        const config::Section* s = parsed.file.section(name);
        for (auto& d : config::bind(s ? *s : empty_section, schema, out)) problems.push_back(d.str());
    };
    bind("options", options_schema, opts);
    bind("directories", directories_schema, dirs);
    for (auto& s : parsed.file.sections)
        if (!s.is_template && !s.name.empty() && s.name != "options" && s.name != "directories")
            problems.push_back(fmt::format("{}: unknown section [{}] in tandem.conf", s.where.str(), s.name));

    auto mdir = dirs.str("modules");
    auto& base = paths_.config_dir;
    paths_.module_dir = mdir.empty() ? exe_relative_module_dir() : resolve(mdir, base);
    paths_.run_dir = resolve(dirs.str("run"), base);
    paths_.spool_dir = resolve(dirs.str("spool"), base);
    paths_.db_dir = resolve(dirs.str("db"), base);
    paths_.log_dir = resolve(dirs.str("log"), base);
    auto sdir = dirs.str("sounds");
    paths_.sounds_dir = sdir.empty() ? exe_relative_sounds_dir() : resolve(sdir, base);
    worker_threads_ = static_cast<std::size_t>(opts.integer("workers"));
    max_calls_ = static_cast<std::size_t>(opts.integer("maxcalls"));
    auto loops = options_.loops ? *options_.loops : static_cast<int>(opts.integer("loops"));
    if (loops <= 0) loops = static_cast<int>(default_loops());
    if (loops_.empty() && !options_.checking) {
        loops_.reserve(static_cast<std::size_t>(loops));
        for (int i = 0; i < loops; ++i) loops_.push_back(std::make_unique<asio::io_context>(1));
    }
    if (!options_.checking) {
        if (!options_.terminal_level_explicit && options_.terminal_level != LogLevel::off) {
            LogLevel lvl = LogLevel::info;
            if (parse_log_level(opts.str("verbose"), lvl)) sink_.set_terminal_level(lvl);
        }
        auto logfile = opts.str("logfile");
        if (!logfile.empty()) {
            LogLevel lvl = LogLevel::info;
            parse_log_level(opts.str("logfile_level"), lvl);
            std::error_code ec;
            fs::create_directories(paths_.log_dir, ec);
            std::string err;
            if (!sink_.open_file((paths_.log_dir / logfile).string(), lvl, err))
                log_.warning("cannot open log file {}: {}", (paths_.log_dir / logfile).string(), err);
        }
    }
    return true;
}

int CoreImpl::check(std::vector<std::string>& problems) {
    read_main_config(problems);
    register_builtin_commands(*this, core_registrations_);
    register_media_commands(*this, core_registrations_);
    register_file_commands(*this, core_registrations_);
    register_resamplers(*this, core_registrations_);
    dialplan::register_builtins(*this, core_registrations_);
    rtp_->load(paths_.config_dir / "rtp.conf", problems, false);
    loader_->load_all(problems);
    for (auto& p : loader_->take_config_problems()) problems.push_back(p);
    std::vector<std::string> dp;
    reload_dialplan(dp);
    problems.insert(problems.end(), dp.begin(), dp.end());
    if (auto plan = dialplan(); plan) problems.insert(problems.end(), plan->warnings.begin(), plan->warnings.end());
    loader_->unload_all();
    core_registrations_.clear();
    return static_cast<int>(problems.size());
}

bool CoreImpl::start(std::vector<std::string>& problems) {
    std::vector<std::string> config_problems;
    read_main_config(config_problems);
    for (auto& p : config_problems) log_.error("{}", p);

    std::error_code ec;
    for (auto* dir : {&paths_.run_dir, &paths_.spool_dir, &paths_.db_dir, &paths_.log_dir}) {
        fs::create_directories(*dir, ec);
        if (ec) {
            problems.push_back(fmt::format("cannot create directory {}: {}", dir->string(), ec.message()));
            return false;
        }
    }

    std::string kv_error;
    kv_ = KvStore::open(paths_.db_dir / "tandem.db", kv_error);
    if (!kv_) {
        problems.push_back(kv_error);
        return false;
    }
    kv_->on_error([this](const std::string& e) { log_.error("{}", e); });

    // Threads for loops and workers.
    workers_->join();
    workers_ = std::make_unique<asio::thread_pool>(worker_threads_);
    start_loops(static_cast<int>(loops_.size()));
    cdr_->start();
    running_ = true;  // from here on, shutdown() has threads to stop

    register_builtin_commands(*this, core_registrations_);
    register_event_log(*this, core_registrations_);
    register_media_commands(*this, core_registrations_);
    register_file_commands(*this, core_registrations_);
    register_resamplers(*this, core_registrations_);
    dialplan::register_builtins(*this, core_registrations_);
    std::vector<std::string> rtp_problems;
    rtp_->load(paths_.config_dir / "rtp.conf", rtp_problems);
    for (auto& p : rtp_problems) log_.error("{}", p);
    rtp_->register_commands(cli_, &core_use_, core_registrations_);

    std::vector<std::string> module_problems;
    if (!loader_->load_all(module_problems)) {
        for (auto& p : module_problems) problems.push_back(p);
        return false;
    }
    for (auto& p : module_problems) log_.error("{}", p);

    // Translator costs, measured here before any call needs a path; steps of
    // modules loaded later are measured on the worker pool.
    auto measuring = std::chrono::steady_clock::now();
    translation_->measure(false);
    core_registrations_.push_back(translation_->watch_modules());
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - measuring);
    log_.debug("translator costs measured in {} ms", took.count());

    std::vector<std::string> dp;
    if (!reload_dialplan(dp))
        for (auto& p : dp) log_.error("{}", p);

    if (options_.control_socket) {
        cli_server_ = std::make_unique<CliServer>(*this, *loops_.front());
        std::string err;
        if (!cli_server_->listen(paths_.run_dir / "tandem.ctl", err)) {
            problems.push_back(err);
            return false;
        }
        pid_file_ = paths_.run_dir / "tandem.pid";
        std::ofstream(pid_file_) << ::getpid() << '\n';
    }
    log_.notice("Tandem {} ready: {} loops, {} workers, {} modules, config {}", TANDEM_VERSION, loops_.size(),
                worker_threads_, loader_->count(), paths_.config_dir.string());
    return true;
}

void CoreImpl::start_loops(int n) {
    for (int i = 0; i < n; ++i) {
        auto& ctx = *loops_[static_cast<std::size_t>(i)];
        guards_.push_back(
            std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ctx.get_executor()));
        loop_threads_.emplace_back([this, &ctx, i] {
            pthread_setname_np(pthread_self(), fmt::format("loop-{}", i).c_str());
            for (;;) {
                try {
                    ctx.run();
                    break;
                } catch (const std::exception& e) {
                    log_.error("loop {}: unhandled exception: {}", i, e.what());
                } catch (...) {
                    log_.error("loop {}: unhandled exception", i);
                }
            }
        });
    }
}

void CoreImpl::stop_loops() {
    guards_.clear();
    for (auto& l : loops_) l->stop();
    for (auto& t : loop_threads_)
        if (t.joinable()) t.join();
    loop_threads_.clear();
}

void CoreImpl::shutdown(bool hangup_calls) {
    if (!running_) return;
    accepting_ = false;
    log_.notice("stopping{}", hangup_calls ? ": hanging up all calls" : " when calls have ended");
    using namespace std::chrono_literals;
    if (hangup_calls) {
        for (auto& c : channels()) c->request_hangup(cause::normal_clearing);
    }
    // Give hangup handlers (`h` extensions) time to run; a graceful stop waits for calls to end.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!channels().empty() && (!hangup_calls || std::chrono::steady_clock::now() < deadline))
        std::this_thread::sleep_for(20ms);
    if (!channels().empty()) log_.warning("{} channels did not end in time", channels().size());
    if (cli_server_) cli_server_->close();
    cdr_->stop();
    translation_->stop();
    loader_->unload_all();
    core_registrations_.clear();
    stop_loops();
    cli_server_.reset();
    workers_->join();
    if (kv_ && !kv_->flush_for(std::chrono::seconds(5)))
        log_.error("key/value store: {} changes not yet saved at stop", kv_->pending());
    std::error_code ec;
    if (!pid_file_.empty()) fs::remove(pid_file_, ec);
    running_ = false;
    log_.notice("stopped");
}

void CoreImpl::post_control(Control c) {
    {
        std::lock_guard lock(control_mu_);
        controls_.push_back(c);
    }
    control_cv_.notify_all();
}

CoreImpl::Control CoreImpl::wait_control() {
    std::unique_lock lock(control_mu_);
    control_cv_.wait(lock, [this] { return !controls_.empty(); });
    auto c = controls_.front();
    controls_.pop_front();
    return c;
}

bool CoreImpl::reload(std::string& report) {
    std::vector<std::string> problems;
    rtp_->load(paths_.config_dir / "rtp.conf", problems);
    loader_->reload_all(problems);
    bool ok = reload_dialplan(problems);
    for (auto& p : problems) report += p + "\n";
    reloaded_ = std::chrono::system_clock::now();
    events_.publish(event::Reloaded{"all"});
    return ok && problems.empty();
}

bool CoreImpl::reload_dialplan(std::vector<std::string>& problems) {
    std::vector<config::Diagnostic> diags;
    auto plan = dialplan::load(paths_.config_dir / "extensions.conf", apps_, diags);
    for (auto& d : diags) problems.push_back(d.str());
    if (!plan) {
        log_.error("dialplan not loaded ({} problems); keeping the running plan", diags.size());
        return false;
    }
    // Globals from [globals] are (re)set; other globals set at run time stay.
    for (auto& [k, v] : plan->globals) set_global_variable(k, v);
    plan_.store(std::move(plan));
    return true;
}

asio::io_context& CoreImpl::pick_loop() {
    auto i = next_loop_.fetch_add(1, std::memory_order_relaxed);
    return *loops_[i % loops_.size()];
}

std::optional<std::string> CoreImpl::global_variable(std::string_view name) const {
    std::shared_lock lock(globals_mu_);
    auto it = globals_.find(std::string(name));
    if (it == globals_.end()) return std::nullopt;
    return it->second;
}

void CoreImpl::set_global_variable(std::string_view name, std::string value) {
    std::unique_lock lock(globals_mu_);
    globals_[std::string(name)] = std::move(value);
}

std::shared_ptr<Channel> CoreImpl::create_channel(std::string_view tech, std::string_view name_prefix,
                                                  std::unique_ptr<ChannelDriver> driver, asio::io_context& loop) {
    if (!accepting_) return nullptr;
    if (max_calls_ && channel_count() >= max_calls_) {
        log_.warning("maxcalls ({}) reached: refusing a new {} channel", max_calls_, tech);
        return nullptr;
    }
    auto lease = techs_.find(tech);
    if (!lease) return nullptr;
    auto seq = ++channel_seq_;
    auto now = std::chrono::system_clock::now();
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    auto uniqueid = fmt::format("{}.{}", secs, seq);
    auto name = fmt::format("{}-{:08x}", name_prefix, seq);
    auto chan = std::make_shared<Channel>(*this, loop, std::move(name), std::move(uniqueid), std::move(driver),
                                          std::move(lease));
    {
        std::lock_guard lock(chan_mu_);
        channels_.emplace(chan->name(), chan);
    }
    ++calls_processed_;
    if (events_.has_subscribers())
        events_.publish(event::ChannelCreated{chan->name(), chan->uniqueid(), chan->linkedid(), "", "", "", ""});
    return chan;
}

std::shared_ptr<Channel> CoreImpl::request_channel(std::string_view dial_string, const Channel* requestor, int& cause) {
    auto slash = dial_string.find('/');
    if (slash == std::string_view::npos || slash == 0) {
        cause = cause::invalid_number_format;
        return nullptr;
    }
    auto tech = techs_.find(dial_string.substr(0, slash));
    if (!tech) {
        cause = cause::requested_chan_unavail;
        log_.warning("no channel technology '{}' (dial string '{}')", dial_string.substr(0, slash), dial_string);
        return nullptr;
    }
    ChannelRequest req{std::string(dial_string.substr(slash + 1)), requestor, {}};
    if (requestor) {
        req.caller = requestor->caller();
        // A call that has used up its hops is looping: refused here, for every
        // technology, before anything is created (SIP answers it 483).
        req.max_forwards = requestor->max_forwards() - 1;
        if (req.max_forwards < 0) {
            cause = cause::exchange_routing_error;
            log_.warning("{}: not calling '{}': the call has no hops left (Max-Forwards reached 0: a routing loop?)",
                         requestor->name(), dial_string);
            return nullptr;
        }
    }
    cause = 0;
    auto chan = tech->request(*this, req, cause);
    if (!chan && !cause) cause = cause::requested_chan_unavail;
    if (chan && requestor) chan->inherit_from(*requestor);
    if (chan) chan->set_max_forwards(req.max_forwards);
    return chan;
}

std::vector<std::shared_ptr<Channel>> CoreImpl::channels() const {
    std::lock_guard lock(chan_mu_);
    std::vector<std::shared_ptr<Channel>> out;
    out.reserve(channels_.size());
    for (auto& [n, c] : channels_) out.push_back(c);
    return out;
}

std::shared_ptr<Channel> CoreImpl::find_channel(std::string_view name) const {
    std::lock_guard lock(chan_mu_);
    auto it = channels_.find(name);
    if (it != channels_.end()) return it->second;
    // Accept a unique prefix, as operators type them.
    std::shared_ptr<Channel> found;
    for (auto& [n, c] : channels_)
        if (std::string_view(n).substr(0, name.size()) == name) {
            if (found) return nullptr;
            found = c;
        }
    return found;
}

void CoreImpl::end_channel(const std::shared_ptr<Channel>& chan) {
    if (chan->finished()) return;
    chan->finish();
    cdr_->post(*chan);
    if (events_.has_subscribers())
        events_.publish(event::ChannelHangup{chan->name(), chan->uniqueid(), chan->hangup_cause()});
    std::lock_guard lock(chan_mu_);
    channels_.erase(chan->name());
}

// The coroutine is spawned from the channel's own loop: its hangup signal is
// only ever touched there.
void CoreImpl::start_pbx(std::shared_ptr<Channel> chan) {
    asio::post(chan->loop(), [this, chan] {
        asio::co_spawn(chan->loop(), dialplan::run_pbx(*this, chan),
                       asio::bind_cancellation_slot(
                           chan->hangup_signal().slot(), [this, chan](std::exception_ptr e, bool released) {
                               // Handed to another owner by a transfer: it ends the channel.
                               if (released) return forget_finished_owner(chan);
                               if (e) {
                                   try {
                                       std::rethrow_exception(e);
                                   } catch (const std::exception& ex) {
                                       log_.error("{}: dialplan ended with an error: {}", chan->name(), ex.what());
                                   } catch (...) {
                                   }
                               }
                               end_channel(chan);
                           }));
    });
}

void CoreImpl::start_application(std::shared_ptr<Channel> chan, std::string app, std::string args) {
    asio::post(chan->loop(), [this, chan, app = std::move(app), args = std::move(args)]() mutable {
        asio::co_spawn(
            chan->loop(), dialplan::run_application(*this, chan, std::move(app), std::move(args)),
            asio::bind_cancellation_slot(chan->hangup_signal().slot(), [this, chan](std::exception_ptr, bool released) {
                if (released)
                    forget_finished_owner(chan);
                else
                    end_channel(chan);
            }));
    });
}

void CoreImpl::redirect(std::shared_ptr<Channel> chan, Channel::Redirect to) {
    post_to_channel(chan, [this, to = std::move(to)](Channel* c) mutable {
        if (c->hungup()) return;
        log_.info("{}: redirected {}", c->name(),
                  to.bridge_to       ? "to a bridge with " + to.bridge_to->name()
                  : to.exten.empty() ? std::string("out of its bridge, to be taken over")
                                     : fmt::format("to {}@{}:{}", to.exten, to.context, to.priority));
        c->set_redirect(std::move(to));
    });
}

std::string CoreImpl::substitute(Channel* chan, std::string_view text) {
    return dialplan::substitute_text(*this, chan, text);
}

awaitable<AppResult> CoreImpl::exec(Channel& chan, std::string_view app, std::string_view args) {
    return dialplan::exec_app(*this, chan, std::string(app), std::string(args));
}

bool CoreImpl::dialplan_exists(std::string_view context, std::string_view exten, int priority,
                               std::string_view callerid) const {
    auto plan = plan_.load();
    auto* ext = dialplan::find_extension(*plan, context, exten, callerid, std::chrono::system_clock::now());
    return ext && (priority <= 0 || ext->find_priority(priority));
}

int CoreImpl::dialplan_label(std::string_view context, std::string_view exten, std::string_view label,
                             std::string_view callerid) const {
    auto plan = plan_.load();
    auto* ext = dialplan::find_extension(*plan, context, exten, callerid, std::chrono::system_clock::now());
    return ext ? ext->find_label(label) : 0;
}

bool CoreImpl::dialplan_can_match(std::string_view context, std::string_view digits, std::string_view callerid) const {
    auto plan = plan_.load();
    return dialplan::match_digits(*plan, context, digits, callerid, std::chrono::system_clock::now()).can_match;
}

bool CoreImpl::dialplan_match_more(std::string_view context, std::string_view digits, std::string_view callerid) const {
    auto plan = plan_.load();
    return dialplan::match_digits(*plan, context, digits, callerid, std::chrono::system_clock::now()).match_more;
}

std::unique_ptr<TranslationPath> CoreImpl::build_path(Format from, Format to, std::string_view options) {
    return translation_->build(from, to, options);
}

std::size_t CoreImpl::channel_count() const {
    std::lock_guard lock(chan_mu_);
    return channels_.size();
}

RtpEngine& CoreImpl::rtp() {
    return *rtp_;
}

std::unique_ptr<MediaReader> CoreImpl::open_sound(std::string_view name, std::string_view language, Format preferred,
                                                  std::string& error) {
    return tandem::open_sound(*this, name, language, preferred, error);
}

std::unique_ptr<MediaWriter> CoreImpl::create_media(const std::filesystem::path& path, Format format,
                                                    std::string& error) {
    return tandem::create_media(*this, path, format, error);
}

}  // namespace tandem
