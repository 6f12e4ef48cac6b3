// Media files: format_sndfile's readers and writers, crash-safe commit, and
// the core's choice among the variants of a prompt.
#include "core_fixture.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

using namespace tandem;
namespace fs = std::filesystem;

namespace {

std::vector<std::int16_t> sine(std::uint32_t rate, double hz, std::size_t n, double amplitude = 12000) {
    std::vector<std::int16_t> out(n);
    for (std::size_t i = 0; i < n; ++i)
        out[i] = static_cast<std::int16_t>(std::lround(amplitude * std::sin(2 * M_PI * hz * double(i) / rate)));
    return out;
}

Frame voice(Format f, std::span<const std::uint8_t> bytes, std::uint32_t samples) {
    Frame fr;
    fr.kind = FrameKind::voice;
    fr.subclass = static_cast<std::uint32_t>(f);
    fr.samples = samples;
    fr.set_payload(bytes);
    return fr;
}

Frame slin_frame(Format f, const std::int16_t* s, std::size_t n) {
    return voice(f, std::span(reinterpret_cast<const std::uint8_t*>(s), n * 2), static_cast<std::uint32_t>(n));
}

std::vector<std::int16_t> as_samples(std::span<const std::uint8_t> p) {
    std::vector<std::int16_t> out(p.size() / 2);
    std::memcpy(out.data(), p.data(), out.size() * 2);
    return out;
}

// Everything a reader produces, as bytes, with the total sample count.
std::vector<std::uint8_t> read_all(MediaReader& r, std::uint32_t chunk, std::uint64_t& samples) {
    std::vector<std::uint8_t> out;
    Frame f;
    samples = 0;
    while (r.read(f, chunk)) {
        CHECK(f.kind == FrameKind::voice);
        CHECK(f.subclass == static_cast<std::uint32_t>(r.format()));
        auto p = f.payload();
        out.insert(out.end(), p.begin(), p.end());
        samples += f.samples;
    }
    return out;
}

// Zero crossings per second: 2 x the frequency of a clean tone.
double tone_hz(const std::vector<std::int16_t>& s, std::uint32_t rate) {
    int crossings = 0;
    for (std::size_t i = 1; i < s.size(); ++i)
        if ((s[i - 1] < 0) != (s[i] < 0)) ++crossings;
    return crossings / 2.0 / (double(s.size()) / rate);
}

double rms(const std::vector<std::int16_t>& s) {
    double sum = 0;
    for (auto v : s) sum += double(v) * v;
    return s.empty() ? 0 : std::sqrt(sum / s.size());
}

bool have(const char* tool) {
    return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// A core whose prompts live in `sounds` (the fixture's tandem.conf gets one line).
struct SoundsCore {
    test::TestCore tc{"", false};
    fs::path sounds = tc.dir / "sounds";
    SoundsCore() {
        fs::create_directories(sounds);
        std::ofstream(tc.dir / "etc" / "tandem.conf", std::ios::app) << "sounds => " << sounds.string() << "\n";
        std::vector<std::string> problems;
        REQUIRE(tc.core->start(problems));
        REQUIRE(tc.core->file_formats().contains("wav"));
    }
    CoreImpl& core() { return *tc.core; }
};

void write_slin_file(Core& core, const fs::path& p, Format f, const std::vector<std::int16_t>& s) {
    std::string err;
    auto w = core.create_media(p, f, err);
    REQUIRE_MESSAGE(w, err);
    REQUIRE(w->format() == f);
    for (std::size_t i = 0; i < s.size(); i += 160)
        REQUIRE(w->write(slin_frame(f, s.data() + i, std::min<std::size_t>(160, s.size() - i))));
    REQUIRE_MESSAGE(w->commit(err), err);
}

}  // namespace

TEST_CASE("file formats: signed linear WAV and raw files read back sample for sample") {
    SoundsCore sc;
    auto& core = sc.core();
    struct Case {
        const char* name;
        Format format;
        std::uint32_t rate;
    } cases[] = {{"a.wav", Format::slin8, 8000}, {"b.wav16", Format::slin16, 16000}, {"c.wav", Format::slin16, 16000},
                 {"d.sln", Format::slin8, 8000}, {"e.sln16", Format::slin16, 16000}, {"f.wav", Format::slin48, 48000}};
    for (auto& c : cases) {
        CAPTURE(c.name);
        auto s = sine(c.rate, 440, c.rate);  // one second
        auto p = sc.sounds / c.name;
        write_slin_file(core, p, c.format, s);
        CHECK(fs::exists(p));
        CHECK_FALSE(fs::exists(fs::path(p.string() + ".tmp")));
        std::string err;
        auto r = core.open_sound(p.string(), "en", Format::none, err);
        REQUIRE_MESSAGE(r, err);
        CHECK(r->format() == c.format);
        CHECK(r->sample_rate() == c.rate);
        CHECK(r->length() == std::chrono::milliseconds(1000));
        std::uint64_t n = 0;
        auto back = as_samples(read_all(*r, c.rate / 50, n));
        CHECK(n == c.rate);
        CHECK(back == s);
        // Seek to the middle: the rest is half the file.
        REQUIRE(r->seek(std::chrono::milliseconds(500)));
        auto rest = as_samples(read_all(*r, c.rate / 50, n));
        CHECK(n == c.rate / 2);
        CHECK(std::equal(rest.begin(), rest.end(), s.begin() + c.rate / 2));
    }
}

TEST_CASE("file formats: mu-law and A-law (WAV and raw) are read as encoded bytes, no translation") {
    SoundsCore sc;
    auto& core = sc.core();
    for (Format f : {Format::ulaw, Format::alaw}) {
        auto enc = core.build_path(Format::slin8, f);
        REQUIRE(enc);
        auto s = sine(8000, 1004, 8000);
        std::vector<std::uint8_t> encoded;
        for (std::size_t i = 0; i < s.size(); i += 160) {
            Frame out;
            REQUIRE(enc->convert(slin_frame(Format::slin8, s.data() + i, 160), out));
            auto p = out.payload();
            encoded.insert(encoded.end(), p.begin(), p.end());
        }
        REQUIRE(encoded.size() == 8000);
        std::string raw_name = f == Format::ulaw ? "g.ulaw" : "g.alaw";
        for (auto name : {std::string("g.wav"), raw_name}) {
            CAPTURE(name);
            auto p = sc.sounds / name;
            std::string err;
            auto w = core.create_media(p, f, err);
            REQUIRE_MESSAGE(w, err);
            for (std::size_t i = 0; i < encoded.size(); i += 160)
                REQUIRE(w->write(voice(f, std::span(encoded.data() + i, 160), 160)));
            REQUIRE(w->commit(err));
            auto r = core.open_sound(p.string(), "en", f, err);
            REQUIRE_MESSAGE(r, err);
            CHECK(r->format() == f);  // played as stored: nothing to translate
            std::uint64_t n = 0;
            CHECK(read_all(*r, 160, n) == encoded);
            CHECK(n == 8000);
            fs::remove(p);
        }
    }
}

TEST_CASE("file formats: raw GSM passes 33-byte frames through; GSM WAV decodes to slin8") {
    SoundsCore sc;
    auto& core = sc.core();
    auto enc = core.build_path(Format::slin8, Format::gsm);
    REQUIRE(enc);
    auto s = sine(8000, 500, 8000);
    std::string err;
    auto p = sc.sounds / "h.gsm";
    auto w = core.create_media(p, Format::none, err);
    REQUIRE_MESSAGE(w, err);
    CHECK(w->format() == Format::gsm);
    std::vector<std::uint8_t> encoded;
    for (std::size_t i = 0; i < s.size(); i += 160) {
        Frame out;
        REQUIRE(enc->convert(slin_frame(Format::slin8, s.data() + i, 160), out));
        REQUIRE(out.payload().size() == 33);
        encoded.insert(encoded.end(), out.payload().begin(), out.payload().end());
        REQUIRE(w->write(out));
    }
    REQUIRE(w->commit(err));
    CHECK(fs::file_size(p) == 50 * 33);
    auto r = core.open_sound(p.string(), "en", Format::gsm, err);
    REQUIRE_MESSAGE(r, err);
    CHECK(r->format() == Format::gsm);
    CHECK(r->length() == std::chrono::milliseconds(1000));
    std::uint64_t n = 0;
    CHECK(read_all(*r, 160, n) == encoded);
    CHECK(n == 8000);

    if (!have("sox")) {
        MESSAGE("sox missing: GSM WAV not checked");
        return;
    }
    auto wav = sc.sounds / "gsm.wav";
    auto cmd = "sox -q -n -r 8000 -c 1 -e gsm-full-rate " + wav.string() + " synth 1 sine 500 vol 0.5";
    REQUIRE(std::system(cmd.c_str()) == 0);
    auto g = core.open_sound(wav.string(), "en", Format::none, err);
    REQUIRE_MESSAGE(g, err);
    CHECK(g->format() == Format::slin8);
    auto dec = as_samples(read_all(*g, 160, n));
    CHECK(n >= 7900);
    CHECK(rms(dec) > 3000);
    CHECK(tone_hz(dec, 8000) == doctest::Approx(500).epsilon(0.05));
}

TEST_CASE("file formats: MP3 at 44.1 kHz stereo is decoded, mixed and resampled to slin48") {
    if (!have("sox") || !have("lame")) {
        MESSAGE("sox or lame missing (Debian: lame): MP3 not checked");
        return;
    }
    SoundsCore sc;
    auto& core = sc.core();
    auto wav = sc.sounds / "music.wav", mp3 = sc.sounds / "music.mp3";
    auto cmd = "sox -q -n -r 44100 -c 2 " + wav.string() + " synth 2 sine 1000 vol 0.5 && lame --quiet " +
               wav.string() + " " + mp3.string();
    REQUIRE(std::system(cmd.c_str()) == 0);
    fs::remove(wav);
    std::string err;
    auto r = core.open_sound((sc.sounds / "music").string(), "en", Format::slin8, err);
    REQUIRE_MESSAGE(r, err);
    CHECK(r->path() == mp3);
    CHECK(r->format() == Format::slin48);
    CHECK(r->sample_rate() == 48000);
    std::uint64_t n = 0;
    auto pcm = as_samples(read_all(*r, 960, n));
    // lame pads the start and end by a few milliseconds.
    CHECK(double(n) / 48000 == doctest::Approx(2.0).epsilon(0.05));
    std::vector<std::int16_t> middle(pcm.begin() + 24000, pcm.begin() + 72000);
    CHECK(rms(middle) > 8000);
    CHECK(tone_hz(middle, 48000) == doctest::Approx(1000).epsilon(0.02));

    // Written by libsndfile's own MP3 encoder when it has one, read back at 8 kHz.
    auto lease = core.file_formats().find("mp3");
    REQUIRE(lease);
    if (lease->can_write) {
        auto tone = sine(8000, 400, 16000);
        write_slin_file(core, sc.sounds / "tone.mp3", Format::slin8, tone);
        auto t = core.open_sound((sc.sounds / "tone.mp3").string(), "en", Format::none, err);
        REQUIRE_MESSAGE(t, err);
        CHECK(t->format() == Format::slin8);
        auto back = as_samples(read_all(*t, 160, n));
        CHECK(n >= 15000);
        std::vector<std::int16_t> mid(back.begin() + 4000, back.begin() + 12000);
        CHECK(tone_hz(mid, 8000) == doctest::Approx(400).epsilon(0.03));
    }
}

TEST_CASE("file formats: a writer leaves only a .tmp until commit, nothing when dropped") {
    SoundsCore sc;
    auto& core = sc.core();
    auto p = sc.sounds / "rec.wav";
    fs::path tmp = p.string() + ".tmp";
    auto s = sine(8000, 300, 8000);
    std::string err;
    {
        auto w = core.create_media(p, Format::none, err);
        REQUIRE_MESSAGE(w, err);
        for (std::size_t i = 0; i < s.size(); i += 160) w->write(slin_frame(Format::slin8, s.data() + i, 160));
        CHECK(fs::exists(tmp));
        CHECK_FALSE(fs::exists(p));
    }  // destroyed without commit: a crash-free abort
    CHECK_FALSE(fs::exists(tmp));
    CHECK_FALSE(fs::exists(p));

    {
        auto w = core.create_media(p, Format::none, err);
        REQUIRE(w);
        for (std::size_t i = 0; i < s.size(); i += 160) w->write(slin_frame(Format::slin8, s.data() + i, 160));
        CHECK(w->samples() == 8000);
        w->abort();
        CHECK_FALSE(fs::exists(tmp));
        CHECK_FALSE(w->commit(err));  // nothing left to commit
    }
    CHECK_FALSE(fs::exists(p));

    write_slin_file(core, p, Format::slin8, s);
    CHECK_FALSE(fs::exists(tmp));
    auto r = core.open_sound(p.string(), "en", Format::none, err);
    REQUIRE(r);
    CHECK(r->length() == std::chrono::milliseconds(1000));

    // Relative names go to the spool directory.
    auto w = core.create_media("relative.ulaw", Format::ulaw, err);
    REQUIRE_MESSAGE(w, err);
    CHECK(w->path() == core.paths().spool_dir / "relative.ulaw");
    REQUIRE(w->commit(err));
    CHECK(fs::exists(core.paths().spool_dir / "relative.ulaw"));
}

TEST_CASE("file formats: disk and name errors are reported, never crash") {
    SoundsCore sc;
    auto& core = sc.core();
    std::string err;
    // A folder that cannot hold files (its "parent" is a regular file).
    std::ofstream(sc.sounds / "plainfile") << "x";
    CHECK_FALSE(core.create_media(sc.sounds / "plainfile" / "x.wav", Format::none, err));
    CHECK(err.find("plainfile") != std::string::npos);
    // A read-only folder (root ignores modes; /proc refuses everyone).
    auto ro = sc.sounds / "ro";
    fs::create_directories(ro);
    ::chmod(ro.c_str(), 0555);
    auto w = core.create_media(ro / "x.wav", Format::none, err);
    if (::geteuid() != 0) CHECK_FALSE(w);
    w.reset();
    CHECK_FALSE(core.create_media("/proc/tandem-cannot-write.wav", Format::none, err));
    CHECK_FALSE(err.empty());
    ::chmod(ro.c_str(), 0755);
    CHECK_FALSE(core.create_media(sc.sounds / "noext", Format::none, err));
    CHECK_FALSE(core.create_media(sc.sounds / "x.unknown", Format::none, err));
    CHECK_FALSE(core.create_media(sc.sounds / "x.wav", Format::g729, err));
    // Garbage under a WAV name.
    std::ofstream(sc.sounds / "en" / "junk.wav") << "not a wav file at all";
    CHECK_FALSE(core.open_sound("junk", "en", Format::slin8, err));
    CHECK_FALSE(err.empty());
}

TEST_CASE("file formats: variant choice by translation cost, language fallback fr -> en") {
    SoundsCore sc;
    auto& core = sc.core();
    fs::create_directories(sc.sounds / "en");
    fs::create_directories(sc.sounds / "fr");
    auto s8 = sine(8000, 440, 4000), s16 = sine(16000, 440, 8000);
    write_slin_file(core, sc.sounds / "en" / "hello.wav", Format::slin16, s16);
    {
        std::string err;
        auto w = core.create_media(sc.sounds / "en" / "hello.ulaw", Format::ulaw, err);
        REQUIRE(w);
        std::vector<std::uint8_t> b(160, 0xff);
        for (int i = 0; i < 25; ++i) w->write(voice(Format::ulaw, b, 160));
        REQUIRE(w->commit(err));
    }
    write_slin_file(core, sc.sounds / "fr" / "bonjour.wav", Format::slin8, s8);
    write_slin_file(core, sc.sounds / "top.sln", Format::slin8, s8);

    std::string err;
    auto r = core.open_sound("hello", "en", Format::ulaw, err);
    REQUIRE_MESSAGE(r, err);
    CHECK(r->path().filename() == "hello.ulaw");
    r = core.open_sound("hello", "en", Format::slin16, err);
    REQUIRE(r);
    CHECK(r->path().filename() == "hello.wav");
    CHECK(r->format() == Format::slin16);
    // French asked, only English has it.
    r = core.open_sound("hello", "fr", Format::ulaw, err);
    REQUIRE(r);
    CHECK(r->path() == sc.sounds / "en" / "hello.ulaw");
    r = core.open_sound("bonjour", "fr", Format::slin8, err);
    REQUIRE(r);
    CHECK(r->path() == sc.sounds / "fr" / "bonjour.wav");
    // Last resort: the top of the sounds folder.
    r = core.open_sound("top", "it", Format::slin8, err);
    REQUIRE(r);
    CHECK(r->path() == sc.sounds / "top.sln");
    // An explicit extension takes that file only.
    r = core.open_sound("hello.wav", "en", Format::ulaw, err);
    REQUIRE(r);
    CHECK(r->format() == Format::slin16);
    // Missing: the error names every place searched.
    r = core.open_sound("nothing-here", "fr", Format::slin8, err);
    CHECK_FALSE(r);
    CHECK(err.find((sc.sounds / "fr" / "nothing-here").string()) != std::string::npos);
    CHECK(err.find((sc.sounds / "en" / "nothing-here").string()) != std::string::npos);
    CHECK_FALSE(core.open_sound("", "en", Format::slin8, err));
    // The module is pinned while a reader is open.
    CHECK(core.file_formats().find("wav"));
}
