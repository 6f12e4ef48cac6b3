// The codec modules for G.711 (written here), G.722, G.726, GSM 06.10, LPC-10
// and DVI4 ADPCM (SpanDSP), exercised through the translators a real core
// loads from the build's module directory.
//
// Waveform codecs are judged by signal-to-noise ratio at the best alignment
// (each delays the signal by a few samples); for the parametric ones (GSM,
// LPC-10) SNR says little, so they are judged by output level, by keeping a
// vowel's strongest frequency and by keeping its pitch. Each bound is argued
// next to its check. Run with -s to see the measured figures.
#include "core_fixture.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numbers>
#include <random>
#include <string>
#include <vector>

// SpanDSP's own G.711 (inline functions in its header) serves as an
// independent reference for the tables codec_g711 builds. Its telephony.h
// defines lrint()/lrintf() as macros in C++, so it comes last and they go.
#if __has_include(<spandsp/g711.h>)
#include <stdint.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#undef lrint
#undef lrintf
#define TANDEM_HAVE_SPANDSP_G711 1
#endif

using namespace tandem;

namespace {

using Samples = std::vector<std::int16_t>;
using Bytes = std::vector<std::uint8_t>;

// --- signals ----------------------------------------------------------------

// A tone at `dbfs` (peak relative to full scale). 1020 Hz rather than 1000:
// at 8 kHz a 1000 Hz tone has only eight distinct phases, so its quantisation
// error is a few repeating values rather than noise. 1020 Hz, the ITU-T
// reference test frequency (O.6), is chosen to avoid exactly that.
Samples tone(double hz, double dbfs, unsigned rate, std::size_t n) {
    const double peak = 32767.0 * std::pow(10.0, dbfs / 20.0);
    Samples s(n);
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<std::int16_t>(std::lround(peak * std::sin(2 * std::numbers::pi * hz * double(i) / rate)));
    return s;
}

// A sung vowel by the source-filter model: a Rosenberg glottal pulse train at
// `f0` (opening over 40% of the period, closing over 16%), lip radiation as a
// first difference, then three formant resonators {frequency, bandwidth}.
// Scaled to -20 dBFS RMS, a usual speech level. Deterministic.
Samples vowel_with(unsigned rate, std::size_t n, double f0, const double (&formants)[3][2]) {
    std::vector<double> x(n);
    const double period = rate / f0;
    double previous = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double phase = std::fmod(double(i), period) / period;
        double g = 0;
        if (phase < 0.40)
            g = 0.5 * (1 - std::cos(std::numbers::pi * phase / 0.40));
        else if (phase < 0.56)
            g = std::cos(std::numbers::pi / 2 * (phase - 0.40) / 0.16);
        x[i] = g - previous;
        previous = g;
    }
    for (auto& [f, bw] : formants) {
        const double r = std::exp(-std::numbers::pi * bw / rate);
        const double c1 = 2 * r * std::cos(2 * std::numbers::pi * f / rate), c2 = -r * r;
        double y1 = 0, y2 = 0;
        for (auto& v : x) {
            const double y = v + c1 * y1 + c2 * y2;
            y2 = y1;
            y1 = y;
            v = y;
        }
    }
    double energy = 0;
    for (double v : x) energy += v * v;
    const double gain = 32767.0 * std::pow(10.0, -20.0 / 20.0) / std::sqrt(energy / double(n));
    Samples s(n);
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<std::int16_t>(std::lround(x[i] * gain));
    return s;
}

// Peterson and Barney's adult male /a/, sung at 120 Hz.
Samples vowel(unsigned rate, std::size_t n, double f0 = 120.0) {
    const double formants[3][2] = {{730, 90}, {1090, 110}, {2440, 170}};
    return vowel_with(rate, n, f0, formants);
}

// --- measures -----------------------------------------------------------------

double rms(const Samples& s, std::size_t from, std::size_t to) {
    double e = 0;
    for (std::size_t i = from; i < to; ++i) e += double(s[i]) * s[i];
    return std::sqrt(e / double(to - from));
}

double db(double ratio) {
    return 20 * std::log10(ratio);
}

// The best SNR over output delays 0..max_delay, ignoring the first `skip`
// samples while adaptive codecs settle. The same input span is compared at
// every delay, so the figures are comparable.
struct Fit {
    double snr_db = -1e9;
    int delay = 0;
};
Fit best_snr(const Samples& in, const Samples& out, std::size_t skip, int max_delay) {
    Fit best;
    const std::size_t end = std::min(in.size(), out.size()) - std::size_t(max_delay);
    for (int d = 0; d <= max_delay; ++d) {
        double signal = 0, noise = 0;
        for (std::size_t i = skip; i < end; ++i) {
            const double e = double(out[i + std::size_t(d)]) - in[i];
            signal += double(in[i]) * in[i];
            noise += e * e;
        }
        const double snr = 10 * std::log10(signal / std::max(noise, 1e-9));
        if (snr > best.snr_db) best = {snr, d};
    }
    return best;
}

// Magnitude of the Hann-windowed DFT of s[from, to) at `hz`.
double dft_magnitude(const Samples& s, std::size_t from, std::size_t to, double hz, unsigned rate) {
    double re = 0, im = 0;
    const double n = double(to - from);
    for (std::size_t i = from; i < to; ++i) {
        const double k = double(i - from);
        const double w = 0.5 - 0.5 * std::cos(2 * std::numbers::pi * k / n);
        const double a = 2 * std::numbers::pi * hz * k / rate;
        re += w * s[i] * std::cos(a);
        im -= w * s[i] * std::sin(a);
    }
    return std::hypot(re, im);
}

// The strongest frequency between 100 and 3400 Hz, on a 10 Hz grid, from
// the power averaged over 64 ms windows: a window that short has a main lobe
// (+-31 Hz) wider than the grid step, so no component falls between grid
// points, yet narrower than a 120 Hz harmonic spacing.
double dominant_hz(const Samples& s, std::size_t from, std::size_t to, unsigned rate) {
    constexpr std::size_t window = 512;
    double best = 0, best_hz = 0;
    for (double hz = 100; hz <= 3400; hz += 10) {
        double power = 0;
        for (std::size_t at = from; at + window <= to; at += window) {
            const double m = dft_magnitude(s, at, at + window, hz, rate);
            power += m * m;
        }
        if (power > best) best = power, best_hz = hz;
    }
    return best_hz;
}

// The pitch, from the normalised autocorrelation over lags of 2.5 to 20 ms:
// the shortest lag that peaks within 10% of the best one, so that twice the
// period (which can correlate a shade better when the period is not a whole
// number of samples) does not halve the answer.
double pitch_hz(const Samples& s, std::size_t from, std::size_t to, unsigned rate) {
    const std::size_t min_lag = rate / 400, max_lag = rate / 50;
    std::vector<double> r(max_lag + 2, 0.0);
    for (std::size_t lag = min_lag; lag <= max_lag + 1; ++lag) {
        double xy = 0, xx = 0, yy = 0;
        for (std::size_t i = from; i + lag < to; ++i) {
            xy += double(s[i]) * s[i + lag];
            xx += double(s[i]) * s[i];
            yy += double(s[i + lag]) * s[i + lag];
        }
        r[lag] = xy / std::sqrt(xx * yy + 1e-9);
    }
    const double best = *std::max_element(r.begin() + std::ptrdiff_t(min_lag), r.end());
    for (std::size_t lag = min_lag + 1; lag <= max_lag; ++lag)
        if (r[lag] >= 0.9 * best && r[lag] >= r[lag - 1] && r[lag] >= r[lag + 1]) return double(rate) / double(lag);
    return 0;
}

// --- translators --------------------------------------------------------------

Frame voice_frame(Format f, std::span<const std::uint8_t> payload, std::uint32_t samples) {
    Frame fr;
    fr.kind = FrameKind::voice;
    fr.subclass = static_cast<std::uint32_t>(f);
    fr.samples = samples;
    fr.set_payload(payload);
    return fr;
}

Frame slin_frame(Format f, const std::int16_t* pcm, std::size_t n) {
    return voice_frame(f, {reinterpret_cast<const std::uint8_t*>(pcm), n * 2}, static_cast<std::uint32_t>(n));
}

Samples samples_of(const Frame& f) {
    Samples s(f.payload().size() / 2);
    std::memcpy(s.data(), f.payload().data(), s.size() * 2);
    return s;
}

// One encoder and one decoder, with the leases that keep their module loaded.
struct Codec {
    Format slin;
    Format coded;
    Lease<TranslatorInfo> enc_info, dec_info;
    std::unique_ptr<Translator> enc, dec;
};

Codec open_codec(CoreImpl& core, Format slin, Format coded) {
    Codec c{slin, coded, {}, {}, nullptr, nullptr};
    c.enc_info = core.translators().find(translator_name(slin, coded));
    c.dec_info = core.translators().find(translator_name(coded, slin));
    REQUIRE_MESSAGE(c.enc_info, translator_name(slin, coded));
    REQUIRE_MESSAGE(c.dec_info, translator_name(coded, slin));
    c.enc = c.enc_info->create("");
    c.dec = c.dec_info->create("");
    REQUIRE(c.enc);
    REQUIRE(c.dec);
    return c;
}

struct Trip {
    Samples decoded;
    Bytes bitstream;
    std::size_t packets = 0;      // encoder calls that gave a packet
    std::size_t empty_calls = 0;  // encoder calls that gave nothing yet
};

// Encodes `input` in pieces of `chunk` samples, decodes each packet at once.
Trip round_trip(Codec& c, const Samples& input, std::size_t chunk) {
    Trip t;
    Frame coded, out;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        const std::size_t n = std::min(chunk, input.size() - at);
        REQUIRE(c.enc->convert(slin_frame(c.slin, input.data() + at, n), coded));
        if (coded.samples == 0) {
            CHECK(coded.payload().empty());
            ++t.empty_calls;
            continue;
        }
        ++t.packets;
        CHECK(coded.kind == FrameKind::voice);
        CHECK(coded.subclass == static_cast<std::uint32_t>(c.coded));
        t.bitstream.insert(t.bitstream.end(), coded.payload().begin(), coded.payload().end());
        REQUIRE(c.dec->convert(coded, out));
        CHECK(out.kind == FrameKind::voice);
        CHECK(out.subclass == static_cast<std::uint32_t>(c.slin));
        CHECK(out.samples == coded.samples);
        CHECK(out.payload().size() == std::size_t(out.samples) * 2);
        auto s = samples_of(out);
        t.decoded.insert(t.decoded.end(), s.begin(), s.end());
    }
    return t;
}

Trip round_trip(Format slin, Format coded, CoreImpl& core, const Samples& input, std::size_t chunk) {
    auto c = open_codec(core, slin, coded);
    return round_trip(c, input, chunk);
}

// SNR of a waveform codec on one signal, 20 ms packets, the first 100 ms skipped.
Fit waveform_snr(CoreImpl& core, Format slin, Format coded, const Samples& input) {
    const unsigned rate = format_info(slin).sample_rate;
    auto t = round_trip(slin, coded, core, input, rate / 50);
    REQUIRE(t.decoded.size() + rate / 50 > input.size());
    return best_snr(input, t.decoded, rate / 10, 40);
}

}  // namespace

TEST_CASE("codecs: G.711, G.722, G.726, GSM, LPC-10 and DVI4 register both directions") {
    test::TestCore t;
    const std::pair<Format, Format> pairs[] = {
        {Format::slin8, Format::ulaw},  {Format::slin8, Format::alaw}, {Format::slin16, Format::g722},
        {Format::slin8, Format::g726},  {Format::slin8, Format::gsm},  {Format::slin8, Format::lpc10},
        {Format::slin8, Format::adpcm},
    };
    for (auto [slin, coded] : pairs) {
        for (auto [from, to] : {std::pair{slin, coded}, std::pair{coded, slin}}) {
            auto name = translator_name(from, to);
            INFO(name);
            auto info = t.core->translators().find(name);
            REQUIRE(info);
            CHECK(info->from == from);
            CHECK(info->to == to);
            CHECK(!info->description.empty());
            CHECK(info->create(""));
            // None of these codecs takes options: any are a mistake, refused.
            CHECK_FALSE(info->create("bitrate=8000"));
        }
    }
}

TEST_CASE("codec_g711: the tables are G.711's") {
    test::TestCore t;
    auto ulaw = open_codec(*t.core, Format::slin8, Format::ulaw);
    auto alaw = open_codec(*t.core, Format::slin8, Format::alaw);

    // Every code, decoded by the module.
    Bytes codes(256);
    for (int i = 0; i < 256; ++i) codes[std::size_t(i)] = static_cast<std::uint8_t>(i);
    Frame out;
    REQUIRE(ulaw.dec->convert(voice_frame(Format::ulaw, codes, 256), out));
    const Samples ulaw_levels = samples_of(out);
    REQUIRE(alaw.dec->convert(voice_frame(Format::alaw, codes, 256), out));
    const Samples alaw_levels = samples_of(out);
    REQUIRE(ulaw_levels.size() == 256);
    REQUIRE(alaw_levels.size() == 256);

    // Anchors from G.711 tables 1 and 2 (at 16 bits: mu-law x4, A-law x8).
    CHECK(ulaw_levels[0xFF] == 0);
    CHECK(ulaw_levels[0x80] == 32124);
    CHECK(ulaw_levels[0x00] == -32124);
    CHECK(ulaw_levels[0xEF] == 4 * 33);  // top of segment 0 plus one step: 132
    CHECK(alaw_levels[0xD5] == 8);
    CHECK(alaw_levels[0x55] == -8);
    CHECK(alaw_levels[0xAA] == 32256);
    CHECK(alaw_levels[0x2A] == -32256);

    // Decoding then encoding gives the code back, for every code (mu-law's
    // "negative zero" 0x7F decodes to 0, which encodes as 0xFF).
    auto reencode = [](Codec& c, const Samples& levels) {
        Frame coded;
        REQUIRE(c.enc->convert(slin_frame(Format::slin8, levels.data(), levels.size()), coded));
        return Bytes(coded.payload().begin(), coded.payload().end());
    };
    auto u = reencode(ulaw, ulaw_levels);
    auto a = reencode(alaw, alaw_levels);
    for (int i = 0; i < 256; ++i) {
        CHECK(u[std::size_t(i)] == (i == 0x7F ? 0xFF : i));
        CHECK(a[std::size_t(i)] == i);
    }

#if defined(TANDEM_HAVE_SPANDSP_G711)
    // Every 16-bit sample against SpanDSP's independent implementation.
    // A-law: identical. mu-law: SpanDSP takes -x as the magnitude of a
    // negative sample where ITU-T G.191 (the reference we follow) takes the
    // one's complement -x-1, so our code for a negative x is SpanDSP's for
    // x+1; compared as decoded levels, which also equates the two zeros.
    Samples all(65536);
    for (int i = 0; i < 65536; ++i) all[std::size_t(i)] = static_cast<std::int16_t>(i - 32768);
    Frame coded;
    std::size_t mismatches = 0;
    for (std::size_t at = 0; at < all.size(); at += 2048) {
        REQUIRE(ulaw.enc->convert(slin_frame(Format::slin8, all.data() + at, 2048), coded));
        for (std::size_t i = 0; i < 2048; ++i) {
            const int x = all[at + i];
            mismatches += ulaw_to_linear(coded.payload()[i]) != ulaw_to_linear(linear_to_ulaw(x < 0 ? x + 1 : x));
        }
        REQUIRE(alaw.enc->convert(slin_frame(Format::slin8, all.data() + at, 2048), coded));
        for (std::size_t i = 0; i < 2048; ++i) mismatches += coded.payload()[i] != linear_to_alaw(all[at + i]);
    }
    for (int i = 0; i < 256; ++i) {
        mismatches += ulaw_levels[std::size_t(i)] != ulaw_to_linear(static_cast<std::uint8_t>(i));
        mismatches += alaw_levels[std::size_t(i)] != alaw_to_linear(static_cast<std::uint8_t>(i));
    }
    CHECK(mismatches == 0);
#endif
}

TEST_CASE("codec_g711: SNR of tones and of a vowel") {
    test::TestCore t;
    // Companding keeps the SNR nearly level over a wide range of levels: the
    // ideal logarithmic laws give about 38 dB for a sine, and the 8-bit
    // segmented laws ripple a dB or two below that as the level moves across
    // segments. Measured (mu-law / A-law): tone at -10 dBFS 37.1 / 36.5 dB,
    // at -30 dBFS 34.9 / 36.7, vowel at -20 dBFS RMS 36.6 / 38.1. The mu-law
    // dip at -30 dBFS is the law itself: the step noise of each segment,
    // weighted by the time a sine of that level spends in it, gives 35.4 dB.
    // Bounds: 35 dB, and 33 dB for the quiet tone.
    for (auto law : {Format::ulaw, Format::alaw}) {
        INFO(format_info(law).name);
        auto loud = waveform_snr(*t.core, Format::slin8, law, tone(1020, -10, 8000, 8000));
        auto quiet = waveform_snr(*t.core, Format::slin8, law, tone(1020, -30, 8000, 8000));
        auto speech = waveform_snr(*t.core, Format::slin8, law, vowel(8000, 8000));
        CHECK(loud.delay == 0);  // G.711 is memoryless
        CHECK(loud.snr_db > 35.0);
        CHECK(quiet.snr_db > 33.0);
        CHECK(speech.snr_db > 35.0);
    }
}

TEST_CASE("codec_g711: concealment continues the signal after a good frame, then fades") {
    test::TestCore t;
    for (auto law : {Format::ulaw, Format::alaw}) {
        for (bool speech : {false, true}) {
            INFO(format_info(law).name << (speech ? std::string(" vowel") : std::string(" tone")));
            auto c = open_codec(*t.core, Format::slin8, law);
            Frame out;
            CHECK_FALSE(c.dec->conceal(160, out));  // nothing heard yet: the caller plays silence

            const Samples input = speech ? vowel(8000, 1600) : tone(1020, -10, 8000, 1600);
            auto trip = round_trip(c, input, 160);
            REQUIRE(trip.decoded.size() == input.size());
            const double level = rms(input, 0, input.size());

            REQUIRE(c.dec->conceal(160, out));
            CHECK(out.kind == FrameKind::voice);
            CHECK(out.subclass == static_cast<std::uint32_t>(Format::slin8));
            CHECK(out.samples == 160);
            auto first = samples_of(out);
            REQUIRE(first.size() == 160);
            // The concealer repeats the last pitch period, fading linearly to
            // zero over 50 ms: the first 20 ms keep at least half the level.
            CHECK(rms(first, 0, first.size()) > 0.5 * level);

            // 40 more ms: by then the fade is over.
            Samples last;
            for (int i = 0; i < 4; ++i) {
                REQUIRE(c.dec->conceal(80, out));
                last = samples_of(out);
            }
            CHECK(rms(last, 0, last.size()) < 0.05 * level);
            CHECK_FALSE(c.dec->conceal(0, out));

            // Real packets resume.
            Frame coded;
            REQUIRE(c.enc->convert(slin_frame(Format::slin8, input.data(), 160), coded));
            REQUIRE(c.dec->convert(coded, out));
            CHECK(out.samples == 160);
        }
    }
}

TEST_CASE("codec_g722: SNR of tones and of a vowel at 16 kHz") {
    test::TestCore t;
    // 64 kbit/s G.722 splits the band with a QMF pair and codes 0-4 kHz with
    // 6-bit ADPCM (4-8 kHz with 2 bits). The tone and the vowel lie in the
    // lower band: 6 bits are worth some 30-35 dB from the quantiser alone, and
    // the backward-adaptive predictor (2 poles, 6 zeros) adds its gain on
    // signals this predictable. Measured: 47.6 dB at -10 dBFS, 43.7 at -30
    // dBFS, 46.9 for the vowel. Bounds 40, 38 and 40 dB: above the quantiser's
    // share, a few dB under the measurement. The QMF filters (24 taps each)
    // delay the signal: the best alignment is 22 samples.
    auto loud = waveform_snr(*t.core, Format::slin16, Format::g722, tone(1020, -10, 16000, 16000));
    auto quiet = waveform_snr(*t.core, Format::slin16, Format::g722, tone(1020, -30, 16000, 16000));
    auto speech = waveform_snr(*t.core, Format::slin16, Format::g722, vowel(16000, 16000));
    CHECK(loud.delay == 22);
    CHECK(loud.snr_db > 40.0);
    CHECK(quiet.snr_db > 38.0);
    CHECK(speech.snr_db > 40.0);
}

TEST_CASE("codec_g726: SNR, and RFC 3551 bit order") {
    test::TestCore t;
    // 32 kbit/s G.726: a 15-level adaptive quantiser, worth some 20 dB on its
    // own, behind a backward-adaptive predictor (2 poles, 6 zeros) that
    // predicts a steady tone almost perfectly and a vowel, with its pitch
    // pulses, less well. Measured: 36.2 dB at -10 dBFS, 34.8 at -30 dBFS,
    // 31.1 for the vowel. Bounds 32, 30 and 27 dB.
    auto loud = waveform_snr(*t.core, Format::slin8, Format::g726, tone(1020, -10, 8000, 8000));
    auto quiet = waveform_snr(*t.core, Format::slin8, Format::g726, tone(1020, -30, 8000, 8000));
    auto speech = waveform_snr(*t.core, Format::slin8, Format::g726, vowel(8000, 8000));
    CHECK(loud.snr_db > 32.0);
    CHECK(quiet.snr_db > 30.0);
    CHECK(speech.snr_db > 27.0);

    // A loud positive sample then a loud negative one code as 0x7 (largest
    // positive step) and 0x8 (largest negative). RFC 3551 section 4.5.4 puts
    // the first code word in the least significant bits of the octet: 0x87
    // (the AAL2 order would give 0x78).
    auto c = open_codec(*t.core, Format::slin8, Format::g726);
    const std::int16_t two[] = {16000, -16000};
    Frame coded;
    REQUIRE(c.enc->convert(slin_frame(Format::slin8, two, 2), coded));
    REQUIRE(coded.payload().size() == 1);
    CHECK(coded.payload()[0] == 0x87);
}

TEST_CASE("codec_adpcm: SNR, and DVI4 packets decode on their own") {
    test::TestCore t;
    // IMA/DVI ADPCM: 4-bit codes of the difference from the previous sample
    // (no real predictor: at 1 kHz that gains only ~2 dB) with a step size
    // adapted code by code; the 8 magnitude levels are worth about 20 dB.
    // Measured: 22.5 dB at -10 dBFS, 22.3 at -30 dBFS, 25.2 for the vowel
    // (its energy sits lower, where the previous sample predicts better).
    // Bounds 19, 19 and 21 dB: well under G.726, as expected.
    auto loud = waveform_snr(*t.core, Format::slin8, Format::adpcm, tone(1020, -10, 8000, 8000));
    auto quiet = waveform_snr(*t.core, Format::slin8, Format::adpcm, tone(1020, -30, 8000, 8000));
    auto speech = waveform_snr(*t.core, Format::slin8, Format::adpcm, vowel(8000, 8000));
    CHECK(loud.snr_db > 19.0);
    CHECK(quiet.snr_db > 19.0);
    CHECK(speech.snr_db > 21.0);

    // Each packet: a 4-octet header (predictor, step index, reserved) and two
    // samples per octet. The header carries the state, so a decoder that
    // missed everything before a packet decodes it exactly as one that did not.
    auto c = open_codec(*t.core, Format::slin8, Format::adpcm);
    const Samples input = vowel(8000, 1600);
    std::vector<Frame> packets;
    Samples continuous;
    for (std::size_t at = 0; at < input.size(); at += 160) {
        Frame coded, out;
        REQUIRE(c.enc->convert(slin_frame(Format::slin8, input.data() + at, 160), coded));
        REQUIRE(coded.payload().size() == 4 + 80);
        CHECK(coded.payload()[2] <= 88);
        CHECK(coded.payload()[3] == 0);
        REQUIRE(c.dec->convert(coded, out));
        auto s = samples_of(out);
        continuous.insert(continuous.end(), s.begin(), s.end());
        packets.push_back(coded);
    }
    auto late = c.dec_info->create("");
    Frame out;
    REQUIRE(late->convert(packets[7], out));
    CHECK(samples_of(out) == Samples(continuous.begin() + 7 * 160, continuous.begin() + 8 * 160));
}

TEST_CASE("codec_gsm and codec_lpc10: level, strongest frequency and pitch of vowels") {
    test::TestCore t;
    // /a/ (F1 730 Hz, close to F2 1090 Hz) and /i/ (F1 270 Hz, F2 far off at
    // 2290 Hz): the glottal source puts the strongest harmonic of each at the
    // one nearest F1, 6 x 120 = 720 Hz and 2 x 120 = 240 Hz.
    const double a_formants[3][2] = {{730, 90}, {1090, 110}, {2440, 170}};
    const double i_formants[3][2] = {{270, 60}, {2290, 100}, {3010, 170}};
    struct Vowel {
        std::string name;
        Samples samples;
        double peak_hz;
    };
    const Vowel vowels[] = {{"/a/", vowel_with(8000, 16000, 120, a_formants), 720},
                            {"/i/", vowel_with(8000, 16000, 120, i_formants), 240}};

    for (auto& v : vowels) {
        // All measures from 500 ms on: past LPC-10's ~130 ms delay and any onset.
        const double in_level = rms(v.samples, 4000, 15000);
        const double in_peak = dominant_hz(v.samples, 4000, 12000, 8000);
        const double in_pitch = pitch_hz(v.samples, 4000, 8000, 8000);
        CHECK(in_peak == v.peak_hz);
        CHECK(in_pitch == doctest::Approx(120).epsilon(0.02));

        for (auto coded : {Format::gsm, Format::lpc10}) {
            INFO(format_info(coded).name << " " << v.name);
            auto trip = round_trip(Format::slin8, coded, *t.core, v.samples, 160);
            REQUIRE(trip.decoded.size() >= 15000);
            const double level_db = db(rms(trip.decoded, 4000, 15000) / in_level);
            const double peak = dominant_hz(trip.decoded, 4000, 12000, 8000);
            const double pitch = pitch_hz(trip.decoded, 4000, 8000, 8000);
            if (coded == Format::gsm) {
                // GSM codes the prediction residual's waveform (RPE-LTP): the
                // level comes through within a fraction of a dB.
                CHECK(std::abs(level_db) < 2.0);
            } else {
                // LPC-10 resynthesises from a quantised RMS and, for voiced
                // frames, a fixed 25-sample pulse that has little energy at
                // the fundamental. Vowels with a strong fundamental, like
                // /i/, come out some 5 dB quieter (the fundamental itself
                // drops by ~19 dB); /a/ within 1 dB. Bound: 6 dB.
                CHECK(std::abs(level_db) < 6.0);
            }
            // Both keep the spectral envelope, so the strongest component
            // stays on the harmonic nearest F1: within half a harmonic spacing.
            CHECK(std::abs(peak - in_peak) < 60.0);
            // Both code the pitch: GSM as its long-term predictor lag, LPC-10
            // as one of 60 quantised lags (66 samples, 121 Hz, here). 3%.
            CHECK(pitch == doctest::Approx(in_pitch).epsilon(0.03));
        }
    }

    // A steady tone keeps its level through both. GSM also keeps its
    // frequency; LPC-10 cannot: it rebuilds any sound as pulses at a pitch it
    // guesses (a 1 kHz tone is no voice) through its all-pole envelope.
    const Samples beep = tone(1020, -10, 8000, 16000);
    for (auto coded : {Format::gsm, Format::lpc10}) {
        INFO(format_info(coded).name);
        auto trip = round_trip(Format::slin8, coded, *t.core, beep, 160);
        const double level_db = db(rms(trip.decoded, 4000, 15000) / rms(beep, 4000, 15000));
        CHECK(std::abs(level_db) < 3.0);
        if (coded == Format::gsm) CHECK(std::abs(dominant_hz(trip.decoded, 4000, 12000, 8000) - 1020) < 20.0);
    }
}

TEST_CASE("codecs: 10 ms and 30 ms input give the same stream as 20 ms") {
    test::TestCore t;
    struct Case {
        Format slin, coded;
        std::size_t frame;  // samples in one codec frame
    };
    const Case cases[] = {
        {Format::slin8, Format::ulaw, 1},  {Format::slin8, Format::alaw, 1},  {Format::slin16, Format::g722, 2},
        {Format::slin8, Format::g726, 2},  {Format::slin8, Format::gsm, 160}, {Format::slin8, Format::lpc10, 180},
        {Format::slin8, Format::adpcm, 2},
    };
    for (auto& k : cases) {
        INFO(format_info(k.coded).name);
        const unsigned rate = format_info(k.slin).sample_rate;
        const Samples input = vowel(rate, rate);  // 1 s
        auto twenty = round_trip(k.slin, k.coded, *t.core, input, rate / 50);
        const std::size_t whole = input.size() / k.frame * k.frame;
        CHECK(twenty.decoded.size() == whole);
        for (std::size_t ms : {10u, 30u}) {
            INFO(ms << " ms");
            auto other = round_trip(k.slin, k.coded, *t.core, input, rate * ms / 1000);
            // The same samples in whole codec frames: the same audio out...
            CHECK(other.decoded == twenty.decoded);
            // ...and the same bits, except DVI4, whose packets each open with a header.
            if (k.coded != Format::adpcm) CHECK(other.bitstream == twenty.bitstream);
        }
    }

    // GSM with 10 ms input: a packet every other call, nothing in between.
    auto gsm = round_trip(Format::slin8, Format::gsm, *t.core, vowel(8000, 1600), 80);
    CHECK(gsm.packets == 10);
    CHECK(gsm.empty_calls == 10);
    CHECK(gsm.bitstream.size() == 10 * 33);
    // LPC-10 with 20 ms input: nine calls give eight 7-octet frames.
    auto lpc = round_trip(Format::slin8, Format::lpc10, *t.core, vowel(8000, 1440), 160);
    CHECK(lpc.packets == 8);
    CHECK(lpc.empty_calls == 1);
    CHECK(lpc.bitstream.size() == 8 * 7);
}

TEST_CASE("codecs: corrupt, short and oversized payloads are refused or decoded, never crash") {
    test::TestCore t;
    const std::pair<Format, Format> decoders[] = {
        {Format::ulaw, Format::slin8},  {Format::alaw, Format::slin8}, {Format::g722, Format::slin16},
        {Format::g726, Format::slin8},  {Format::gsm, Format::slin8},  {Format::lpc10, Format::slin8},
        {Format::adpcm, Format::slin8},
    };
    std::mt19937 random(20240611);
    for (auto [coded, slin] : decoders) {
        INFO(format_info(coded).name);
        auto info = t.core->translators().find(translator_name(coded, slin));
        REQUIRE(info);
        auto dec = info->create("");
        REQUIRE(dec);
        std::vector<std::size_t> sizes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 32, 33, 34, 65, 66, 67, 100, 231, 4000, 70000};
        for (int i = 0; i < 300; ++i) sizes.push_back(random() % 400);
        std::size_t accepted = 0;
        for (auto size : sizes) {
            Bytes junk(size);
            for (auto& b : junk) b = static_cast<std::uint8_t>(random());
            Frame out;
            if (dec->convert(voice_frame(coded, junk, 0), out)) {
                ++accepted;
                CHECK(out.kind == FrameKind::voice);
                CHECK(out.subclass == static_cast<std::uint32_t>(slin));
                CHECK(out.payload().size() == std::size_t(out.samples) * 2);
            }
        }
        CHECK(accepted > 0);
        // Sizes that cannot be this codec.
        Frame out;
        auto refused = [&](std::size_t size, std::uint8_t fill = 0) {
            Bytes b(size, fill);
            return !dec->convert(voice_frame(coded, b, 0), out);
        };
        CHECK(refused(70000));  // beyond the 300 ms a packet may hold
        if (coded == Format::gsm) CHECK((refused(32) && refused(34) && !refused(33)));
        if (coded == Format::lpc10) CHECK((refused(6) && refused(8) && !refused(7)));
        if (coded == Format::adpcm) {
            CHECK((refused(1) && refused(3) && !refused(0) && !refused(4)));
            Bytes bad_step = {0x00, 0x00, 89, 0x00, 0x12, 0x34};
            CHECK_FALSE(dec->convert(voice_frame(coded, bad_step, 0), out));
        }
    }

    // Encoders take whole 16-bit samples, up to 300 ms at a time.
    for (auto [coded, slin] : decoders) {
        INFO(format_info(coded).name);
        auto info = t.core->translators().find(translator_name(slin, coded));
        REQUIRE(info);
        auto enc = info->create("");
        REQUIRE(enc);
        Frame out;
        Bytes odd(321, 0);
        CHECK_FALSE(enc->convert(voice_frame(slin, odd, 0), out));
        Bytes second(2 * format_info(slin).sample_rate, 0);
        CHECK_FALSE(enc->convert(voice_frame(slin, second, 0), out));
        Bytes ten_ms(2 * format_info(slin).sample_rate / 100, 0);
        CHECK(enc->convert(voice_frame(slin, ten_ms, 0), out));
    }
}
