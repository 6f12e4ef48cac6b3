// res_musiconhold: music on hold classes from musiconhold.conf, the music
// on hold provider of the core (tandem/moh.hpp), the MusicOnHold,
// WaitMusicOnHold, StartMusicOnHold and StopMusicOnHold applications, and
// the `moh show classes` / `moh reload` commands.
//
// A class is a directory of files in any readable file format (WAV, MP3,
// raw G.711, ...). Files are grouped by name without extension, so
// `song.wav` and `song.ulaw` are one piece whose cheapest variant for the
// channel is played, as Playback picks prompts. `sort = alpha` plays them in
// name order, `random` shuffles, `randstart` starts at a random piece and
// goes on in order; the list loops forever.
//
// The classes are an immutable snapshot swapped on reload. A player keeps the
// class it started with and looks the class up again at each piece, so a
// reload changes what comes next without cutting the music that plays.
//
// Each channel with music has one player: a coroutine on the channel's loop
// that writes one 20 ms frame per tick of a timer set from its start time
// (so pacing never drifts) and reads about one second ahead on the worker
// pool. Its frames are kept in fixed slots reused from one second to the
// next, so the steady state allocates nothing per frame. A class with nothing
// playable plays silence: the peer keeps receiving RTP and nothing breaks.
#include <tandem/core.hpp>
#include <tandem/file.hpp>
#include <tandem/moh.hpp>
#include <tandem/module.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace asio = boost::asio;

constexpr std::string_view default_class = "default";
// Frames read per worker-pool trip: one second of 20 ms frames.
constexpr std::size_t read_ahead = 50;
// Behind by more than this (a slow disk, a busy loop), the player resets its
// clock instead of sending a burst to catch up.
constexpr auto max_lag = 200ms;

enum class Sort { alpha, random, randstart };

std::string_view to_string(Sort s) {
    switch (s) {
        case Sort::alpha:
            return "alpha";
        case Sort::random:
            return "random";
        case Sort::randstart:
            return "randstart";
    }
    return "alpha";
}

struct MohClass {
    std::string name;
    fs::path directory;
    Sort sort = Sort::alpha;
    config::Location where;
    // Pieces in name order: the file itself when it has one variant, else
    // the path without extension (the core picks the variant per channel).
    std::vector<fs::path> pieces;
    // Why nothing can play (missing or empty directory); empty when fine.
    std::string problem;
};

using Classes = std::map<std::string, std::shared_ptr<const MohClass>, std::less<>>;

const std::vector<config::OptionSpec>& schema() {
    static const std::vector<config::OptionSpec> s = {
        {.name = "mode",
         .type = config::OptionType::choice,
         .default_value = "files",
         .choices = {"files"},
         .help = "files: play the files of `directory`"},
        {.name = "directory", .help = "folder of music files; relative to the sounds directory"},
        {.name = "sort",
         .type = config::OptionType::choice,
         .default_value = "alpha",
         .choices = {"alpha", "random", "randstart"},
         .help = "alpha: in name order; random: shuffled; randstart: from a random piece, then in order"},
    };
    return s;
}

// One channel's music.
struct Player {
    explicit Player(asio::io_context& loop) : timer(loop) {}
    std::string class_name;
    std::shared_ptr<const MohClass> cls;
    bool stopped = false;  // on the channel's loop only
    asio::steady_timer timer;
};

class MusicOnHoldModule final : public Module {
public:
    // Players still running when the module goes (at shutdown, right after
    // the last channel ended) are told to stop on their loops and awaited:
    // their code and this object must outlive them.
    ~MusicOnHoldModule() override {
        regs_.clear();
        std::unique_lock lock(mu_);
        for (auto& [id, p] : players_)
            asio::post(p->timer.get_executor(), [p = p] {
                p->stopped = true;
                p->timer.cancel();
            });
        if (!idle_.wait_for(lock, 2s, [this] { return running_ == 0; }))
            host_->log().error("{} music players did not stop", running_);
    }

    void load(Host& host) override {
        host_ = &host;
        load_classes(host);
        regs_.push_back(host.add(std::string(moh_provider),
                                 MusicOnHold{"Music on hold from musiconhold.conf",
                                             [this](Channel& c, std::string_view cls) { return start(c, cls); },
                                             [this](Channel& c) { stop(c); }}));
        regs_.push_back(
            host.add("MusicOnHold",
                     Application{"Play music on hold", "MusicOnHold([class[,duration]])",
                                 "Plays music of `class` for `duration` seconds, or until the caller hangs up when no\n"
                                 "duration is given. The class is chosen as in Asterisk: the channel's own\n"
                                 "(Set(CHANNEL(musicclass)=...)) when it exists, then `class`, then `default`.\n"
                                 "It does not answer: on a channel not yet up it opens early media (progress).",
                                 0, 2, [this](Channel& c, const AppArgs& a) { return play_for(c, a[0], a[1]); }}));
        regs_.push_back(host.add(
            "WaitMusicOnHold", Application{"Wait with music on hold", "WaitMusicOnHold(seconds)",
                                           "Plays the channel's music class for `seconds`: MusicOnHold(,seconds).", 1,
                                           1, [this](Channel& c, const AppArgs& a) { return play_for(c, {}, a[0]); }}));
        regs_.push_back(
            host.add("StartMusicOnHold",
                     Application{"Start music on hold and continue", "StartMusicOnHold([class])",
                                 "Starts music of `class` (chosen as MusicOnHold chooses) in the background and\n"
                                 "continues at once; it plays until StopMusicOnHold() or hangup. Audio the\n"
                                 "dialplan plays meanwhile is not heard: stop the music first.",
                                 0, 1, [this](Channel& c, const AppArgs& a) { return start_app(c, a[0]); }}));
        regs_.push_back(
            host.add("StopMusicOnHold", Application{"Stop music on hold", "StopMusicOnHold()",
                                                    "Stops the music StartMusicOnHold() (or a hold) started.", 0, 0,
                                                    [this](Channel& c, const AppArgs&) { return stop_app(c); }}));
        regs_.push_back(
            host.add(CliCommand{{"moh", "show", "classes"},
                                "Show the music on hold classes",
                                "Usage: moh show classes\n"
                                "  Lists each class of musiconhold.conf: its directory, order, the pieces found,\n"
                                "  how many channels play it now, and why it plays silence if it does.",
                                [this](CliRequest& r) { return show_classes(r); },
                                nullptr}));
        regs_.push_back(
            host.add(CliCommand{{"moh", "reload"},
                                "Re-read musiconhold.conf",
                                "Usage: moh reload\n"
                                "  Re-reads musiconhold.conf and the class directories. Music that plays goes on;\n"
                                "  each player takes the new list at its next piece.",
                                [this](CliRequest& r) { return reload_command(r); },
                                nullptr}));
    }

    void reload(Host& host) override { load_classes(host); }

    int use_count() const override {
        std::lock_guard lock(mu_);
        return static_cast<int>(players_.size());
    }

private:
    // --- configuration ---------------------------------------------------

    // Reads musiconhold.conf and lists each class's directory. Blocking (a
    // directory scan): at load, on reload, or on the worker pool.
    void load_classes(Host& host) {
        auto parsed = host.read_config("musiconhold.conf");
        auto classes = std::make_shared<Classes>();
        bool have_file = !parsed.file.files_read.empty();
        for (auto& s : parsed.file.sections) {
            if (s.is_template || s.name.empty() || s.name == "general") continue;
            config::Options o;
            for (auto& d : config::bind(s, schema(), o, true)) host.config_error(d);
            for (auto& v : s.variables)
                if (std::none_of(schema().begin(), schema().end(),
                                 [&](const config::OptionSpec& spec) { return iequals(spec.name, v.name); }))
                    host.log().warning("{}: [{}]: option '{}' is not supported; ignored", v.where.str(), s.name,
                                       v.name);
            auto c = std::make_shared<MohClass>();
            c->name = s.name;
            c->where = s.where;
            auto dir = o.str("directory");
            if (dir.empty()) {
                host.config_error({s.where, "music on hold class [" + s.name + "] has no directory"});
                dir = s.name;
            }
            c->directory = resolve(host, dir);
            auto sort = o.str("sort");
            c->sort = sort == "random" ? Sort::random : sort == "randstart" ? Sort::randstart : Sort::alpha;
            (*classes)[c->name] = std::move(c);
        }
        if (!have_file && !classes->count(default_class)) {
            // No musiconhold.conf at all: the sample music, so hold plays something out of the box.
            auto c = std::make_shared<MohClass>();
            c->name = default_class;
            c->directory = resolve(host, "moh");
            c->where = {parsed.file.path, 0};
            (*classes)[c->name] = std::move(c);
        }
        if (!host.checking())
            for (auto& [name, c] : *classes) {
                auto scanned = std::make_shared<MohClass>(*c);
                scan(*scanned);
                if (!scanned->problem.empty())
                    host.log().error("{}: music on hold class [{}]: {}; it plays silence", scanned->where.str(), name,
                                     scanned->problem);
                c = std::move(scanned);
            }
        std::lock_guard lock(mu_);
        classes_ = std::move(classes);
    }

    static bool iequals(std::string_view a, std::string_view b) {
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
               });
    }

    static fs::path resolve(Host& host, const std::string& dir) {
        fs::path p(dir);
        return (p.is_absolute() ? p : host.core().paths().sounds_dir / p).lexically_normal();
    }

    // Lists the pieces of a class: files whose extension a readable format
    // owns, grouped by name without extension.
    void scan(MohClass& c) {
        std::set<std::string> extensions;
        host_->core().file_formats().for_each([&](const std::string&, const FileFormat& f, const std::string&) {
            if (f.can_read)
                for (auto& e : f.extensions) extensions.insert(e);
        });
        std::error_code ec;
        if (!fs::is_directory(c.directory, ec)) {
            c.problem = "directory " + c.directory.string() + " is missing";
            return;
        }
        std::map<fs::path, std::vector<fs::path>> stems;
        for (auto it = fs::directory_iterator(c.directory, ec); !ec && it != fs::directory_iterator();
             it.increment(ec)) {
            auto& p = it->path();
            auto name = p.filename().string();
            if (name.empty() || name[0] == '.' || !it->is_regular_file(ec)) continue;
            auto ext = p.extension().string();
            if (ext.size() < 2) continue;
            std::string lower;
            for (char ch : ext.substr(1)) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (!extensions.count(lower)) continue;
            auto stem = p;
            stems[stem.replace_extension()].push_back(p);
        }
        if (ec) {
            c.problem = "directory " + c.directory.string() + " cannot be read: " + ec.message();
            return;
        }
        for (auto& [stem, files] : stems) c.pieces.push_back(files.size() == 1 ? files.front() : stem);
        if (c.pieces.empty()) c.problem = "directory " + c.directory.string() + " holds no playable file";
    }

    std::shared_ptr<const Classes> classes() const {
        std::lock_guard lock(mu_);
        return classes_;
    }

    std::shared_ptr<const MohClass> find_class(std::string_view name) const {
        auto all = classes();
        auto it = all->find(name);
        return it == all->end() ? nullptr : it->second;
    }

    // --- the provider ----------------------------------------------------

    // On the channel's loop.
    bool start(Channel& chan, std::string_view requested) {
        if (chan.hungup()) return false;
        // Asterisk's order: the channel's own class, the one asked for, then default.
        std::shared_ptr<const MohClass> cls;
        for (std::string_view name : {std::string_view(chan.music_class()), requested, default_class})
            if (!name.empty() && (cls = find_class(name))) break;
        if (!cls) {
            host_->log().warning("{}: no music on hold class '{}' (nor default)", chan.name(),
                                 requested.empty() ? std::string_view(chan.music_class()) : requested);
            return false;
        }
        {
            std::lock_guard lock(mu_);
            auto it = players_.find(chan.uniqueid());
            if (it != players_.end()) {
                if (it->second->class_name == cls->name) return true;  // already playing it
            }
        }
        stop(chan);
        auto player = std::make_shared<Player>(chan.loop());
        player->class_name = cls->name;
        player->cls = cls;
        {
            std::lock_guard lock(mu_);
            players_[chan.uniqueid()] = player;
            ++running_;
        }
        chan.set_music_playing(true);
        // Pins this module while the music plays.
        auto lease = chan.core().music_on_hold().find(moh_provider);
        asio::co_spawn(chan.executor(), play(chan.shared_from_this(), player, std::move(lease), this), asio::detached);
        host_->log().debug("{}: music on hold class {} started", chan.name(), cls->name);
        return true;
    }

    // On the channel's loop: from here on the channel's audio is its own.
    void stop(Channel& chan) {
        std::shared_ptr<Player> p;
        {
            std::lock_guard lock(mu_);
            auto it = players_.find(chan.uniqueid());
            if (it == players_.end()) return;
            p = std::move(it->second);
            players_.erase(it);
        }
        p->stopped = true;
        p->timer.cancel();
        chan.set_music_playing(false);
        host_->log().debug("{}: music on hold stopped", chan.name());
    }

    // The player ended by itself (hangup): forget it unless replaced.
    void forget(Channel& chan, const std::shared_ptr<Player>& p) {
        {
            std::lock_guard lock(mu_);
            auto it = players_.find(chan.uniqueid());
            if (it == players_.end() || it->second != p) return;
            players_.erase(it);
        }
        if (!p->stopped) chan.set_music_playing(false);
        p->stopped = true;
    }

    // Reads the next frames of the class into `slots`, moving to the next
    // piece at the end of one; returns how many. Runs on the worker pool.
    struct Source {
        std::shared_ptr<const MohClass> cls;
        std::unique_ptr<MediaReader> reader;
        std::size_t next_piece = 0;
        std::size_t last_piece = static_cast<std::size_t>(-1);
        bool first = true;
        std::minstd_rand rng{std::random_device{}()};
        Format preferred = Format::none;
        std::uint32_t per_frame = 160;
    };

    std::size_t fill(Source& src, const std::string& class_name, std::array<Frame, read_ahead>& slots) {
        std::size_t n = 0;
        std::size_t empty_pieces = 0;  // pieces in a row that gave nothing
        while (n < slots.size()) {
            if (!src.reader) {
                // At each piece the class as it is now: a reload takes effect here.
                if (auto now = find_class(class_name)) src.cls = std::move(now);
                auto& pieces = src.cls->pieces;
                if (pieces.empty() || empty_pieces >= pieces.size()) break;
                std::size_t i = pick(src, pieces.size());
                std::string error;
                src.reader = host_->core().open_sound(pieces[i].string(), {}, src.preferred, error);
                if (!src.reader) {
                    host_->log().warning("music on hold class [{}]: {}", class_name, error);
                    ++empty_pieces;
                    continue;
                }
                src.per_frame = src.reader->format() == Format::gsm ? 160 : src.reader->sample_rate() / 50;
                if (src.per_frame == 0) src.per_frame = 160;
            }
            if (src.reader->read(slots[n], src.per_frame)) {
                ++n;
                empty_pieces = 0;
            } else {
                src.reader.reset();
                ++empty_pieces;
            }
        }
        return n;
    }

    static std::size_t pick(Source& src, std::size_t count) {
        std::size_t i = 0;
        if (src.cls->sort == Sort::random && count > 1) {
            // Any piece but the one just played.
            i = std::uniform_int_distribution<std::size_t>(0, count - 2)(src.rng);
            if (i >= src.last_piece) ++i;
        } else if (src.cls->sort == Sort::randstart && src.first) {
            i = std::uniform_int_distribution<std::size_t>(0, count - 1)(src.rng);
        } else {
            i = src.next_piece % count;
        }
        src.first = false;
        src.last_piece = i;
        src.next_piece = i + 1;
        return i;
    }

    static awaitable<void> play(std::shared_ptr<Channel> chan, std::shared_ptr<Player> player, Lease<MusicOnHold> lease,
                                MusicOnHoldModule* self) {
        Core& core = chan->core();
        Source src;
        src.cls = player->cls;
        src.preferred = chan->native_format();
        std::string class_name = player->class_name;
        // Reused every second; payloads (even 48 kHz ones on the heap) keep their capacity.
        auto slots = std::make_unique<std::array<Frame, read_ahead>>();
        Frame silence;
        {
            std::array<std::uint8_t, 320> zeros{};
            silence.kind = FrameKind::voice;
            silence.subclass = static_cast<std::uint32_t>(Format::slin8);
            silence.samples = 160;
            silence.set_payload(zeros);
        }
        std::size_t have = 0, next = 0;
        std::size_t silent_left = 0;  // frames of silence before trying the class again
        auto start = std::chrono::steady_clock::now();
        std::int64_t sent = 0;
        try {
            while (!player->stopped && !chan->hungup()) {
                if (next == have && silent_left == 0) {
                    // Named before the co_await: see "Coroutines and GCC 12".
                    auto job = [self, &src, &class_name, &slots] { return self->fill(src, class_name, *slots); };
                    have = co_await run_blocking(core, job);
                    next = 0;
                    if (player->stopped || chan->hungup()) break;
                    // Nothing to play: a second of silence, then the class again (a reload may fill it).
                    if (have == 0) silent_left = read_ahead;
                }
                if (next < have) {
                    chan->write_music((*slots)[next++]);
                } else {
                    chan->write_music(silence);
                    --silent_left;
                }
                ++sent;
                auto due = start + sent * 20ms;
                auto now = std::chrono::steady_clock::now();
                if (now - due > max_lag) {
                    start = now - sent * 20ms;
                    due = now;
                }
                player->timer.expires_at(due);
                co_await player->timer.async_wait(asio::as_tuple(asio::use_awaitable));
            }
        } catch (...) {
            // The loop is shutting down: nothing left to clean up but what unwinds.
        }
        self->forget(*chan, player);
        // The reader closes its file and the lease lets the module go before
        // the module may be destroyed.
        src.reader.reset();
        { auto done = std::move(lease); }
        self->player_done();
    }

    void player_done() {
        std::lock_guard lock(mu_);
        --running_;
        idle_.notify_all();
    }

    // --- applications ----------------------------------------------------

    static std::chrono::milliseconds seconds_arg(std::string_view s) {
        while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        double v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc() || v <= 0) return 0ms;
        return std::chrono::milliseconds(static_cast<long long>(v * 1000));
    }

    // Stops the music however the application ends (a hangup unwinds it).
    struct StopGuard {
        MusicOnHoldModule* self;
        Channel& chan;
        ~StopGuard() { self->stop(chan); }
    };

    awaitable<AppResult> play_for(Channel& chan, std::string music_class, std::string duration_text) {
        auto duration = seconds_arg(duration_text);
        if (chan.state() != ChannelState::up) chan.indicate(Indication::progress);
        if (!start(chan, music_class)) {
            // Asterisk goes on without music; so does the caller's wait.
            if (duration.count() > 0 && !co_await chan.sleep(duration)) co_return AppResult::hangup;
            co_return AppResult::next;
        }
        StopGuard guard{this, chan};
        if (duration.count() > 0) {
            if (!co_await chan.sleep(duration)) co_return AppResult::hangup;
            co_return AppResult::next;
        }
        while (co_await chan.sleep(1h)) {
        }
        co_return AppResult::hangup;
    }

    awaitable<AppResult> start_app(Channel& chan, std::string music_class) {
        if (chan.state() != ChannelState::up) chan.indicate(Indication::progress);
        start(chan, music_class);
        co_return AppResult::next;
    }

    awaitable<AppResult> stop_app(Channel& chan) {
        stop(chan);
        co_return AppResult::next;
    }

    // --- CLI -------------------------------------------------------------

    awaitable<int> show_classes(CliRequest& r) {
        if (!r.args.empty()) co_return cli_status::usage;
        auto all = classes();
        std::map<std::string, int> playing;
        {
            std::lock_guard lock(mu_);
            for (auto& [id, p] : players_) ++playing[p->class_name];
        }
        r.out.print("{:<16} {:<10} {:>6} {:>7}  {}\n", "Class", "Sort", "Pieces", "Playing", "Directory");
        for (auto& [name, c] : *all) {
            r.out.print("{:<16} {:<10} {:>6} {:>7}  {}\n", name, to_string(c->sort), c->pieces.size(), playing[name],
                        c->directory.string());
            if (!c->problem.empty()) r.out.print("  {}: {}; plays silence\n", c->where.str(), c->problem);
        }
        r.out.print("{} class{}\n", all->size(), all->size() == 1 ? "" : "es");
        co_return cli_status::ok;
    }

    awaitable<int> reload_command(CliRequest& r) {
        if (!r.args.empty()) co_return cli_status::usage;
        auto job = [this] { load_classes(*host_); };
        co_await run_blocking(host_->core(), job);
        r.out.print("musiconhold.conf reloaded: {} classes\n", classes()->size());
        co_return cli_status::ok;
    }

    Host* host_ = nullptr;
    mutable std::mutex mu_;  // classes_, players_ and running_: music plays on every loop
    std::condition_variable idle_;
    std::size_t running_ = 0;  // player coroutines not yet finished
    std::shared_ptr<const Classes> classes_ = std::make_shared<Classes>();
    std::map<std::string, std::shared_ptr<Player>> players_;  // by channel unique id
    std::vector<Registration> regs_;                          // last: dropped first
};

}  // namespace

TANDEM_MODULE(MusicOnHoldModule)
