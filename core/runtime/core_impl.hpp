// CoreImpl: the one object that holds a running PBX.
//
// It owns the event loops, the worker pool, the registries, the channel table,
// the key/value store, the dialplan snapshot and the module loader. Nothing in
// the core is global, so tests can boot a real core in-process.
#pragma once

#include "runtime/log.hpp"

#include <tandem/config.hpp>
#include <tandem/core.hpp>
#include <tandem/kvstore.hpp>
#include <tandem/moh.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace tandem {

class ModuleLoader;
class CliServer;
class CdrEngine;
class TranslatorGraph;
namespace rtp {
class EngineImpl;
}
namespace dialplan {
struct Snapshot;
}

struct StartOptions {
    std::filesystem::path config_dir = "/etc/tandem";
    LogLevel terminal_level = LogLevel::info;
    // false: tandem.conf's `verbose` decides (no -v/-q on the command line).
    bool terminal_level_explicit = true;
    bool checking = false;       // tandem -t: validate only
    bool control_socket = true;  // listen for consoles
    std::optional<int> loops;    // overrides tandem.conf
};

class CoreImpl final : public Core {
public:
    explicit CoreImpl(StartOptions options);
    ~CoreImpl() override;

    // Reads tandem.conf, starts loops, loads modules and the dialplan, opens the
    // control socket. Returns false (with problems) when the PBX cannot run.
    bool start(std::vector<std::string>& problems);
    // tandem -t: every problem as "file:line: message"; returns their count.
    int check(std::vector<std::string>& problems);
    // Stops: refuse calls; hang up every channel when `hangup_calls`, else wait
    // for calls to end; flush CDRs; unload modules; stop loops.
    void shutdown(bool hangup_calls);

    enum class Control { reload, stop_now, stop_graceful };
    void post_control(Control c);
    Control wait_control();

    // Reloads configuration, modules and dialplan; what happened goes to `report`.
    bool reload(std::string& report);
    bool reload_dialplan(std::vector<std::string>& problems);

    // --- Core ---
    Log& log() override { return log_; }
    LogSink& log_sink() override { return sink_; }
    const Paths& paths() const override { return paths_; }
    boost::asio::io_context& pick_loop() override;
    boost::asio::any_io_executor workers() override { return workers_->get_executor(); }
    Registry<Application>& applications() override { return apps_; }
    Registry<Function>& functions() override { return functions_; }
    Registry<ChannelTechnology>& technologies() override { return techs_; }
    Registry<CliCommand>& cli_commands() override { return cli_; }
    Registry<CdrBackend>& cdr_backends() override { return cdr_backends_; }
    Registry<TranslatorInfo>& translators() override { return translators_; }
    Registry<FileFormat>& file_formats() override { return file_formats_; }
    Registry<MusicOnHold>& music_on_hold() override { return moh_; }
    EventBus& events() override { return events_; }
    KvStore& kv() override { return *kv_; }
    std::unique_ptr<TranslationPath> build_path(Format from, Format to, std::string_view options = {}) override;
    std::unique_ptr<MediaReader> open_sound(std::string_view name, std::string_view language, Format preferred,
                                            std::string& error) override;
    std::unique_ptr<MediaWriter> create_media(const std::filesystem::path& path, Format format,
                                              std::string& error) override;
    RtpEngine& rtp() override;
    std::optional<std::string> global_variable(std::string_view name) const override;
    void set_global_variable(std::string_view name, std::string value) override;
    bool accepting_calls() const override { return accepting_.load(); }
    std::shared_ptr<Channel> create_channel(std::string_view tech, std::string_view name_prefix,
                                            std::unique_ptr<ChannelDriver> driver,
                                            boost::asio::io_context& loop) override;
    std::shared_ptr<Channel> request_channel(std::string_view dial_string, const Channel* requestor,
                                             int& cause) override;
    std::vector<std::shared_ptr<Channel>> channels() const override;
    std::shared_ptr<Channel> find_channel(std::string_view name) const override;
    void start_pbx(std::shared_ptr<Channel> chan) override;
    void start_application(std::shared_ptr<Channel> chan, std::string app, std::string args) override;
    void redirect(std::shared_ptr<Channel> chan, Channel::Redirect to) override;
    std::string substitute(Channel* chan, std::string_view text) override;
    awaitable<AppResult> exec(Channel& chan, std::string_view app, std::string_view args) override;
    bool dialplan_exists(std::string_view context, std::string_view exten, int priority,
                         std::string_view callerid) const override;
    int dialplan_label(std::string_view context, std::string_view exten, std::string_view label,
                       std::string_view callerid) const override;
    bool dialplan_can_match(std::string_view context, std::string_view digits,
                            std::string_view callerid) const override;
    bool dialplan_match_more(std::string_view context, std::string_view digits,
                             std::string_view callerid) const override;

    // --- core-private ---
    CoreLog& core_log() { return sink_; }
    ModuleLoader& modules() { return *loader_; }
    ModuleUse& core_use() { return core_use_; }
    CdrEngine& cdr() { return *cdr_; }
    TranslatorGraph& translator_graph() { return *translation_; }
    std::shared_ptr<const dialplan::Snapshot> dialplan() const { return plan_.load(); }
    const StartOptions& options() const { return options_; }
    std::size_t loop_count() const { return loops_.size(); }
    boost::asio::io_context& loop(std::size_t i) { return *loops_[i]; }
    // Between start() and shutdown(): the loops' threads are running.
    bool loops_running() const { return !loop_threads_.empty(); }
    std::size_t worker_count() const { return worker_threads_; }
    std::chrono::system_clock::time_point started_at() const { return started_; }
    std::chrono::system_clock::time_point reloaded_at() const { return reloaded_; }
    std::size_t channel_count() const;
    std::uint64_t calls_processed() const { return calls_processed_.load(); }
    std::size_t max_calls() const { return max_calls_; }
    void end_channel(const std::shared_ptr<Channel>& chan) override;

private:
    bool read_main_config(std::vector<std::string>& problems);
    void register_core_commands();
    void start_loops(int n);
    void stop_loops();

    StartOptions options_;
    CoreLog sink_;
    Log log_;
    Paths paths_;
    ModuleUse core_use_{"core"};

    std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
    std::vector<std::thread> loop_threads_;
    std::vector<std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>> guards_;
    std::atomic<unsigned> next_loop_{0};
    std::size_t worker_threads_ = 4;
    std::unique_ptr<boost::asio::thread_pool> workers_;

    Registry<Application> apps_{true};
    Registry<Function> functions_{true};
    Registry<ChannelTechnology> techs_{true};
    Registry<CliCommand> cli_{true};
    Registry<CdrBackend> cdr_backends_{false};
    Registry<TranslatorInfo> translators_{true};
    Registry<FileFormat> file_formats_{true};
    Registry<MusicOnHold> moh_{true};
    EventBus events_;
    std::unique_ptr<TranslatorGraph> translation_;
    std::unique_ptr<rtp::EngineImpl> rtp_;
    std::vector<Registration> core_registrations_;

    std::unique_ptr<KvStore> kv_;
    mutable std::shared_mutex globals_mu_;
    std::unordered_map<std::string, std::string> globals_;

    mutable std::mutex chan_mu_;
    std::map<std::string, std::shared_ptr<Channel>, std::less<>> channels_;
    std::atomic<std::uint64_t> channel_seq_{0};
    std::atomic<std::uint64_t> calls_processed_{0};
    std::atomic<bool> accepting_{true};
    std::size_t max_calls_ = 0;

    std::atomic<std::shared_ptr<const dialplan::Snapshot>> plan_;
    std::unique_ptr<ModuleLoader> loader_;
    std::unique_ptr<CdrEngine> cdr_;
    std::unique_ptr<CliServer> cli_server_;

    std::mutex control_mu_;
    std::condition_variable control_cv_;
    std::deque<Control> controls_;

    std::chrono::system_clock::time_point started_, reloaded_;
    bool running_ = false;
    std::filesystem::path pid_file_;
};

}  // namespace tandem
