#include "media/files.hpp"

#include "cli/server.hpp"
#include "media/translate.hpp"
#include "runtime/core_impl.hpp"

#include <tandem/core.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace fs = std::filesystem;

namespace tandem {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
}

// The module's reader, kept together with the lease that pins its module.
// The reader goes first: its code lives in the module.
class LeasedReader final : public MediaReader {
public:
    LeasedReader(std::unique_ptr<MediaReader> inner, Lease<FileFormat> lease)
        : lease_(std::move(lease)), inner_(std::move(inner)) {}
    Format format() const override { return inner_->format(); }
    std::uint32_t sample_rate() const override { return inner_->sample_rate(); }
    bool read(Frame& out, std::uint32_t samples) override { return inner_->read(out, samples); }
    bool seek(std::chrono::milliseconds p) override { return inner_->seek(p); }
    std::chrono::milliseconds length() const override { return inner_->length(); }
    std::chrono::milliseconds position() const override { return inner_->position(); }
    const fs::path& path() const override { return inner_->path(); }

private:
    Lease<FileFormat> lease_;
    std::unique_ptr<MediaReader> inner_;
};

class LeasedWriter final : public MediaWriter {
public:
    LeasedWriter(std::unique_ptr<MediaWriter> inner, Lease<FileFormat> lease)
        : lease_(std::move(lease)), inner_(std::move(inner)) {}
    Format format() const override { return inner_->format(); }
    bool write(const Frame& f) override { return inner_->write(f); }
    bool commit(std::string& error) override { return inner_->commit(error); }
    void abort() override { inner_->abort(); }
    std::uint64_t samples() const override { return inner_->samples(); }
    const fs::path& path() const override { return inner_->path(); }

private:
    Lease<FileFormat> lease_;
    std::unique_ptr<MediaWriter> inner_;
};

struct Candidate {
    fs::path path;
    std::string format_name;
    Format format = Format::none;
    std::uint64_t cost = 0;
};

// Which registered format owns an extension (case-insensitive), if any.
std::string format_for_extension(Registry<FileFormat>& formats, std::string_view ext, bool for_writing) {
    auto e = lower(ext);
    std::string found;
    formats.for_each([&](const std::string& name, const FileFormat& f, const std::string&) {
        if (!found.empty() || (for_writing ? !f.can_write : !f.can_read)) return;
        if (std::find(f.extensions.begin(), f.extensions.end(), e) != f.extensions.end()) found = name;
    });
    return found;
}

std::uint64_t translation_cost(CoreImpl& core, Format from, Format preferred) {
    if (preferred == Format::none || from == preferred) return 0;
    if (auto plan = core.translator_graph().plan(from, preferred)) return plan->cost;
    return std::numeric_limits<std::uint32_t>::max();  // playable only if nothing else is
}

std::unique_ptr<MediaReader> open_candidate(CoreImpl& core, const Candidate& c, std::string& error) {
    auto lease = core.file_formats().find(c.format_name);
    if (!lease || !lease->open) {
        error = fmt::format("{}: format '{}' is gone", c.path.string(), c.format_name);
        return nullptr;
    }
    auto inner = lease->open(c.path, error);
    if (!inner) return nullptr;
    return std::make_unique<LeasedReader>(std::move(inner), std::move(lease));
}

// The readable variants of `base` (a path without extension) in one folder.
std::vector<Candidate> variants(CoreImpl& core, const fs::path& base, Format preferred) {
    std::vector<Candidate> out;
    std::error_code ec;
    core.file_formats().for_each([&](const std::string& name, const FileFormat& f, const std::string&) {
        if (!f.can_read || !f.open) return;
        for (auto& ext : f.extensions) {
            fs::path p = base;
            p += "." + ext;
            if (!fs::is_regular_file(p, ec)) continue;
            Format fmt = f.probe ? f.probe(p) : f.format;
            if (fmt == Format::none) continue;
            out.push_back({p, name, fmt, translation_cost(core, fmt, preferred)});
        }
    });
    // Cheapest first; on a tie the registry's (name) order stays.
    std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.cost < b.cost; });
    return out;
}

}  // namespace

std::unique_ptr<MediaReader> open_sound(CoreImpl& core, std::string_view name, std::string_view language,
                                        Format preferred, std::string& error) {
    error.clear();
    if (name.empty()) {
        error = "no file name given";
        return nullptr;
    }
    fs::path given{std::string(name)};
    // Folders to search, in order: the language, English, the top.
    std::vector<fs::path> folders;
    fs::path rel = given;
    if (given.is_absolute()) {
        folders.push_back(given.parent_path());
        rel = given.filename();
    } else {
        auto& sounds = core.paths().sounds_dir;
        auto lang = std::string(language.empty() ? std::string_view("en") : language);
        // A language code is a folder name: refuse anything that climbs out.
        if (lang.find('/') != std::string::npos || lang.find("..") != std::string::npos) lang = "en";
        folders.push_back(sounds / lang);
        if (lang != "en") folders.push_back(sounds / "en");
        folders.push_back(sounds);
    }

    std::vector<std::string> searched;
    std::error_code ec;
    auto ext = rel.extension().string();
    std::string owner = ext.size() > 1 ? format_for_extension(core.file_formats(), ext.substr(1), false) : "";
    if (!owner.empty()) {
        // An explicit extension: that very file, in the first folder holding it.
        for (auto& dir : folders) {
            auto p = (dir / rel).lexically_normal();
            searched.push_back(p.string());
            if (!fs::is_regular_file(p, ec)) continue;
            auto lease = core.file_formats().find(owner);
            Format fmt = lease && lease->probe ? lease->probe(p) : (lease ? lease->format : Format::none);
            return open_candidate(core, {p, owner, fmt, 0}, error);
        }
    } else {
        for (auto& dir : folders) {
            auto base = (dir / rel).lexically_normal();
            searched.push_back(base.string() + ".*");
            auto found = variants(core, base, preferred);
            if (found.empty()) continue;
            std::string first_error;
            for (auto& c : found) {
                std::string e;
                if (auto r = open_candidate(core, c, e)) return r;
                if (first_error.empty()) first_error = e;
            }
            error = first_error;
            return nullptr;
        }
    }
    std::string list;
    for (auto& s : searched) list += (list.empty() ? "" : ", ") + s;
    error = fmt::format("no playable file for '{}' (searched {})", name, list);
    return nullptr;
}

std::unique_ptr<MediaWriter> create_media(CoreImpl& core, const fs::path& path, Format format, std::string& error) {
    error.clear();
    auto ext = path.extension().string();
    if (ext.size() < 2) {
        error = fmt::format("{}: no extension to choose a file format by", path.string());
        return nullptr;
    }
    auto owner = format_for_extension(core.file_formats(), ext.substr(1), true);
    auto lease = owner.empty() ? Lease<FileFormat>() : core.file_formats().find(owner);
    if (!lease || !lease->create) {
        error = fmt::format("{}: no file format writes '{}' files", path.string(), ext.substr(1));
        return nullptr;
    }
    auto full = path.is_absolute() ? path : core.paths().spool_dir / path;
    auto inner = lease->create(full.lexically_normal(), format, error);
    if (!inner) return nullptr;
    return std::make_unique<LeasedWriter>(std::move(inner), std::move(lease));
}

void register_file_commands(CoreImpl& core, std::vector<Registration>& out) {
    out.push_back(add_command(
        core.cli_commands(),
        {{"core", "show", "file", "formats"},
         "Show the registered media file formats",
         "Usage: core show file formats\n"
         "  Lists every file format: its extensions, the media format it holds, whether\n"
         "  it can be read and written, and the module that registered it.",
         [&core](CliRequest& r) -> awaitable<int> {
             if (!r.args.empty()) co_return cli_status::usage;
             r.out.print("{:<10} {:<22} {:<8} {:<4} {:<5} {:<16} {}\n", "Name", "Extensions", "Format", "Read", "Write",
                         "Module", "Description");
             int n = 0;
             core.file_formats().for_each([&](const std::string& name, const FileFormat& f, const std::string& mod) {
                 std::string exts;
                 for (auto& e : f.extensions) exts += (exts.empty() ? "" : ",") + e;
                 r.out.print("{:<10} {:<22} {:<8} {:<4} {:<5} {:<16} {}\n", name, exts, format_info(f.format).name,
                             f.can_read ? "yes" : "no", f.can_write ? "yes" : "no", mod, f.description);
                 ++n;
             });
             r.out.print("{} file format{}\n", n, n == 1 ? "" : "s");
             co_return cli_status::ok;
         },
         nullptr},
        &core.core_use()));
}

namespace {

// Frames per worker-pool trip: one second of 20 ms frames.
constexpr std::size_t read_ahead = 50;

// Puts the channel's write format back however playback ends.
struct WriteFormatGuard {
    Channel& chan;
    Format saved;
    ~WriteFormatGuard() {
        if (!chan.hungup()) chan.set_write_format(saved);
    }
};

}  // namespace

awaitable<PlaybackResult> play_sound(Channel& chan, std::string_view name_view, std::string_view stop_view) {
    using namespace std::chrono_literals;
    PlaybackResult res;
    if (chan.hungup()) {
        res.status = PlaybackResult::Status::hungup;
        co_return res;
    }
    std::string name(name_view), stop(stop_view), language = chan.language();
    Format native = chan.native_format();
    Core& core = chan.core();
    std::string error;
    // Lambdas given to run_blocking capture by reference only: GCC 12 may
    // destroy an object captured by value in the coroutine frame twice.
    auto reader = co_await run_blocking(
        core, [&core, &error, &name, &language, native] { return core.open_sound(name, language, native, error); });
    if (!reader) {
        res.status = PlaybackResult::Status::failed;
        res.error = error;
        core.log().warning("{}: cannot play '{}': {}", chan.name(), name, error);
        co_return res;
    }
    MediaReader* r = reader.get();
    const Format format = r->format();
    const std::uint32_t per_frame = format == Format::gsm ? 160 : r->sample_rate() / 50;
    WriteFormatGuard guard{chan, chan.write_format()};
    chan.set_write_format(format);

    std::vector<Frame> frames;
    std::size_t next = 0;
    bool at_end = false;
    boost::asio::steady_timer timer(chan.loop());
    const auto start = std::chrono::steady_clock::now();
    std::int64_t sent = 0;
    for (;;) {
        if (chan.hungup()) {
            res.status = PlaybackResult::Status::hungup;
            break;
        }
        if (next == frames.size()) {
            if (at_end) break;
            // Filled on the worker while this coroutine waits; the capacity is reused.
            co_await run_blocking(core, [r, per_frame, &frames] {
                frames.clear();
                Frame f;
                while (frames.size() < read_ahead && r->read(f, per_frame)) frames.push_back(f);
                return frames.size();
            });
            next = 0;
            at_end = frames.size() < read_ahead;
            if (frames.empty()) break;
        }
        chan.write(frames[next++]);
        ++sent;
        if (!stop.empty()) {
            // Zero timeout: only what is already queued.
            while (auto f = co_await chan.read_frame(0ms)) {
                if (f->kind == FrameKind::dtmf_end && stop.find(static_cast<char>(f->subclass)) != std::string::npos) {
                    res.status = PlaybackResult::Status::interrupted;
                    res.digit = static_cast<char>(f->subclass);
                    co_return res;
                }
            }
        }
        timer.expires_at(start + sent * 20ms);
        co_await timer.async_wait(boost::asio::use_awaitable);
    }
    co_return res;
}

}  // namespace tandem
