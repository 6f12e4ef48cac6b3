// app_record: Record() — the caller's audio into a file.
//
// The file is written by a MediaWriter: to `<name>.tmp` while recording, then
// fsynced and renamed on the worker pool, so a crash never leaves a truncated
// recording under the final name. Option a (append) first copies the existing
// file into the new one, so the old recording survives until the commit. Recording ends on the terminator (`#`),
// after `silence` seconds below the silence threshold, after `maxduration`
// seconds, or at hangup (the file is then dropped unless option k).
//
// Frames are read on the channel's loop in the writer's signed linear format
// (or slin8, translated to the file's codec here) so silence can be measured
// on them. Each frame is a small buffered write; opening and committing run
// on the worker pool.
#include <tandem/core.hpp>
#include <tandem/file.hpp>
#include <tandem/module.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace {

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Mean absolute sample value under which a frame counts as silence (Asterisk's
// default silence threshold).
constexpr int silence_threshold = 256;

double number_arg(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && v > 0 ? v : 0;
}

bool is_slin(Format f) {
    return f == Format::slin8 || f == Format::slin16 || f == Format::slin48;
}

bool silent(const Frame& f) {
    auto p = f.payload();
    std::size_t n = p.size() / 2;
    if (n == 0) return true;
    long long sum = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::int16_t s;
        std::memcpy(&s, p.data() + 2 * i, 2);
        sum += std::abs(static_cast<int>(s));
    }
    return sum / static_cast<long long>(n) < silence_threshold;
}

// A short 1 kHz beep, 250 ms, paced like a prompt.
awaitable<void> beep(Channel& chan) {
    auto saved = chan.write_format();
    chan.set_write_format(Format::slin8);
    boost::asio::steady_timer timer(chan.loop());
    auto start = std::chrono::steady_clock::now();
    std::int16_t samples[160];
    Frame f;
    f.kind = FrameKind::voice;
    f.subclass = static_cast<std::uint32_t>(Format::slin8);
    f.samples = 160;
    for (int i = 0; i < 13 && !chan.hungup(); ++i) {
        for (int k = 0; k < 160; ++k)
            samples[k] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * 1000 * (i * 160 + k) / 8000.0));
        f.timestamp = static_cast<std::uint32_t>(i * 160);
        f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(samples), sizeof samples));
        chan.write(f);
        timer.expires_at(start + (i + 1) * 20ms);
        co_await timer.async_wait(boost::asio::use_awaitable);
    }
    if (!chan.hungup()) chan.set_write_format(saved);
}

// "%d" in the name becomes the first number that makes a new file.
fs::path unique_name(const std::string& name) {
    auto pos = name.find("%d");
    if (pos == std::string::npos) return name;
    std::error_code ec;
    for (int i = 0; i < 100000; ++i) {
        fs::path p = name.substr(0, pos) + std::to_string(i) + name.substr(pos + 2);
        if (!fs::exists(p, ec)) return p;
    }
    return name.substr(0, pos) + "x" + name.substr(pos + 2);
}

// After a hangup the coroutine is being cancelled and can await nothing more:
// the commit runs on the worker pool without being awaited.
void commit_detached(Core& core, std::unique_ptr<MediaWriter> writer) {
    std::shared_ptr<MediaWriter> w(std::move(writer));
    boost::asio::post(core.workers(), [w, &core] {
        std::string e;
        if (!w->commit(e)) core.log().warning("Record: {}", e);
    });
}

// Option a: a writer for `path` that already holds the existing recording, so
// what is recorded next follows it. The old file stays untouched until the
// new one is committed over it (crash-safe as any recording). Blocking: runs
// on the worker pool. A file that cannot be read is an error rather than
// silently overwritten.
std::unique_ptr<MediaWriter> start_appended(Core& core, const fs::path& path, std::string& error) {
    auto reader = core.open_sound(path.string(), "", Format::none, error);
    if (!reader) return nullptr;
    auto writer = core.create_media(path, reader->format(), error);
    if (!writer) return nullptr;
    std::unique_ptr<TranslationPath> convert;
    if (writer->format() != reader->format()) {
        convert = core.build_path(reader->format(), writer->format());
        if (!convert) {
            error = fmt::format("{}: cannot append: no translation from {} to {}", path.string(),
                                format_info(reader->format()).name, format_info(writer->format()).name);
            return nullptr;
        }
    }
    Frame in;
    Frame out;
    while (reader->read(in, 160)) {
        bool ok = convert ? convert->convert(in, out) && writer->write(out) : writer->write(in);
        if (!ok) {
            error = fmt::format("{}: cannot append: copying the existing recording failed", path.string());
            return nullptr;
        }
    }
    return writer;
}

// GCC 12 pairs the coroutine frame's operator delete (Asio's recycling
// allocator) with the wrong operator new once this function is inlined enough,
// and warns of a mismatch that is not there.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
awaitable<AppResult> record(Channel& chan, const AppArgs& args) {
    auto& core = chan.core();
    const std::string spec = args[0];
    const double silence_s = number_arg(args[1]);
    const double max_s = number_arg(args[2]);
    const std::string options = args[3];
    auto opt = [&](char c) { return options.find(c) != std::string::npos; };

    if (chan.state() != ChannelState::up) {
        if (opt('s')) {
            chan.set_variable("RECORD_STATUS", "SKIP");
            co_return AppResult::next;
        }
        if (!opt('n') && !co_await chan.answer()) co_return AppResult::hangup;
    }
    std::string error;
    auto spool = core.paths().spool_dir;
    const bool append = opt('a');
    // Captures are references only: the lambda is copied into run_blocking's
    // coroutine frame, and GCC 12 may destroy a captured object there twice.
    auto writer = co_await run_blocking(core, [&core, &error, &spec, &spool, append]() -> std::unique_ptr<MediaWriter> {
        fs::path p = spec;
        if (p.is_relative()) p = spool / p;
        std::error_code ec;
        fs::create_directories(p.parent_path(), ec);
        auto target = unique_name(p.string());
        if (append && fs::is_regular_file(target, ec)) return start_appended(core, target, error);
        return core.create_media(target, Format::none, error);
    });
    if (!writer) {
        core.log().warning("{}: Record: {}", chan.name(), error);
        chan.set_variable("RECORD_STATUS", "ERROR");
        co_return AppResult::next;
    }
    auto final_path = writer->path();
    chan.set_variable("RECORDED_FILE", (final_path.parent_path() / final_path.stem()).string());

    if (!opt('q')) co_await beep(chan);

    // Read signed linear: the writer's own rate when it stores slin, else slin8 encoded here.
    Format file_format = writer->format();
    Format read_as = is_slin(file_format) ? file_format : Format::slin8;
    std::unique_ptr<TranslationPath> encode;
    if (read_as != file_format) {
        encode = core.build_path(read_as, file_format);
        if (!encode) {
            core.log().warning("{}: Record: no translation from {} to {}", chan.name(), format_info(read_as).name,
                               format_info(file_format).name);
            chan.set_variable("RECORD_STATUS", "ERROR");
            co_return AppResult::next;
        }
    }
    auto saved_read = chan.read_format();
    chan.set_read_format(read_as);
    std::string terminators = opt('x') ? "" : opt('y') ? std::string(any_dtmf) : opt('t') ? "*" : "#";

    const auto start = std::chrono::steady_clock::now();
    auto last_sound = start;
    std::string status;
    Frame encoded;
    auto store = [&](const Frame& fr) {
        return encode ? encode->convert(fr, encoded) && writer->write(encoded) : writer->write(fr);
    };
    // With silence detection, quiet frames wait here until sound follows; if
    // the silence ends the recording they are dropped, so the file does not
    // end with the silence that ended it. Reserved once: no allocation per frame.
    std::vector<Frame> quiet;
    const auto quiet_max = static_cast<std::size_t>(silence_s * 50) + 1;
    if (silence_s > 0) quiet.reserve(quiet_max);
    bool write_failed = false;
    while (status.empty()) {
        auto now = std::chrono::steady_clock::now();
        if (max_s > 0 && now - start >= std::chrono::duration<double>(max_s)) {
            status = "TIMEOUT";
            break;
        }
        if (silence_s > 0 && now - last_sound >= std::chrono::duration<double>(silence_s)) {
            status = "SILENCE";
            break;
        }
        auto f = co_await chan.read_frame(100ms);
        if (chan.hungup()) {
            status = "HANGUP";
            break;
        }
        if (!f) continue;
        if (f->kind == FrameKind::dtmf_end) {
            if (terminators.find(static_cast<char>(f->subclass)) != std::string::npos) status = "DTMF";
            continue;
        }
        if (f->kind != FrameKind::voice || f->subclass != static_cast<std::uint32_t>(read_as)) continue;
        bool is_silent = silent(*f);
        if (!is_silent) last_sound = std::chrono::steady_clock::now();
        if (silence_s > 0 && is_silent && quiet.size() < quiet_max) {
            quiet.push_back(*f);
            continue;
        }
        for (auto& q : quiet) write_failed = write_failed || !store(q);
        quiet.clear();
        write_failed = write_failed || !store(*f);
        if (write_failed) status = "ERROR";
    }
    if (status != "SILENCE")
        for (auto& q : quiet) store(q);
    if (!chan.hungup()) chan.set_read_format(saved_read);
    chan.set_variable("RECORD_STATUS", status);

    if (status == "HANGUP") {
        if (opt('k')) commit_detached(core, std::move(writer));
        co_return AppResult::hangup;
    }
    bool committed = co_await run_blocking(core, [&writer, &error] { return writer->commit(error); });
    if (!committed) {
        core.log().warning("{}: Record: {}", chan.name(), error);
        chan.set_variable("RECORD_STATUS", "ERROR");
    }
    co_return AppResult::next;
}
#pragma GCC diagnostic pop

class RecordModule final : public Module {
public:
    void load(Host& host) override {
        app_ = host.add(
            "Record",
            Application{"Record the caller to a file", "Record(filename.format[,silence[,maxduration[,options]]])",
                        "Records to filename.format (the extension picks the file format: wav, wav16,\n"
                        "ulaw, alaw, gsm, sln...; a relative name is taken from the spool directory; %d\n"
                        "becomes the first number that makes a new file). Beeps, then records until '#',\n"
                        "`silence` seconds of silence (not kept in the file), `maxduration` seconds,\n"
                        "or hangup.\n"
                        "Options: a — append to the file if it exists (it is replaced only once the\n"
                        "new recording is complete); k — keep the file\n"
                        "on hangup; n — do not answer; q — no beep; s — skip if not answered;\n"
                        "t — '*' ends instead of '#'; x — ignore terminators; y — any digit ends.\n"
                        "Sets RECORDED_FILE (without extension) and RECORD_STATUS: DTMF, SILENCE,\n"
                        "TIMEOUT, HANGUP, SKIP or ERROR. The file is written crash-safe.",
                        1, 4, record});
    }

private:
    Registration app_;
};

}  // namespace

TANDEM_MODULE(RecordModule)
