// The translator graph on a real core: cheapest paths, cache invalidation,
// leases, measured costs, the resamplers' quality, no allocation per frame,
// and the media CLI. Codec modules are not loaded (modules.conf autoload=no):
// the tests register stand-in codecs of their own, so they neither depend on
// nor collide with codecs/.
#include "core_fixture.hpp"

#include "cli/server.hpp"
#include "loader/module_loader.hpp"
#include "media/translate.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numbers>

using namespace tandem;
using namespace std::chrono_literals;

// --- counting allocations (for the steady-state test only) -----------------
// Replaces the global allocator of the test program; it counts only on a
// thread that asked for it, so every other test is unaffected. Every
// non-aligned form is replaced so that one allocator pairs with one
// deallocator. Not under AddressSanitizer: its own operator new is what finds
// new/delete mismatches in every other test.
namespace {
thread_local bool count_allocations = false;
thread_local std::size_t allocations = 0;
}  // namespace

#if defined(__SANITIZE_ADDRESS__)
constexpr bool allocations_counted = false;
#else
constexpr bool allocations_counted = true;

// The replacement operators below pair malloc with free; GCC 12 cannot see
// through the replacement once Boost's exception cloning is inlined and warns
// of a mismatch that is not there.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {

void* counted_malloc(std::size_t n) noexcept {
    if (count_allocations) ++allocations;
    return std::malloc(n ? n : 1);
}
}  // namespace

void* operator new(std::size_t n) {
    if (void* p = counted_malloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    if (void* p = counted_malloc(n)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return counted_malloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return counted_malloc(n);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
#endif

namespace {

// A core with no modules: only the core's resamplers are registered.
struct BareCore : test::TestCore {
    BareCore() : test::TestCore({}, false) {
        std::ofstream(dir / "etc" / "modules.conf") << "[modules]\nautoload = no\n";
        std::vector<std::string> problems;
        if (!core->start(problems)) throw std::runtime_error("core did not start");
    }
    TranslatorGraph& graph() { return core->translator_graph(); }
};

// Stand-in codecs: 8-bit linear audio (the high byte of each sample), the
// byte XOR-ed with a per-format mask so that formats differ on the wire.
constexpr std::size_t max_samples = 2400;

std::uint8_t mask_of(Format f) {
    switch (f) {
        case Format::alaw:
            return 0x55;
        case Format::opus:
            return 0x0f;
        case Format::g729:
            return 0x33;
        case Format::gsm:
            return 0x71;
        default:
            return 0x00;
    }
}

class FakeEncoder final : public Translator {
public:
    explicit FakeEncoder(Format to) : to_(to), mask_(mask_of(to)) {}
    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        std::size_t n = p.size() / 2;
        if (n > max_samples) return false;
        for (std::size_t i = 0; i < n; ++i) {
            std::int16_t s;
            std::memcpy(&s, p.data() + 2 * i, 2);
            bytes_[i] = static_cast<std::uint8_t>((static_cast<std::uint16_t>(s) >> 8) ^ mask_);
        }
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(to_);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload({bytes_.data(), n});
        return true;
    }

private:
    Format to_;
    std::uint8_t mask_;
    std::array<std::uint8_t, max_samples> bytes_{};
};

class FakeDecoder final : public Translator {
public:
    FakeDecoder(Format from, Format to) : to_(to), mask_(mask_of(from)) {}
    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        if (p.size() > max_samples) return false;
        for (std::size_t i = 0; i < p.size(); ++i)
            samples_[i] = static_cast<std::int16_t>(static_cast<std::uint8_t>(p[i] ^ mask_) << 8);
        return emit(p.size(), out);
    }
    // Conceals with silence, which is enough to follow it through the chain.
    bool conceal(std::uint32_t samples, Frame& out) override {
        if (samples > max_samples) return false;
        std::fill_n(samples_.begin(), samples, std::int16_t{0});
        return emit(samples, out);
    }

private:
    bool emit(std::size_t n, Frame& out) {
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(to_);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload({reinterpret_cast<const std::uint8_t*>(samples_.data()), n * 2});
        return true;
    }
    Format to_;
    std::uint8_t mask_;
    std::array<std::int16_t, max_samples> samples_{};
};

// Codec to codec without decoding (fake ulaw <-> fake alaw).
class FakeRecoder final : public Translator {
public:
    FakeRecoder(Format from, Format to) : to_(to), mask_(mask_of(from) ^ mask_of(to)) {}
    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        if (p.size() > max_samples) return false;
        for (std::size_t i = 0; i < p.size(); ++i) bytes_[i] = p[i] ^ mask_;
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(to_);
        out.samples = static_cast<std::uint32_t>(p.size());
        out.set_payload({bytes_.data(), p.size()});
        return true;
    }

private:
    Format to_;
    std::uint8_t mask_;
    std::array<std::uint8_t, max_samples> bytes_{};
};

bool is_linear(Format f) {
    return f == Format::slin8 || f == Format::slin16 || f == Format::slin48;
}

// Registers a stand-in step; `seen_options`, when given, records the options
// each instance is created with.
Registration add_fake(CoreImpl& core, Format from, Format to, ModuleUse* owner,
                      std::shared_ptr<std::vector<std::string>> seen_options = nullptr) {
    TranslatorInfo info;
    info.from = from;
    info.to = to;
    info.description = "test stand-in";
    info.create = [from, to, seen_options](std::string_view options) -> std::unique_ptr<Translator> {
        if (seen_options) seen_options->push_back(translator_name(from, to) + ":" + std::string(options));
        if (options == "invalid") return nullptr;
        if (is_linear(from)) return std::make_unique<FakeEncoder>(to);
        if (is_linear(to)) return std::make_unique<FakeDecoder>(from, to);
        return std::make_unique<FakeRecoder>(from, to);
    };
    return core.translators().add(translator_name(from, to), std::move(info), owner);
}

Frame slin_frame(Format f, const std::vector<std::int16_t>& samples) {
    Frame fr;
    fr.kind = FrameKind::voice;
    fr.subclass = static_cast<std::uint32_t>(f);
    fr.samples = static_cast<std::uint32_t>(samples.size());
    fr.set_payload({reinterpret_cast<const std::uint8_t*>(samples.data()), samples.size() * 2});
    return fr;
}

std::vector<std::int16_t> samples_of(const Frame& f) {
    std::vector<std::int16_t> s(f.payload().size() / 2);
    std::memcpy(s.data(), f.payload().data(), s.size() * 2);
    return s;
}

struct StringOutput final : CliOutput {
    std::string text;
    void write(std::string_view t) override { text += t; }
};

std::pair<int, std::string> cli(CoreImpl& core, const std::string& line) {
    auto out = std::make_shared<StringOutput>();
    auto f = boost::asio::co_spawn(core.pick_loop(), run_cli_line(core, line, *out), boost::asio::use_future);
    int status = f.get();
    return {status, out->text};
}

const char* const resamplers[] = {"slin8->slin16",  "slin8->slin48", "slin16->slin8",
                                  "slin16->slin48", "slin48->slin8", "slin48->slin16"};

}  // namespace

TEST_CASE("translate: the core's resamplers are registered and measured at start") {
    BareCore t;
    auto steps = t.graph().steps();
    REQUIRE(steps.size() == 6);
    for (auto& s : steps) {
        CHECK(s.module == "core");
        CHECK(s.source == CostSource::measured);
        CHECK(s.cost >= 1);
        CHECK(s.cost < TranslatorGraph::assumed_cost);
    }
}

TEST_CASE("translate: the cheapest path wins, by cost and then by number of steps") {
    BareCore t;
    auto& g = t.graph();
    ModuleUse owner("codec_fake");
    std::vector<Registration> regs;
    for (auto [from, to] : {std::pair{Format::ulaw, Format::slin8},
                            {Format::slin8, Format::ulaw},
                            {Format::alaw, Format::slin8},
                            {Format::slin8, Format::alaw},
                            {Format::ulaw, Format::alaw},
                            {Format::opus, Format::slin48},
                            {Format::slin48, Format::opus}}) {
        regs.push_back(add_fake(*t.core, from, to, &owner));
        g.set_cost(translator_name(from, to), 1);
    }
    g.set_cost("ulaw->alaw", 10);

    // Two steps costing 1 + 1 beat one costing 10...
    auto p = g.plan(Format::ulaw, Format::alaw);
    REQUIRE(p);
    CHECK(p->describe() == "ulaw->slin8->alaw");
    CHECK(p->cost == 2);
    // ...one costing 1 beats them...
    g.set_cost("ulaw->alaw", 1);
    CHECK(g.plan(Format::ulaw, Format::alaw)->describe() == "ulaw->alaw");
    // ...and on equal cost the shorter chain wins.
    g.set_cost("ulaw->alaw", 2);
    CHECK(g.plan(Format::ulaw, Format::alaw)->describe() == "ulaw->alaw");

    // Across rates, through the core's resampler. Its measured costs depend on
    // how busy the machine was at start-up, so the test pins them.
    auto resample_cost = [&](std::string_view name) {
        for (auto& s : g.steps())
            if (s.name == name) return s.cost;
        return 0u;
    };
    g.set_cost("slin48->slin8", 3);
    g.set_cost("slin48->slin16", 2);
    g.set_cost("slin16->slin8", 2);
    auto path = t.core->build_path(Format::opus, Format::ulaw);
    REQUIRE(path);
    CHECK(path->describe() == "opus->slin48->slin8->ulaw");
    CHECK(path->cost() == 1 + 3 + 1);
    CHECK(path->from() == Format::opus);
    CHECK(path->to() == Format::ulaw);

    // A cheap two-step resampling beats an expensive direct one.
    g.set_cost("slin48->slin8", 100);
    g.set_cost("slin48->slin16", 1);
    g.set_cost("slin16->slin8", 1);
    path = t.core->build_path(Format::opus, Format::ulaw);
    REQUIRE(path);
    CHECK(path->describe() == "opus->slin48->slin16->slin8->ulaw");
    CHECK(path->cost() == 4);
    // Clearing a pinned cost goes back to the measured one.
    for (auto* n : {"slin48->slin8", "slin48->slin16", "slin16->slin8"}) g.clear_cost(n);
    CHECK(resample_cost("slin48->slin8") != 100);
    CHECK(resample_cost("slin48->slin8") > 0);

    // No path, and nothing to do.
    CHECK_FALSE(g.plan(Format::ulaw, Format::g729));
    CHECK(t.core->build_path(Format::ulaw, Format::g729) == nullptr);
    CHECK(t.core->build_path(Format::ulaw, Format::ulaw) == nullptr);
    CHECK(t.core->build_path(Format::none, Format::ulaw) == nullptr);
    CHECK(t.core->build_path(Format::h264, Format::ulaw) == nullptr);
}

TEST_CASE("translate: a path converts through every step; options reach the encoder only") {
    BareCore t;
    ModuleUse owner("codec_fake");
    auto seen = std::make_shared<std::vector<std::string>>();
    std::vector<Registration> regs;
    for (auto [from, to] : {std::pair{Format::ulaw, Format::slin8},
                            {Format::slin8, Format::ulaw},
                            {Format::alaw, Format::slin8},
                            {Format::slin8, Format::alaw},
                            {Format::ulaw, Format::alaw},
                            {Format::opus, Format::slin48},
                            {Format::slin48, Format::opus}})
        regs.push_back(add_fake(*t.core, from, to, &owner, seen));
    auto& g = t.graph();
    for (auto* n : {"ulaw->slin8", "slin8->ulaw", "alaw->slin8", "slin8->alaw", "opus->slin48", "slin48->opus"})
        g.set_cost(n, 1);

    // The direct step and the chain through slin8 must agree byte for byte.
    g.set_cost("ulaw->alaw", 10);
    auto via = t.core->build_path(Format::ulaw, Format::alaw);
    g.set_cost("ulaw->alaw", 1);
    auto direct = t.core->build_path(Format::ulaw, Format::alaw);
    REQUIRE(via);
    REQUIRE(direct);
    CHECK(via->describe() == "ulaw->slin8->alaw");
    CHECK(direct->describe() == "ulaw->alaw");
    Frame in, a, b;
    in.kind = FrameKind::voice;
    in.subclass = static_cast<std::uint32_t>(Format::ulaw);
    in.samples = 160;
    std::vector<std::uint8_t> bytes(160);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 7);
    in.set_payload(bytes);
    REQUIRE(via->convert(in, a));
    REQUIRE(direct->convert(in, b));
    CHECK(a.subclass == static_cast<std::uint32_t>(Format::alaw));
    CHECK(a.samples == 160);
    CHECK(std::equal(a.payload().begin(), a.payload().end(), b.payload().begin(), b.payload().end()));

    seen->clear();
    auto path = t.core->build_path(Format::opus, Format::ulaw, "bitrate=24000");
    REQUIRE(path);
    CHECK(*seen == std::vector<std::string>{"opus->slin48:", "slin8->ulaw:bitrate=24000"});
    CHECK(t.core->build_path(Format::opus, Format::ulaw, "invalid") == nullptr);

    // Concealment starts at the decoder and runs through the rest.
    Frame out;
    REQUIRE(path->conceal(960, out));
    CHECK(out.subclass == static_cast<std::uint32_t>(Format::ulaw));
    CHECK(out.samples == 160);
    // A chain that starts with a resampler cannot conceal.
    auto from_linear = t.core->build_path(Format::slin48, Format::ulaw);
    REQUIRE(from_linear);
    CHECK_FALSE(from_linear->conceal(960, out));
}

TEST_CASE("translate: cached paths are dropped when a translator goes or a cost changes") {
    BareCore t;
    auto& g = t.graph();
    ModuleUse owner("codec_fake");
    auto dec = add_fake(*t.core, Format::ulaw, Format::slin8, &owner);
    auto enc = add_fake(*t.core, Format::slin8, Format::alaw, &owner);
    auto direct = add_fake(*t.core, Format::ulaw, Format::alaw, &owner);
    for (auto* n : {"ulaw->slin8", "slin8->alaw", "ulaw->alaw"}) g.set_cost(n, 1);

    CHECK(g.cached_trees() == 0);
    CHECK(g.plan(Format::ulaw, Format::alaw)->describe() == "ulaw->alaw");
    CHECK(g.cached_trees() == 1);
    CHECK(g.plan(Format::ulaw, Format::slin16)->describe() == "ulaw->slin8->slin16");
    CHECK(g.cached_trees() == 1);  // one tree per source format serves every destination

    direct.reset();
    CHECK(g.cached_trees() == 0);
    CHECK(g.plan(Format::ulaw, Format::alaw)->describe() == "ulaw->slin8->alaw");
    dec.reset();
    CHECK_FALSE(g.plan(Format::ulaw, Format::alaw));
    CHECK(t.core->build_path(Format::ulaw, Format::alaw) == nullptr);
    dec = add_fake(*t.core, Format::ulaw, Format::slin8, &owner);
    CHECK(g.plan(Format::ulaw, Format::alaw));

    g.set_cost("slin8->alaw", 7);
    CHECK(g.cached_trees() == 0);
    CHECK(g.plan(Format::ulaw, Format::alaw)->cost == 8);
}

TEST_CASE("translate: a path leases every step, so its module cannot unload") {
    BareCore t;
    ModuleUse owner("codec_fake");
    {
        auto dec = add_fake(*t.core, Format::ulaw, Format::slin8, &owner);
        auto enc = add_fake(*t.core, Format::slin8, Format::alaw, &owner);
        int core_before = t.core->core_use().leases.load();
        auto path = t.core->build_path(Format::ulaw, Format::alaw);
        REQUIRE(path);
        CHECK(owner.leases.load() == 2);
        auto wide = t.core->build_path(Format::ulaw, Format::slin48);
        REQUIRE(wide);
        CHECK(wide->describe() == "ulaw->slin8->slin48");
        CHECK(owner.leases.load() == 3);
        CHECK(t.core->core_use().leases.load() == core_before + 1);
        path.reset();
        wide.reset();
        CHECK(owner.leases.load() == 0);
        CHECK(t.core->core_use().leases.load() == core_before);
    }

    // A real module: `module unload` is refused while a call's path uses it.
    std::string msg;
    REQUIRE(t.core->modules().load(TANDEM_TEST_MODULE_DIR "/test_mod_codec.so", msg));
    auto path = t.core->build_path(Format::lpc10, Format::slin16);
    REQUIRE(path);
    CHECK(path->describe() == "lpc10->slin8->slin16");
    CHECK_FALSE(t.core->modules().unload("test_mod_codec", msg));
    CHECK(msg.find("in use") != std::string::npos);
    path.reset();
    // Its steps were measured on the worker pool after the load (the decoder
    // through its encoder); that job may hold a lease for a moment.
    CHECK(t.wait_for([&] {
        int measured = 0;
        for (auto& s : t.graph().steps()) measured += s.module == "test_mod_codec" && s.source == CostSource::measured;
        return measured == 2;
    }));
    CHECK(t.wait_for([&] { return t.core->modules().unload("test_mod_codec", msg); }));
    CHECK(t.core->build_path(Format::lpc10, Format::slin16) == nullptr);
    for (auto& s : t.graph().steps()) CHECK(s.module != "test_mod_codec");
}

TEST_CASE("translate: costs are measured; a decoder without its encoder gets the assumed cost") {
    BareCore t;
    auto& g = t.graph();
    ModuleUse owner("codec_fake");
    auto dec = add_fake(*t.core, Format::ulaw, Format::slin8, &owner);
    auto enc = add_fake(*t.core, Format::slin8, Format::ulaw, &owner);
    auto lonely = add_fake(*t.core, Format::gsm, Format::slin8, &owner);
    for (auto& s : g.steps())
        if (s.module == "codec_fake") CHECK(s.source == CostSource::pending);
    g.measure(false);
    std::map<std::string, TranslatorStep> by_name;
    for (auto& s : g.steps()) by_name[s.name] = s;
    CHECK(by_name["ulaw->slin8"].source == CostSource::measured);
    CHECK(by_name["slin8->ulaw"].source == CostSource::measured);
    CHECK(by_name["ulaw->slin8"].cost >= 1);
    CHECK(by_name["gsm->slin8"].source == CostSource::assumed);
    CHECK(by_name["gsm->slin8"].cost == TranslatorGraph::assumed_cost);
    g.set_cost("gsm->slin8", 3);
    for (auto& s : g.steps())
        if (s.name == "gsm->slin8") CHECK((s.source == CostSource::injected && s.cost == 3));
    // recalc measures everything again; injected costs stay pinned.
    g.measure(true);
    for (auto& s : g.steps())
        if (s.name == "gsm->slin8") CHECK(s.source == CostSource::injected);
}

// 30 dB is a threshold for "the audio is intact", with a wide margin on both
// sides. A correct chain loses little: 16-bit rounding alone allows ~90 dB,
// and SpeexDSP at quality 4 passes 1 kHz (well inside the 8 kHz passband)
// with small ripple, the 48 kHz images being removed by both filters, so the
// round trip lands far above 30 dB. The faults a broken resampler makes — a
// wrong rate (the tone comes back at another frequency), samples dropped or
// repeated at frame edges, clipping, wrong byte order — leave residuals within
// a few dB of the signal itself, far below 30 dB.
TEST_CASE("translate: slin8 -> slin48 -> slin8 keeps a 1 kHz sine (SNR > 30 dB)") {
    BareCore t;
    // The direct resamplers are the ones under test. Left to the measured
    // costs, a slowed machine (a sanitizer build under load) now and then
    // routes through slin16; the test pins them, as the planning test does.
    t.graph().set_cost("slin8->slin48", 1);
    t.graph().set_cost("slin48->slin8", 1);
    auto up = t.core->build_path(Format::slin8, Format::slin48);
    auto down = t.core->build_path(Format::slin48, Format::slin8);
    REQUIRE(up);
    REQUIRE(down);
    CHECK(up->describe() == "slin8->slin48");
    const double w = 2 * std::numbers::pi * 1000.0 / 8000.0;
    std::vector<std::int16_t> result;
    Frame mid, out;
    for (int frame = 0; frame < 50; ++frame) {
        std::vector<std::int16_t> s(160);
        for (int i = 0; i < 160; ++i)
            s[static_cast<std::size_t>(i)] =
                static_cast<std::int16_t>(std::lround(10000 * std::sin(w * (frame * 160 + i))));
        REQUIRE(up->convert(slin_frame(Format::slin8, s), mid));
        CHECK(mid.samples == 960);
        CHECK(mid.subclass == static_cast<std::uint32_t>(Format::slin48));
        REQUIRE(down->convert(mid, out));
        CHECK(out.samples == 160);
        auto back = samples_of(out);
        result.insert(result.end(), back.begin(), back.end());
    }
    // Past the filters' start-up (delay and transient), fit a*sin + b*cos at
    // 1 kHz by least squares: the fit is the signal whatever the delay, the
    // residual is noise and distortion.
    double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0;
    const std::size_t skip = 400;
    for (std::size_t n = skip; n < result.size(); ++n) {
        double s = std::sin(w * static_cast<double>(n)), c = std::cos(w * static_cast<double>(n));
        ss += s * s, cc += c * c, sc += s * c;
        ys += result[n] * s, yc += result[n] * c;
    }
    double det = ss * cc - sc * sc;
    double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
    double signal = 0, noise = 0;
    for (std::size_t n = skip; n < result.size(); ++n) {
        double fit = a * std::sin(w * static_cast<double>(n)) + b * std::cos(w * static_cast<double>(n));
        signal += fit * fit;
        noise += (result[n] - fit) * (result[n] - fit);
    }
    double snr = 10 * std::log10(signal / std::max(noise, 1e-9));
    INFO("slin8->slin48->slin8 round trip: SNR " << snr << " dB, amplitude " << std::hypot(a, b));
    CHECK(snr > 30.0);
    CHECK(std::hypot(a, b) == doctest::Approx(10000).epsilon(0.05));
}

TEST_CASE("translate: a steady stream of frames allocates nothing") {
    BareCore t;
    ModuleUse owner("codec_fake");
    std::vector<Registration> regs;
    for (auto [from, to] : {std::pair{Format::ulaw, Format::slin8},
                            {Format::slin8, Format::ulaw},
                            {Format::opus, Format::slin48},
                            {Format::slin48, Format::opus}})
        regs.push_back(add_fake(*t.core, from, to, &owner));
    if (!allocations_counted) MESSAGE("allocations are not counted under AddressSanitizer");
    for (auto [from, to] : {std::pair{Format::opus, Format::ulaw}, {Format::ulaw, Format::opus}}) {
        // The counter sees what the core library allocates: building a path does.
        count_allocations = true;
        allocations = 0;
        auto path = t.core->build_path(from, to);
        count_allocations = false;
        REQUIRE(path);
        CHECK((allocations > 0 || !allocations_counted));
        Frame in, out;
        in.kind = FrameKind::voice;
        in.subclass = static_cast<std::uint32_t>(from);
        std::vector<std::uint8_t> payload(from == Format::opus ? 960 : 160, 0x5a);
        in.samples = static_cast<std::uint32_t>(payload.size());
        in.set_payload(payload);
        REQUIRE(path->convert(in, out));  // the caller's `out` takes its size once
        count_allocations = true;
        allocations = 0;
        bool ok = true;
        for (int i = 0; i < 200; ++i) ok = path->convert(in, out) && ok;
        count_allocations = false;
        CHECK(ok);
        INFO(path->describe());
        CHECK(allocations == 0);
    }
}

TEST_CASE("translate: core show translation, translators and codecs") {
    BareCore t;
    auto& g = t.graph();
    ModuleUse owner("codec_fake");
    std::vector<Registration> regs;
    for (auto [from, to] :
         {std::pair{Format::ulaw, Format::slin8}, {Format::slin8, Format::ulaw}, {Format::g729, Format::slin8}})
        regs.push_back(add_fake(*t.core, from, to, &owner));
    // Pinned costs make the matrix exact.
    const unsigned costs[] = {2, 3, 4, 2, 5, 4};
    for (std::size_t i = 0; i < std::size(resamplers); ++i) g.set_cost(resamplers[i], costs[i]);
    g.set_cost("ulaw->slin8", 1);
    g.set_cost("slin8->ulaw", 1);
    g.set_cost("g729->slin8", 9);

    auto [status, text] = cli(*t.core, "core show translation");
    CHECK(status == cli_status::ok);
    INFO(text);
    CHECK(text.find("Translation costs between formats") != std::string::npos);
    CHECK(text.find("          slin8 slin16 slin48   ulaw   g729\n"
                    "   slin8      -      2      3      1      -\n"
                    "  slin16      4      -      2      5      -\n"
                    "  slin48      5      4      -      6      -\n"
                    "    ulaw      1      3      4      -      -\n"
                    "    g729      9     11     12     10      -\n") != std::string::npos);

    auto [s2, translators] = cli(*t.core, "core show translators");
    CHECK(s2 == cli_status::ok);
    CHECK(translators.find("g729->slin8") != std::string::npos);
    CHECK(translators.find("codec_fake") != std::string::npos);
    CHECK(translators.find("9 translators") != std::string::npos);

    auto [s3, codecs] = cli(*t.core, "core show codecs");
    CHECK(s3 == cli_status::ok);
    INFO(codecs);
    CHECK(codecs.find("ulaw     audio  PCMU/8000        0          8000  yes     yes") != std::string::npos);
    CHECK(codecs.find("g729     audio  G729/8000        18         8000  yes     no") != std::string::npos);
    CHECK(codecs.find("alaw     audio  PCMA/8000        8          8000  no      no") != std::string::npos);
    CHECK(codecs.find("opus     audio  opus/48000/2     dynamic   48000  no      no") != std::string::npos);

    auto [s4, recalc] = cli(*t.core, "core show translation recalc");
    CHECK(s4 == cli_status::ok);
    CHECK(recalc.find("Measuring every translator again") != std::string::npos);
    CHECK(cli(*t.core, "core show translation bogus").first == cli_status::usage);
}
