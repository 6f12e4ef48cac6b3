// Media translation benchmark (prints figures; not a pass/fail test).
//
// Boots a real core in-process with every codec module loaded and measures,
// on a speech-like signal (speech.hpp):
//
//   steps     every registered translator step alone: wall time of one
//             convert() per 20 ms of audio, median and p90;
//   paths     the common end-to-end paths as Core::build_path() chains them
//             (ulaw<->alaw, opus<->ulaw, g729<->ulaw, slin8<->slin48, ...);
//   overhead  Opus <-> G.711 through Tandem's TranslationPath against the
//             same work done by calling libopus, SpeexDSP and SpanDSP
//             directly (reference.hpp), interleaved pass by pass; the ratio
//             is Tandem's overhead (target: under 20 %);
//   calls     N concurrent Opus <-> G.711 calls on the core's event loops,
//             each converting a 20 ms frame both ways every 20 ms (a timer
//             per call, as a bridge would be driven by its RTP): process CPU
//             per call-second, and whether real time is held.
//
// Every figure is a median or a ratio of medians: the machines are shared.
//
//   bench_media [steps|paths|overhead|calls ...]      default: all four
//   bench_media --callgrind                           overhead passes only, untimed
//                                                     (for tests/bench/media/callgrind.sh)
// Environment (to scale the run):
//   BENCH_MEDIA_SECONDS  length of the test signal, s          (default 10)
//   BENCH_MEDIA_REPS     timed passes over it per step/path    (default 5)
//   BENCH_MEDIA_PAIRS    interleaved pass pairs for overhead   (default 15)
//   BENCH_MEDIA_CALLS    concurrent calls, comma-separated     (default 10,100,500)
//   BENCH_MEDIA_WINDOW   measured seconds per call count       (default 5)
//   BENCH_MEDIA_PASSES   passes of each side with --callgrind  (default 2)
#include "media/translate.hpp"
#include "runtime/core_impl.hpp"

#include "reference.hpp"
#include "speech.hpp"

#include <tandem/media.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// --- settings and small helpers ----------------------------------------------

int env_int(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    int n = std::atoi(v);
    return n > 0 ? n : fallback;
}

std::vector<int> env_list(const char* name, std::vector<int> fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    std::vector<int> out;
    for (const char* p = v; *p;) {
        int n = std::atoi(p);
        if (n > 0) out.push_back(n);
        const char* comma = std::strchr(p, ',');
        if (!comma) break;
        p = comma + 1;
    }
    return out.empty() ? fallback : out;
}

struct Settings {
    double seconds = 10;
    int reps = 5;
    int pairs = 15;
    std::vector<int> calls{10, 100, 500};
    int window = 5;
};

std::int64_t ns_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}
double median(std::vector<double> v) {
    return percentile(std::move(v), 0.5);
}

double process_cpu_s() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double thread_cpu_s() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds of the core's loop threads, each read on its own thread.
double loops_cpu_s(CoreImpl& core) {
    double total = 0;
    for (std::size_t i = 0; i < core.loop_count(); ++i)
        total += asio::post(core.loop(i), asio::use_future([] { return thread_cpu_s(); })).get();
    return total;
}

const char* name_of(Format f) {
    return format_info(f).name.data();
}

// How many microseconds of audio a frame of format `f` carries.
double frame_us(Format f, const Frame& fr) {
    auto rate = format_info(f).sample_rate;
    return rate && fr.samples ? 1e6 * fr.samples / rate : 20000.0;
}

// --- the core and the test audio -------------------------------------------

struct Bench {
    Settings settings;
    fs::path dir;
    std::unique_ptr<CoreImpl> core;
    bool started = false;
    std::map<Format, std::vector<Frame>> frames;  // the signal in each format, 20 ms frames when slin

    bool boot() {
        dir = fs::temp_directory_path() / ("tandem-bench-media-" + std::to_string(getpid()));
        fs::create_directories(dir / "etc");
        std::ofstream(dir / "etc" / "tandem.conf")
            << "[options]\nlogfile =\nverbose = warning\n[directories]\nmodules => " << TANDEM_BENCH_MODULE_DIR
            << "\nrun => " << (dir / "run").string() << "\nspool => " << (dir / "spool").string() << "\ndb => "
            << (dir / "lib").string() << "\nlog => " << (dir / "log").string() << "\n";
        // Every codec module there is, and nothing else.
        std::ofstream modules(dir / "etc" / "modules.conf");
        modules << "[modules]\nautoload = no\n";
        std::set<std::string> codecs;
        std::error_code ec;
        for (auto& e : fs::directory_iterator(TANDEM_BENCH_MODULE_DIR, ec)) {
            auto name = e.path().filename().string();
            if (name.starts_with("codec_") && name.ends_with(".so")) codecs.insert(name);
        }
        for (auto& c : codecs) modules << "load => " << c << "\n";
        modules.close();
        std::ofstream(dir / "etc" / "extensions.conf") << "[default]\n";
        std::ofstream(dir / "etc" / "cdr.conf") << "[csv]\nenabled = no\n";

        StartOptions o;
        o.config_dir = dir / "etc";
        o.terminal_level = LogLevel::warning;
        o.control_socket = false;
        core = std::make_unique<CoreImpl>(o);
        std::vector<std::string> problems;
        auto t0 = Clock::now();
        if (!core->start(problems)) {
            for (auto& p : problems) std::fprintf(stderr, "%s\n", p.c_str());
            return false;
        }
        started = true;
        std::printf(
            "core: %zu event loops, %zu codec modules, %zu translator steps; start-up (with the cost"
            " measurement) %.0f ms; machine: %u CPUs\n",
            core->loop_count(), codecs.size(), core->translators().size(),
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), std::thread::hardware_concurrency());
        return true;
    }

    ~Bench() {
        frames.clear();
        if (core && started) core->shutdown(true);
        core.reset();
        std::error_code ec;
        if (!dir.empty()) fs::remove_all(dir, ec);
    }

    // The test signal in format `f`: slin as 20 ms frames, anything else
    // encoded from the slin rate of its codec through the core's own path.
    // Empty when the format cannot be produced.
    const std::vector<Frame>& audio(Format f) {
        if (auto it = frames.find(f); it != frames.end()) return it->second;
        auto& out = frames[f];
        const auto& info = format_info(f);
        if (info.kind != MediaKind::audio || !info.sample_rate) return out;
        Format base = slin_at(info.sample_rate);
        if (f == base) {
            auto pcm = bench::speech_signal(info.sample_rate, settings.seconds);
            const std::uint32_t per_frame = info.sample_rate / 50;
            for (std::size_t at = 0; at + per_frame <= pcm.size(); at += per_frame) {
                Frame fr;
                fr.kind = FrameKind::voice;
                fr.subclass = static_cast<std::uint32_t>(f);
                fr.samples = per_frame;
                fr.timestamp = static_cast<std::uint32_t>(at);
                fr.duration_ms = 20;
                fr.set_payload({reinterpret_cast<const std::uint8_t*>(pcm.data() + at), per_frame * 2});
                out.push_back(std::move(fr));
            }
            return out;
        }
        if (base == Format::none) return out;
        const auto& pcm = audio(base);
        auto encoder = core->build_path(base, f);
        if (!encoder) return out;
        Frame coded;
        for (auto& fr : pcm) {
            if (!encoder->convert(fr, coded)) {
                std::fprintf(stderr, "encoding the signal as %s failed\n", name_of(f));
                frames[f].clear();
                return frames[f];
            }
            if (coded.samples && !coded.payload().empty()) out.push_back(coded);
        }
        return out;
    }
};

// Times `conv` over every frame of `input`: one pass to warm up (discarded),
// then `reps` passes. Per frame: nanoseconds scaled to 20 ms of audio.
template <class Convert>
std::vector<double> time_frames(const std::vector<Frame>& input, Format from, int reps, Convert&& conv, bool& ok) {
    std::vector<double> us;
    us.reserve(input.size() * static_cast<std::size_t>(reps));
    ok = true;
    for (int r = -1; r < reps && ok; ++r) {
        for (auto& f : input) {
            auto t0 = Clock::now();
            bool good = conv(f);
            auto t1 = Clock::now();
            if (!good) {
                ok = false;
                break;
            }
            if (r >= 0) us.push_back(ns_between(t0, t1) / 1000.0 * 20000.0 / frame_us(from, f));
        }
    }
    return us;
}

// --- part a: every step, common paths ------------------------------------------

void run_steps(Bench& b) {
    auto& core = *b.core;
    std::map<std::string, TranslatorStep> graph;
    for (auto& s : core.translator_graph().steps()) graph[s.name] = s;
    std::printf(
        "\n== Translator steps: microseconds per 20 ms of audio (%g s of speech-like signal, %d passes,"
        " warm-up pass discarded)\n",
        b.settings.seconds, b.settings.reps);
    std::printf("%-18s %-14s %9s %9s %11s\n", "step", "module", "median", "p90", "core's cost");
    for (auto& name : core.translators().names()) {
        auto lease = core.translators().find(name);
        if (!lease) continue;
        const auto& input = b.audio(lease->from);
        auto& g = graph[name];
        std::string module = lease.module().empty() ? "core" : lease.module();
        if (module.starts_with("codec_")) module = module.substr(6);
        if (input.empty()) {
            std::printf("%-18s %-14s %9s %9s %11u  (no test input in %s)\n", name.c_str(), module.c_str(), "-", "-",
                        g.cost, name_of(lease->from));
            continue;
        }
        auto step = lease->create({});
        if (!step) {
            std::printf("%-18s %-14s  refused to start\n", name.c_str(), module.c_str());
            continue;
        }
        Frame out;
        bool ok = false;
        auto us = time_frames(
            input, lease->from, b.settings.reps, [&](const Frame& f) { return step->convert(f, out); }, ok);
        if (!ok) {
            std::printf("%-18s %-14s  convert failed\n", name.c_str(), module.c_str());
            continue;
        }
        std::printf("%-18s %-14s %9.2f %9.2f %11u\n", name.c_str(), module.c_str(), median(us), percentile(us, 0.9),
                    g.cost);
    }
}

void run_paths(Bench& b) {
    auto& core = *b.core;
    const std::pair<Format, Format> pairs[] = {
        {Format::ulaw, Format::alaw},     {Format::ulaw, Format::slin8},   {Format::opus, Format::ulaw},
        {Format::opus, Format::alaw},     {Format::g722, Format::ulaw},    {Format::g729, Format::ulaw},
        {Format::gsm, Format::ulaw},      {Format::speex8, Format::ulaw},  {Format::slin8, Format::slin16},
        {Format::slin16, Format::slin48}, {Format::slin8, Format::slin48},
    };
    std::printf("\n== End-to-end paths (Core::build_path): microseconds per 20 ms of audio\n");
    std::printf("%-16s %-34s %9s %9s %11s\n", "from -> to", "chain", "median", "p90", "core's cost");
    for (auto [x, y] : pairs) {
        for (auto [from, to] : {std::pair{x, y}, std::pair{y, x}}) {
            std::string label = std::string(name_of(from)) + " -> " + name_of(to);
            auto path = core.build_path(from, to);
            const auto& input = b.audio(from);
            if (!path || input.empty()) {
                std::printf("%-16s %s\n", label.c_str(), path ? "(no test input)" : "(no path)");
                continue;
            }
            Frame out;
            bool ok = false;
            auto us = time_frames(
                input, from, b.settings.reps, [&](const Frame& f) { return path->convert(f, out); }, ok);
            if (!ok) {
                std::printf("%-16s %-34s convert failed\n", label.c_str(), path->describe().c_str());
                continue;
            }
            std::printf("%-16s %-34s %9.2f %9.2f %11u\n", label.c_str(), path->describe().c_str(), median(us),
                        percentile(us, 0.9), path->cost());
        }
    }
}

// --- part b: overhead against the libraries called directly --------------------

// One pass over the frames each; kept out of line and named so that
// callgrind's --toggle-collect can count each one's instructions alone.
[[gnu::noinline]] bool opus_to_g711_path_pass(TranslationPath& path, const std::vector<Frame>& in, Frame& out,
                                              std::vector<double>* us) {
    for (auto& f : in) {
        auto t0 = us ? Clock::now() : Clock::time_point{};
        if (!path.convert(f, out)) return false;
        if (us) us->push_back(ns_between(t0, Clock::now()) / 1000.0);
    }
    return true;
}
[[gnu::noinline]] bool opus_to_g711_direct_pass(bench::DirectOpusToG711& chain, const std::vector<Frame>& in,
                                                std::vector<double>* us) {
    for (auto& f : in) {
        auto t0 = us ? Clock::now() : Clock::time_point{};
        if (!chain.run(f.payload())) return false;
        if (us) us->push_back(ns_between(t0, Clock::now()) / 1000.0);
    }
    return true;
}
[[gnu::noinline]] bool g711_to_opus_path_pass(TranslationPath& path, const std::vector<Frame>& in, Frame& out,
                                              std::vector<double>* us) {
    for (auto& f : in) {
        auto t0 = us ? Clock::now() : Clock::time_point{};
        if (!path.convert(f, out)) return false;
        if (us) us->push_back(ns_between(t0, Clock::now()) / 1000.0);
    }
    return true;
}
[[gnu::noinline]] bool g711_to_opus_direct_pass(bench::DirectG711ToOpus& chain, const std::vector<Frame>& in,
                                                std::vector<double>* us) {
    for (auto& f : in) {
        auto t0 = us ? Clock::now() : Clock::time_point{};
        if (!chain.run(f.payload())) return false;
        if (us) us->push_back(ns_between(t0, Clock::now()) / 1000.0);
    }
    return true;
}

struct Direction {
    Format from, to;
    bench::Law law;
    bool to_g711;
};

// Same input through a fresh path and a fresh direct chain: how many output
// frames differ (0 means both did exactly the same work).
template <class Chain>
std::size_t compare_outputs(Bench& b, const Direction& d) {
    auto path = b.core->build_path(d.from, d.to);
    Chain chain(d.law);
    std::size_t differ = 0;
    Frame out;
    for (auto& f : b.audio(d.from)) {
        if (!path || !chain.ok() || !path->convert(f, out) || !chain.run(f.payload())) return ~std::size_t{0};
        auto a = out.payload();
        auto c = chain.output();
        if (a.size() != c.size() || !std::equal(a.begin(), a.end(), c.begin())) ++differ;
    }
    return differ;
}

template <class Chain, class PathPass, class DirectPass>
void overhead_one(Bench& b, const Direction& d, PathPass path_pass, DirectPass direct_pass) {
    const auto& input = b.audio(d.from);
    auto path = b.core->build_path(d.from, d.to);
    Chain chain(d.law);
    if (input.empty() || !path || !chain.ok()) {
        std::printf("%s -> %s: cannot set up (input %zu frames, path %s)\n", name_of(d.from), name_of(d.to),
                    input.size(), path ? "yes" : "no");
        return;
    }
    auto differ = compare_outputs<Chain>(b, d);
    Frame out;
    std::vector<double> path_us, direct_us, ratios, path_pass_us, direct_pass_us;
    // Warm-up, then pairs of passes in alternating order, so drift in the
    // machine's load or clock affects both sides alike.
    bool ok = path_pass(*path, input, out, nullptr) && direct_pass(chain, input, nullptr);
    for (int p = 0; p < b.settings.pairs && ok; ++p) {
        std::vector<double> pu, du;
        pu.reserve(input.size());
        du.reserve(input.size());
        if (p % 2 == 0)
            ok = path_pass(*path, input, out, &pu) && direct_pass(chain, input, &du);
        else
            ok = direct_pass(chain, input, &du) && path_pass(*path, input, out, &pu);
        double ps = 0, ds = 0;
        for (double v : pu) ps += v;
        for (double v : du) ds += v;
        ratios.push_back(ps / ds);
        path_pass_us.push_back(ps / static_cast<double>(pu.size()));
        direct_pass_us.push_back(ds / static_cast<double>(du.size()));
        path_us.insert(path_us.end(), pu.begin(), pu.end());
        direct_us.insert(direct_us.end(), du.begin(), du.end());
    }
    if (!ok) {
        std::printf("%s -> %s: a conversion failed\n", name_of(d.from), name_of(d.to));
        return;
    }
    // Where the reference's time goes (a separate pass: stage timing adds clock reads).
    std::vector<double> stage[3];
    for (auto& f : input) {
        bench::StageTimes t;
        chain.run(f.payload(), &t);
        for (int i = 0; i < 3; ++i) stage[i].push_back(static_cast<double>(t.ns[i]) / 1000.0);
    }
    double r = median(ratios);
    std::printf("\n%s -> %s   Tandem path: %s\n", name_of(d.from), name_of(d.to), path->describe().c_str());
    std::printf("  %-34s %9s %9s %11s\n", "", "median", "p90", "pass mean");
    std::printf("  %-34s %9.2f %9.2f %11.2f   us per 20 ms frame\n", "Tandem TranslationPath", median(path_us),
                percentile(path_us, 0.9), median(path_pass_us));
    std::printf("  %-34s %9.2f %9.2f %11.2f\n", "libraries called directly", median(direct_us),
                percentile(direct_us, 0.9), median(direct_pass_us));
    for (int i = 0; i < 3; ++i) std::printf("    %-32s %9.2f\n", Chain::stage_name(i), median(stage[i]));
    std::printf("  overhead: %+.1f %% (median of %zu paired passes; range %+.1f .. %+.1f %%)  target < 20 %% -> %s\n",
                (r - 1) * 100, ratios.size(), (*std::min_element(ratios.begin(), ratios.end()) - 1) * 100,
                (*std::max_element(ratios.begin(), ratios.end()) - 1) * 100, r < 1.2 ? "met" : "NOT met");
    if (differ == ~std::size_t{0})
        std::printf("  outputs: could not compare\n");
    else
        std::printf("  outputs: %s (%zu of %zu frames differ)\n", differ == 0 ? "byte-identical, same work" : "DIFFER",
                    differ, input.size());
}

void run_overhead(Bench& b) {
    std::printf("\n== Overhead: Tandem's TranslationPath against libopus + SpeexDSP + SpanDSP called directly\n");
    std::printf(
        "   (%g s of speech, %d interleaved pass pairs after a warm-up pair; per-frame clock reads on both"
        " sides)\n",
        b.settings.seconds, b.settings.pairs);
    for (auto law : {bench::Law::ulaw, bench::Law::alaw}) {
        Format g711 = law == bench::Law::ulaw ? Format::ulaw : Format::alaw;
        overhead_one<bench::DirectOpusToG711>(b, {Format::opus, g711, law, true}, opus_to_g711_path_pass,
                                              opus_to_g711_direct_pass);
        overhead_one<bench::DirectG711ToOpus>(b, {g711, Format::opus, law, false}, g711_to_opus_path_pass,
                                              g711_to_opus_direct_pass);
    }
}

// Untimed passes for callgrind: each pass function's inclusive instruction
// count is the figure (see callgrind.sh).
int run_callgrind(Bench& b, int passes) {
    const auto& opus = b.audio(Format::opus);
    const auto& ulaw = b.audio(Format::ulaw);
    auto to_g711 = b.core->build_path(Format::opus, Format::ulaw);
    auto to_opus = b.core->build_path(Format::ulaw, Format::opus);
    bench::DirectOpusToG711 d_to_g711(bench::Law::ulaw);
    bench::DirectG711ToOpus d_to_opus(bench::Law::ulaw);
    if (!to_g711 || !to_opus || !d_to_g711.ok() || !d_to_opus.ok()) return 1;
    Frame out;
    bool ok = true;
    for (int p = 0; p < passes && ok; ++p) {
        ok = opus_to_g711_path_pass(*to_g711, opus, out, nullptr) &&
             opus_to_g711_direct_pass(d_to_g711, opus, nullptr) &&
             g711_to_opus_path_pass(*to_opus, ulaw, out, nullptr) && g711_to_opus_direct_pass(d_to_opus, ulaw, nullptr);
    }
    std::printf("callgrind passes: %d x (%zu opus frames, %zu ulaw frames); %s / %s\n", passes, opus.size(),
                ulaw.size(), to_g711->describe().c_str(), to_opus->describe().c_str());
    return ok ? 0 : 1;
}

// --- part c: concurrent calls on the event loops -------------------------------

// One Opus <-> G.711 call: every 20 ms its timer converts one Opus packet to
// G.711 (the Opus phone talking) and one G.711 frame to Opus (the G.711
// phone talking), on the loop the call lives on, as a bridge between the two
// legs would.
struct Call {
    asio::io_context* loop = nullptr;
    std::unique_ptr<TranslationPath> to_g711, to_opus;
    std::unique_ptr<asio::steady_timer> timer;
    Frame out_g711, out_opus;
    const std::vector<Frame>* opus = nullptr;
    const std::vector<Frame>* g711 = nullptr;
    std::size_t at = 0;
    Clock::time_point deadline;
    bool stopping = false;  // on the loop only
    // Single writer (the loop), read by the main thread.
    std::atomic<std::uint64_t> ticks{0}, late{0}, failed{0};

    void tick() {
        if (stopping) return;
        auto now = Clock::now();
        // A frame more than one packet time late would have to be covered by
        // the far end's jitter buffer.
        if (now - deadline > 20ms) late.store(late.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        const Frame& a = (*opus)[at % opus->size()];
        const Frame& b = (*g711)[at % g711->size()];
        ++at;
        bool ok = to_g711->convert(a, out_g711);
        ok = to_opus->convert(b, out_opus) && ok;
        if (!ok) failed.store(failed.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        ticks.store(ticks.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        deadline += 20ms;
        timer->expires_at(deadline);
        timer->async_wait([this](const boost::system::error_code& ec) {
            if (!ec) tick();
        });
    }
};

struct CallTotals {
    std::uint64_t ticks = 0, late = 0, failed = 0;
};
CallTotals totals(const std::vector<std::unique_ptr<Call>>& calls) {
    CallTotals t;
    for (auto& c : calls) {
        t.ticks += c->ticks.load(std::memory_order_relaxed);
        t.late += c->late.load(std::memory_order_relaxed);
        t.failed += c->failed.load(std::memory_order_relaxed);
    }
    return t;
}

void run_calls(Bench& b) {
    auto& core = *b.core;
    const auto& opus = b.audio(Format::opus);
    const auto& g711 = b.audio(Format::ulaw);
    if (opus.empty() || g711.empty()) {
        std::printf("calls: no Opus or G.711 test audio\n");
        return;
    }
    // What the two paths alone cost in CPU time (not wall time, which a busy
    // machine inflates), to set the loops' CPU against: two passes over the
    // signal on this thread.
    double path_us = 0;
    {
        auto p1 = core.build_path(Format::opus, Format::ulaw), p2 = core.build_path(Format::ulaw, Format::opus);
        if (!p1 || !p2) {
            std::printf("calls: no Opus <-> G.711 path\n");
            return;
        }
        Frame out;
        std::size_t frames = 0;
        double c0 = thread_cpu_s();
        for (int pass = 0; pass < 2; ++pass)
            for (std::size_t i = 0; i < std::min(opus.size(), g711.size()); ++i, ++frames) {
                p1->convert(opus[i], out);
                p2->convert(g711[i], out);
            }
        path_us = (thread_cpu_s() - c0) * 1e6 / static_cast<double>(frames);
    }
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    std::printf(
        "\n== Concurrent Opus <-> G.711 calls on the core's %zu event loops (a 20 ms frame each way per call"
        " every 20 ms; 1 s warm-up, %d s measured)\n",
        core.loop_count(), b.settings.window);
    std::printf(
        "   the two paths alone (opus->ulaw + ulaw->opus, CPU time on one thread): %.1f us per 20 ms = %.2f ms"
        " CPU per call-second\n",
        path_us, path_us * 50 / 1000);
    std::printf("%6s %14s %14s %12s %10s %10s %12s %s\n", "calls", "CPU ms/call-s", "loops ms/call-s", "vs paths",
                "CPU %", "pace %", "late >20ms", "real time");
    for (int n : b.settings.calls) {
        std::vector<std::unique_ptr<Call>> calls;
        calls.reserve(static_cast<std::size_t>(n));
        bool setup_ok = true;
        for (int i = 0; i < n; ++i) {
            auto c = std::make_unique<Call>();
            c->loop = &core.pick_loop();
            c->to_g711 = core.build_path(Format::opus, Format::ulaw);
            c->to_opus = core.build_path(Format::ulaw, Format::opus);
            if (!c->to_g711 || !c->to_opus) {
                setup_ok = false;
                break;
            }
            c->opus = &opus;
            c->g711 = &g711;
            // Calls do not all talk in step: spread their offsets in the
            // signal and their phases within the 20 ms period.
            c->at = static_cast<std::size_t>(i) * 37;
            calls.push_back(std::move(c));
        }
        if (!setup_ok) {
            std::printf("%6d  could not build the paths\n", n);
            continue;
        }
        auto start = Clock::now() + 50ms;
        for (std::size_t i = 0; i < calls.size(); ++i) {
            Call* c = calls[i].get();
            c->deadline = start + std::chrono::microseconds(20000 * static_cast<long>(i) / n);
            // The timer is made, used and destroyed on the call's loop only.
            asio::post(*c->loop, [c] {
                c->timer = std::make_unique<asio::steady_timer>(*c->loop);
                c->timer->expires_at(c->deadline);
                c->timer->async_wait([c](const boost::system::error_code& ec) {
                    if (!ec) c->tick();
                });
            });
        }
        std::this_thread::sleep_until(start + 1s);
        auto t0 = totals(calls);
        double cpu0 = process_cpu_s(), loops0 = loops_cpu_s(core);
        auto w0 = Clock::now();
        std::this_thread::sleep_for(std::chrono::seconds(b.settings.window));
        auto t1 = totals(calls);
        double cpu1 = process_cpu_s(), loops1 = loops_cpu_s(core);
        double wall = std::chrono::duration<double>(Clock::now() - w0).count();
        // Stop every call on its loop, then one more round trip through each
        // loop so that cancelled waits have completed before calls go.
        for (std::size_t i = 0; i < core.loop_count(); ++i)
            asio::post(core.loop(i), asio::use_future([&, i] {
                           for (auto& c : calls)
                               if (c->loop == &core.loop(i)) {
                                   c->stopping = true;
                                   c->timer->cancel();
                               }
                       }))
                .get();
        for (std::size_t i = 0; i < core.loop_count(); ++i)
            asio::post(core.loop(i), asio::use_future([&, i] {
                           for (auto& c : calls)
                               if (c->loop == &core.loop(i)) c->timer.reset();
                       }))
                .get();

        double ticks = static_cast<double>(t1.ticks - t0.ticks);
        double call_seconds = ticks / 50.0;  // 50 frames each way make one call-second
        double cpu_ms = call_seconds > 0 ? (cpu1 - cpu0) * 1000 / call_seconds : 0;
        double loops_ms = call_seconds > 0 ? (loops1 - loops0) * 1000 / call_seconds : 0;
        double pace = ticks * 100.0 / (n * 50.0 * wall);
        double late_pct = ticks > 0 ? static_cast<double>(t1.late - t0.late) * 100.0 / ticks : 0;
        bool real_time = pace >= 99.0 && t1.failed == 0;
        std::printf("%6d %14.2f %14.2f %11.2fx %9.1f%% %9.1f%% %11.2f%% %s%s\n", n, cpu_ms, loops_ms,
                    loops_ms / (path_us * 50 / 1000), (cpu1 - cpu0) * 100 / (wall * cpus), pace, late_pct,
                    real_time ? "held" : "NOT held", t1.failed ? " (conversions failed)" : "");
        calls.clear();
    }
    std::printf(
        "   CPU: getrusage of the whole process over the window (%% of all %u CPUs); loops: the loop threads"
        " alone;\n   vs paths: loops' CPU against the paths' own; pace: frames converted against 50 per"
        " second per call\n   (real time is held at >= 99 %%; below, the loops ran flat out and the CPU"
        " figure is per call-second done);\n   late: frames converted more than 20 ms after their time"
        " (descheduled loops on a shared machine show here).\n",
        cpus);
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    Bench b;
    b.settings.seconds = env_int("BENCH_MEDIA_SECONDS", 10);
    b.settings.reps = env_int("BENCH_MEDIA_REPS", 5);
    b.settings.pairs = env_int("BENCH_MEDIA_PAIRS", 15);
    b.settings.calls = env_list("BENCH_MEDIA_CALLS", {10, 100, 500});
    b.settings.window = env_int("BENCH_MEDIA_WINDOW", 5);

    std::set<std::string> parts;
    bool callgrind = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--callgrind")
            callgrind = true;
        else if (a == "steps" || a == "paths" || a == "overhead" || a == "calls")
            parts.insert(a);
        else {
            std::fprintf(stderr, "usage: %s [steps|paths|overhead|calls ...] | --callgrind\n", argv[0]);
            return 2;
        }
    }
    if (parts.empty()) parts = {"steps", "paths", "overhead", "calls"};
    if (!b.boot()) return 1;
    if (callgrind) return run_callgrind(b, env_int("BENCH_MEDIA_PASSES", 2));

    std::printf("media benchmark: speech-like test signal, %g s; wall-clock medians (a shared machine is noisy)\n",
                b.settings.seconds);
    if (parts.count("steps")) run_steps(b);
    if (parts.count("paths")) run_paths(b);
    if (parts.count("overhead")) run_overhead(b);
    if (parts.count("calls")) run_calls(b);
    return 0;
}
