// In-band detection (tandem/dsp.hpp): the SpanDSP detector on synthetic
// signals (DTMF, speech-like audio and music, fax CNG and CED), and on a real
// core: digits heard in A-law voice pushed into a channel reach its reader in
// order, a fax tone raises one FaxDetect event and sends a call in the
// dialplan to its `fax` extension, and odd frames are skipped.
// GCC 12 inlines Asio's recycling frame allocator into co_spawn of a
// coroutine returning a large value and then reports a new/delete mismatch
// that is not there (Asio pairs its own operator new and delete).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "core_fixture.hpp"

#include <tandem/dsp.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <future>
#include <map>
#include <mutex>
#include <numbers>
#include <random>

using namespace tandem;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using Pcm = std::vector<std::int16_t>;

void append_tones(Pcm& out, double f1, double f2, int ms, double amp) {
    auto n = static_cast<std::size_t>(ms * 8);
    auto start = out.size();  // the phase runs on across pieces
    for (std::size_t i = 0; i < n; ++i) {
        double t = static_cast<double>(start + i) / 8000.0;
        double v = amp * std::sin(2 * std::numbers::pi * f1 * t);
        if (f2 > 0) v += amp * std::sin(2 * std::numbers::pi * f2 * t);
        out.push_back(static_cast<std::int16_t>(std::lround(v)));
    }
}

void append_silence(Pcm& out, int ms) {
    out.insert(out.end(), static_cast<std::size_t>(ms * 8), 0);
}

// DTMF as a keypad sends it: 100 ms of each digit, 100 ms apart, both tones
// at about -10 dBm0.
Pcm dtmf(std::string_view digits) {
    static const char keys[4][4] = {
        {'1', '2', '3', 'A'}, {'4', '5', '6', 'B'}, {'7', '8', '9', 'C'}, {'*', '0', '#', 'D'}};
    static const double rows[4] = {697, 770, 852, 941};
    static const double cols[4] = {1209, 1336, 1477, 1633};
    Pcm out;
    append_silence(out, 200);
    for (char d : digits)
        for (int r = 0; r < 4; ++r)
            for (int c = 0; c < 4; ++c)
                if (keys[r][c] == d) {
                    append_tones(out, rows[r], cols[c], 100, 3000);
                    append_silence(out, 100);
                }
    append_silence(out, 200);
    return out;
}

// Speech-like: a pulse train with a gliding pitch through three formant
// resonators that move, syllable by syllable, with pauses and a little noise.
Pcm speech(int seconds) {
    Pcm out;
    std::mt19937 rng(7);
    std::normal_distribution<double> noise(0, 30);
    const double formants[5][3] = {
        {730, 1090, 2440}, {270, 2290, 3010}, {530, 1840, 2480}, {570, 840, 2410}, {300, 870, 2240}};
    double y[3][2] = {};
    double phase = 0;
    for (int i = 0; i < seconds * 8000; ++i) {
        int syllable = i / 1600;  // 200 ms each
        bool voiced = syllable % 4 != 3;
        double pitch = 110 + 40 * std::sin(i / 8000.0 * 3.1) + 10 * (syllable % 3);
        phase += pitch / 8000;
        double x = 0;
        if (phase >= 1) {
            phase -= 1;
            x = voiced ? 6000 : 0;
        }
        double v = 0;
        for (int k = 0; k < 3; ++k) {
            double f = formants[syllable % 5][k];
            double r = 0.97;
            double a1 = 2 * r * std::cos(2 * std::numbers::pi * f / 8000), a2 = -r * r;
            double yk = x + a1 * y[k][0] + a2 * y[k][1];
            y[k][1] = y[k][0];
            y[k][0] = yk;
            v += yk / (k + 1);
        }
        v = v * 0.05 + noise(rng);
        out.push_back(static_cast<std::int16_t>(std::clamp(v, -32000.0, 32000.0)));
    }
    return out;
}

// Music: chords of notes rich in harmonics, changing every half second.
Pcm music(int seconds) {
    Pcm out;
    const double chords[4][3] = {
        {261.63, 329.63, 392.0}, {220.0, 261.63, 329.63}, {174.61, 220.0, 261.63}, {196.0, 246.94, 293.66}};
    for (int i = 0; i < seconds * 8000; ++i) {
        auto& chord = chords[(i / 4000) % 4];
        double t = i / 8000.0, v = 0;
        for (double f : chord)
            for (int h = 1; h * f < 3800; ++h) v += 1500.0 / h * std::sin(2 * std::numbers::pi * f * h * t);
        out.push_back(static_cast<std::int16_t>(std::clamp(v, -32000.0, 32000.0)));
    }
    return out;
}

// A fax machine calling: 1100 Hz for 0.5 s, 3 s of silence, `cycles` times.
Pcm cng(int cycles) {
    Pcm out;
    append_silence(out, 300);
    for (int i = 0; i < cycles; ++i) {
        append_tones(out, 1100, 0, 500, 5000);
        append_silence(out, 3000);
    }
    return out;
}

struct Heard {
    std::string begun, ended;
    std::vector<FaxTone> fax;
};

Heard run(ToneDetector& d, const Pcm& pcm, std::size_t chunk = 160) {
    Heard h;
    for (std::size_t at = 0; at < pcm.size(); at += chunk) {
        auto n = std::min(chunk, pcm.size() - at);
        for (auto& e : d.feed(std::span<const std::int16_t>(pcm.data() + at, n))) {
            if (e.kind == ToneEvent::Kind::digit_begin) h.begun += e.digit;
            if (e.kind == ToneEvent::Kind::digit_end) {
                h.ended += e.digit;
                CHECK(e.duration_ms >= 40);
                CHECK(e.duration_ms <= 160);
            }
            if (e.kind == ToneEvent::Kind::fax) h.fax.push_back(e.tone);
        }
    }
    return h;
}

// --- channels on a real core ---------------------------------------------------

struct NullDriver final : ChannelDriver {};

template <class F>
auto on_loop(Channel& c, F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto fut = task.get_future();
    asio::post(c.loop(), [&task] { task(); });
    return fut.get();
}

Frame voice_frame(Format f, std::span<const std::uint8_t> payload, std::uint32_t samples) {
    Frame fr;
    fr.kind = FrameKind::voice;
    fr.subclass = static_cast<std::uint32_t>(f);
    fr.samples = samples;
    fr.set_payload(payload);
    return fr;
}

// 20 ms frames of `pcm` in `format` (encoded by the core's own path).
std::vector<Frame> frames(Core& core, const Pcm& pcm, Format format) {
    std::unique_ptr<TranslationPath> enc;
    if (format != Format::slin8) {
        enc = core.build_path(Format::slin8, format);
        REQUIRE(enc);
    }
    std::vector<Frame> out;
    for (std::size_t at = 0; at + 160 <= pcm.size(); at += 160) {
        auto lin =
            voice_frame(Format::slin8, std::span(reinterpret_cast<const std::uint8_t*>(pcm.data() + at), 160 * 2), 160);
        if (!enc) {
            out.push_back(lin);
            continue;
        }
        Frame coded;
        REQUIRE(enc->convert(lin, coded));
        out.push_back(coded);
    }
    return out;
}

// Reads frames the way an application does, until `want` digits ended.
awaitable<std::string> read_digits(Channel& c, std::size_t want) {
    std::string got;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (got.size() < want && std::chrono::steady_clock::now() < deadline) {
        auto f = co_await c.read_frame(1s);
        if (f && f->kind == FrameKind::dtmf_end) got += static_cast<char>(f->subclass);
    }
    co_return got;
}

awaitable<std::optional<Frame>> read_one(Channel& c) {
    co_return co_await c.read_frame(2s);
}

}  // namespace

TEST_CASE("dsp: faxdetect= values") {
    CHECK(parse_faxdetect("no") == ToneDetection{});
    CHECK(parse_faxdetect("YES") == ToneDetection{false, true, true});
    CHECK(parse_faxdetect("cng") == ToneDetection{false, true, false});
    CHECK(parse_faxdetect(" ced ") == ToneDetection{false, false, true});
    CHECK_FALSE(parse_faxdetect("maybe"));
    CHECK(to_string(FaxTone::cng) == "cng");
    CHECK(to_string(FaxTone::ced) == "ced");
    CHECK_FALSE(ToneDetector::create({}));
}

TEST_CASE("dsp: DTMF tones become digits, in order, each begun then ended") {
    auto d = ToneDetector::create({.dtmf = true});
    REQUIRE(d);
    auto h = run(*d, dtmf("1234*#"));
    CHECK(h.begun == "1234*#");
    CHECK(h.ended == "1234*#");
    CHECK(h.fax.empty());

    // Any block size: the detector keeps its state between calls.
    auto odd = ToneDetector::create({.dtmf = true});
    CHECK(run(*odd, dtmf("0987ABCD"), 37).ended == "0987ABCD");
    auto big = ToneDetector::create({.dtmf = true});
    CHECK(run(*big, dtmf("555"), 8000).ended == "555");
}

TEST_CASE("dsp: speech-like audio and music make no digits") {
    auto d = ToneDetector::create({.dtmf = true, .fax_cng = true, .fax_ced = true});
    REQUIRE(d);
    auto h = run(*d, speech(10));
    CHECK(h.begun == "");
    CHECK(h.fax.empty());
    h = run(*d, music(10));
    CHECK(h.begun == "");
    CHECK(h.fax.empty());
    // Still listening afterwards.
    CHECK(run(*d, dtmf("42")).ended == "42");
}

TEST_CASE("dsp: fax calling tone bursts are reported once; the answer tone as ced") {
    auto d = ToneDetector::create({.fax_cng = true, .fax_ced = true});
    REQUIRE(d);
    auto h = run(*d, cng(3));
    REQUIRE(h.fax.size() == 1);
    CHECK(h.fax[0] == FaxTone::cng);
    CHECK(h.begun == "");  // not asked for

    auto answer = ToneDetector::create({.fax_ced = true});
    Pcm ced;
    append_silence(ced, 200);
    append_tones(ced, 2100, 0, 3000, 5000);
    h = run(*answer, ced);
    REQUIRE(h.fax.size() == 1);
    CHECK(h.fax[0] == FaxTone::ced);

    // Listening for CED only, a calling tone is no fax.
    auto only_ced = ToneDetector::create({.fax_ced = true});
    CHECK(run(*only_ced, cng(2)).fax.empty());
}

TEST_CASE("dsp: in-band digits in A-law voice reach the channel's reader in order") {
    test::TestCore t;
    auto c = t.core->create_channel("Trace", "Trace/dsp", std::make_unique<NullDriver>(), t.core->pick_loop());
    REQUIRE(c);
    CHECK(on_loop(*c, [&] {
        c->set_native_format(Format::alaw);
        return c->set_tone_detection({.dtmf = true});
    }));
    CHECK(on_loop(*c, [&] { return c->audio_tapped(); }));
    CHECK(on_loop(*c, [&] { return c->tone_detection(); }) == ToneDetection{.dtmf = true});

    auto digits = asio::co_spawn(c->loop(), read_digits(*c, 6), asio::use_future);
    auto audio = frames(*t.core, dtmf("1234*#"), Format::alaw);
    // One frame per loop turn, as packets arrive.
    for (auto& f : audio) asio::post(c->loop(), [c, f] { c->on_frame(f); });
    REQUIRE(digits.wait_for(15s) == std::future_status::ready);
    CHECK(digits.get() == "1234*#");

    // A reader of slin8 gets the decoded audio, not A-law.
    on_loop(*c, [&] {
        c->set_read_format(Format::slin8);
        return 0;
    });
    auto next = asio::co_spawn(c->loop(), read_one(*c), asio::use_future);
    auto more = frames(*t.core, speech(1), Format::alaw);
    asio::post(c->loop(), [c, f = more[10]] { c->on_frame(f); });
    auto got = next.get();
    REQUIRE(got);
    CHECK(got->kind == FrameKind::voice);
    CHECK(static_cast<Format>(got->subclass) == Format::slin8);
    CHECK(got->payload().size() == 320);

    CHECK(on_loop(*c, [&] { return c->set_tone_detection({}); }));
    CHECK_FALSE(on_loop(*c, [&] { return c->audio_tapped(); }));
    on_loop(*c, [&] {
        t.core->end_channel(c);
        return 0;
    });
}

TEST_CASE("dsp: odd frames are skipped, never a crash") {
    test::TestCore t;
    auto c = t.core->create_channel("Trace", "Trace/odd", std::make_unique<NullDriver>(), t.core->pick_loop());
    REQUIRE(c);
    std::vector<std::string> seen;
    bool on = on_loop(*c, [&] {
        bool ok = c->set_tone_detection({.dtmf = true, .fax_cng = true, .fax_ced = true});
        c->set_frame_observer([&](const Frame& f) {
            if (f.kind == FrameKind::dtmf_end) seen.push_back(std::string(1, static_cast<char>(f.subclass)));
        });
        std::uint8_t bytes[641] = {};
        for (std::uint32_t sub :
             {0u, 9999u, static_cast<std::uint32_t>(Format::h264), static_cast<std::uint32_t>(Format::count_),
              static_cast<std::uint32_t>(Format::opus), static_cast<std::uint32_t>(Format::g722),
              static_cast<std::uint32_t>(Format::slin8), static_cast<std::uint32_t>(Format::alaw)}) {
            Frame f;
            f.kind = FrameKind::voice;
            f.subclass = sub;
            c->on_frame(f);  // no payload
            f.set_payload(std::span(bytes, 3));
            c->on_frame(f);  // odd sizes
            f.set_payload(std::span(bytes, 641));
            c->on_frame(f);  // beyond the inline buffer
        }
        Frame n;
        n.kind = FrameKind::null;
        n.samples = 160;
        c->on_frame(n);
        // The native format changing to one without a decoder is no problem either.
        c->set_native_format(Format::h264);
        c->set_native_format(Format::slin8);
        return ok;
    });
    CHECK(on);
    // Still working afterwards.
    auto audio = frames(*t.core, dtmf("7"), Format::slin8);
    on_loop(*c, [&] {
        for (auto& f : audio) c->on_frame(f);
        c->set_frame_observer({});
        return 0;
    });
    CHECK(seen == std::vector<std::string>{"7"});
    on_loop(*c, [&] {
        t.core->end_channel(c);
        return 0;
    });
}

TEST_CASE("dsp: a fax calling tone raises one FaxDetect and jumps to the fax extension once") {
    test::TestCore t(R"(
[dsp]
exten => s,1,Answer()
 same => n,Set(STARTED=1)
 same => n,Wait(20)
 same => n,Set(NOFAX=1)
exten => fax,1,Set(FAXGOT=${FAXDETECTED}:${FAXEXTEN})
 same => n,Wait(0.2)
 same => n,Hangup()
)");
    auto c = t.core->create_channel("Trace", "Trace/fax", std::make_unique<NullDriver>(), t.core->pick_loop());
    REQUIRE(c);
    c->set_position("dsp", "s", 1);
    struct Seen {
        std::mutex mu;
        int fax = 0;
        std::string tone;
        std::map<std::string, std::string> vars;
    };
    auto seen = std::make_shared<Seen>();
    auto uid = c->uniqueid();
    auto sub = t.core->events().subscribe([seen, uid](const Event& e) {
        std::lock_guard lock(seen->mu);
        if (auto* f = std::get_if<event::FaxDetect>(&e); f && f->uniqueid == uid) {
            ++seen->fax;
            seen->tone = f->tone;
        }
        if (auto* v = std::get_if<event::VariableSet>(&e); v && v->uniqueid == uid) seen->vars[v->name] = v->value;
    });
    on_loop(*c, [&] {
        c->set_native_format(Format::alaw);
        return c->set_tone_detection({.fax_cng = true});
    });
    t.core->start_pbx(c);
    REQUIRE(t.wait_for([&] {
        std::lock_guard lock(seen->mu);
        return seen->vars.count("STARTED") > 0;
    }));
    auto started = std::chrono::steady_clock::now();
    auto audio = frames(*t.core, cng(3), Format::alaw);
    for (auto& f : audio) asio::post(c->loop(), [c, f] { c->on_frame(f); });
    REQUIRE(t.wait_for([&] { return c->finished(); }, 15s));
    CHECK(std::chrono::steady_clock::now() - started < 10s);  // not after Wait(20)
    sub.reset();
    std::lock_guard lock(seen->mu);
    CHECK(seen->fax == 1);
    CHECK(seen->tone == "cng");
    CHECK(seen->vars["FAXDETECTED"] == "cng");
    CHECK(seen->vars["FAXGOT"] == "cng:s");
    CHECK(seen->vars.count("NOFAX") == 0);
}

TEST_CASE("dsp: without a fax extension the call goes on; FAXDETECTED is set") {
    test::TestCore t(R"(
[nofax]
exten => s,1,Answer()
 same => n,Wait(1.5)
 same => n,Set(DONE=${FAXDETECTED})
)");
    auto c = t.core->create_channel("Trace", "Trace/nofax", std::make_unique<NullDriver>(), t.core->pick_loop());
    REQUIRE(c);
    c->set_position("nofax", "s", 1);
    std::mutex mu;
    std::map<std::string, std::string> vars;
    auto uid = c->uniqueid();
    auto sub = t.core->events().subscribe([&](const Event& e) {
        std::lock_guard lock(mu);
        if (auto* v = std::get_if<event::VariableSet>(&e); v && v->uniqueid == uid) vars[v->name] = v->value;
    });
    on_loop(*c, [&] { return c->set_tone_detection({.fax_cng = true}); });
    t.core->start_pbx(c);
    auto audio = frames(*t.core, cng(1), Format::slin8);
    for (auto& f : audio) asio::post(c->loop(), [c, f] { c->on_frame(f); });
    REQUIRE(t.wait_for([&] { return c->finished(); }, 15s));
    sub.reset();
    std::lock_guard lock(mu);
    CHECK(vars["DONE"] == "cng");
}

TEST_CASE("dsp: TONE_DETECT() turns detection on and off from the dialplan") {
    test::TestCore t(R"(
[td]
exten => s,1,Set(A=${TONE_DETECT(dtmf)}/${TONE_DETECT(fax)})
 same => n,Set(TONE_DETECT(dtmf)=on)
 same => n,Set(TONE_DETECT(fax)=ced)
 same => n,Set(B=${TONE_DETECT(dtmf)}/${TONE_DETECT(fax)})
 same => n,Set(TONE_DETECT(fax)=sometimes)
 same => n,Set(TONE_DETECT(dtmf)=off)
 same => n,Set(TONE_DETECT(fax)=yes)
 same => n,Set(C=${TONE_DETECT(dtmf)}/${TONE_DETECT(fax)})
)");
    auto c = t.core->create_channel("Trace", "Trace/td", std::make_unique<NullDriver>(), t.core->pick_loop());
    REQUIRE(c);
    c->set_position("td", "s", 1);
    std::mutex mu;
    std::map<std::string, std::string> vars;
    auto uid = c->uniqueid();
    auto sub = t.core->events().subscribe([&](const Event& e) {
        std::lock_guard lock(mu);
        if (auto* v = std::get_if<event::VariableSet>(&e); v && v->uniqueid == uid) vars[v->name] = v->value;
    });
    t.core->start_pbx(c);
    REQUIRE(t.wait_for([&] { return c->finished(); }));
    sub.reset();
    std::lock_guard lock(mu);
    CHECK(vars["A"] == "off/no");
    CHECK(vars["B"] == "on/ced");
    CHECK(vars["C"] == "off/yes");  // an unknown fax value changed nothing
}

TEST_CASE("dsp: a channel with no dialplan of its own is not redirected by a fax tone") {
    test::TestCore t(R"(
[owned]
exten => s,1,Wait(5)
exten => fax,1,Hangup()
)");
    // As a callee that Dial owns: a position, but no coroutine runs on it.
    auto c = t.core->create_channel("Trace", "Trace/callee", std::make_unique<NullDriver>(), t.core->pick_loop());
    REQUIRE(c);
    c->set_position("owned", "s", 1);
    auto audio = frames(*t.core, cng(1), Format::slin8);
    auto [detected, faxexten, pending] = on_loop(*c, [&] {
        c->set_tone_detection({.fax_cng = true, .fax_ced = true});
        for (auto& f : audio) c->on_frame(f);
        return std::tuple(c->variable("FAXDETECTED").value_or(""), c->variable("FAXEXTEN").value_or("-"),
                          c->async_goto_pending());
    });
    CHECK(detected == "cng");
    CHECK(faxexten == "-");
    CHECK_FALSE(pending);
    CHECK(c->exten() == "s");
    on_loop(*c, [&] {
        t.core->end_channel(c);
        return 0;
    });
}
