// The core's services, as modules and applications see them.
//
// One Core object holds all PBX state (no globals): registries, channels, the
// event loops, the worker pool, the key/value store, global variables and the
// dialplan. Modules reach it through Host::core() and applications through
// Channel::core(). All methods are safe from any thread unless noted.
#pragma once

#include <tandem/application.hpp>
#include <tandem/cdr.hpp>
#include <tandem/channel.hpp>
#include <tandem/cli.hpp>
#include <tandem/events.hpp>
#include <tandem/file.hpp>
#include <tandem/log.hpp>
#include <tandem/media.hpp>
#include <tandem/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class KvStore;
class RtpEngine;
struct MusicOnHold;

struct Paths {
    std::filesystem::path config_dir, module_dir, run_dir, spool_dir, db_dir, log_dir;
    // Prompts: <sounds_dir>/<language>/<name>.<ext>.
    std::filesystem::path sounds_dir;
};

class Core {
public:
    virtual ~Core() = default;

    virtual Log& log() = 0;
    virtual LogSink& log_sink() = 0;
    virtual const Paths& paths() const = 0;

    // --- loops and blocking work ---
    // A loop for a new call (round robin).
    virtual boost::asio::io_context& pick_loop() = 0;
    // The executor of the bounded worker pool for blocking work.
    virtual boost::asio::any_io_executor workers() = 0;

    // --- registries ---
    virtual Registry<Application>& applications() = 0;
    virtual Registry<Function>& functions() = 0;
    virtual Registry<ChannelTechnology>& technologies() = 0;
    virtual Registry<CliCommand>& cli_commands() = 0;
    virtual Registry<CdrBackend>& cdr_backends() = 0;
    virtual Registry<TranslatorInfo>& translators() = 0;
    virtual Registry<FileFormat>& file_formats() = 0;
    // The music on hold provider (tandem/moh.hpp); use start_music_on_hold().
    virtual Registry<MusicOnHold>& music_on_hold() = 0;
    virtual EventBus& events() = 0;

    // --- media ---
    // The cheapest chain of translators from `from` to `to` (options go to the
    // step that encodes `to`), or nullptr when no path exists, a step refuses
    // the options, or from == to (nothing to translate). For call set-up: it
    // creates codec state, so not per frame.
    virtual std::unique_ptr<TranslationPath> build_path(Format from, Format to, std::string_view options = {}) = 0;

    // --- media files (blocking: call through run_blocking, never on a loop) ---
    // Opens a prompt. `name` without extension ("vm-intro", "digits/7") is
    // looked up as <sounds>/<language>/<name>.*, then <sounds>/en/<name>.*,
    // then <sounds>/<name>.*; an absolute path is taken as it is. With an
    // extension a registered format owns, only that file is tried. Among the
    // variants in the first folder that has any, the one whose format is
    // cheapest to translate to `preferred` wins (0 when equal;
    // Format::none: any). nullptr with `error` naming what was searched.
    virtual std::unique_ptr<MediaReader> open_sound(std::string_view name, std::string_view language, Format preferred,
                                                    std::string& error) = 0;
    // Creates a writer for `path`, whose extension picks the file format
    // ("msg.wav", "rec.ulaw"); `format` chooses the encoding inside a container
    // that has several (Format::none: its default). Relative paths are taken
    // from the spool directory.
    virtual std::unique_ptr<MediaWriter> create_media(const std::filesystem::path& path, Format format,
                                                      std::string& error) = 0;
    // RTP sessions for channel drivers (tandem/rtp.hpp); configured by rtp.conf.
    virtual RtpEngine& rtp() = 0;

    // --- state ---
    virtual KvStore& kv() = 0;
    virtual std::optional<std::string> global_variable(std::string_view name) const = 0;
    virtual void set_global_variable(std::string_view name, std::string value) = 0;

    // --- channels ---
    // False while the PBX is stopping: drivers must refuse new calls.
    virtual bool accepting_calls() const = 0;
    // Creates a channel of technology `tech` on `loop`; the name gets a unique
    // suffix ("Local/100@default-0000002a"). Returns nullptr if the technology
    // is not registered or the PBX is stopping.
    virtual std::shared_ptr<Channel> create_channel(std::string_view tech, std::string_view name_prefix,
                                                    std::unique_ptr<ChannelDriver> driver,
                                                    boost::asio::io_context& loop) = 0;
    // "Tech/destination": asks the technology for an outgoing channel, created
    // on the requestor's loop when there is one. nullptr and `cause` on failure.
    virtual std::shared_ptr<Channel> request_channel(std::string_view dial_string, const Channel* requestor,
                                                     int& cause) = 0;
    virtual std::vector<std::shared_ptr<Channel>> channels() const = 0;
    // Ends a channel (driver hangup, CDR, hangup event, removal). The dialplan
    // does this itself; a driver calls it for a channel that never ran one.
    // On the channel's loop.
    virtual void end_channel(const std::shared_ptr<Channel>& chan) = 0;
    virtual std::shared_ptr<Channel> find_channel(std::string_view name) const = 0;

    // Runs the dialplan on a channel from its current position (detached; the
    // channel is hung up when the dialplan ends). Call from any thread.
    virtual void start_pbx(std::shared_ptr<Channel> chan) = 0;
    // Runs one application on a channel then hangs it up (detached).
    virtual void start_application(std::shared_ptr<Channel> chan, std::string app, std::string args) = 0;
    // Transfers: asks whatever runs `chan` (a bridge in Dial) to let it go
    // and continue where `to` says, like Asterisk's async goto. A channel
    // running its own dialplan continues there; one Dial owns (a callee) is
    // released by Dial and gets a dialplan of its own (or the bridge `to`
    // names). The other leg of that bridge is hung up. Any thread: posted to
    // the channel's loop. See docs/design-notes.md, "Transfers".
    virtual void redirect(std::shared_ptr<Channel> chan, Channel::Redirect to) = 0;

    // --- dialplan services for applications (on the channel's loop) ---
    virtual std::string substitute(Channel* chan, std::string_view text) = 0;
    virtual awaitable<AppResult> exec(Channel& chan, std::string_view app, std::string_view args) = 0;
    virtual bool dialplan_exists(std::string_view context, std::string_view exten, int priority,
                                 std::string_view callerid) const = 0;
    // Digit collection (Asterisk's ast_canmatch_extension / ast_matchmore_extension):
    // can_match is true when some extension of the context (or its includes)
    // is `digits` or starts with them; match_more when some extension is
    // longer than `digits` and starts with them, so another digit may matter.
    virtual bool dialplan_can_match(std::string_view context, std::string_view digits,
                                    std::string_view callerid) const = 0;
    virtual bool dialplan_match_more(std::string_view context, std::string_view digits,
                                     std::string_view callerid) const = 0;
    // Resolves a priority label of an extension; 0 when not found.
    virtual int dialplan_label(std::string_view context, std::string_view exten, std::string_view label,
                               std::string_view callerid) const = 0;
};

// Runs `f` on the worker pool and resumes the caller on its own executor.
// Capture by reference (the awaiting coroutine outlives the call). GCC 12
// destroys a lambda temporary twice when it is created inside a `co_await`
// expression and captures a non-trivial object (a string, a path) by value:
// a double free, whatever the callee. Name such a lambda before the co_await,
// or capture by reference. See docs/design-notes.md, "Coroutines and GCC 12".
template <class F>
auto run_blocking(Core& core, F f) -> awaitable<decltype(f())> {
    using R = decltype(f());
    co_return co_await boost::asio::co_spawn(
        core.workers(), [f = std::move(f)]() mutable -> awaitable<R> { co_return f(); }, boost::asio::use_awaitable);
}

}  // namespace tandem
