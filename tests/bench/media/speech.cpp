#include "speech.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>

namespace tandem::bench {

namespace {

constexpr double pi = std::numbers::pi;

// Phrases of this length, separated by pauses; syllables inside them.
constexpr double phrase_s = 2.4;
constexpr double pause_s = 0.35;
constexpr double syllable_s = 0.22;

// Formant frequencies and bandwidths (Hz) of five vowels, an adult male
// speaker (after Peterson and Barney's averages, rounded).
struct Vowel {
    double f[4];
    double bw[4];
};
constexpr Vowel vowels[] = {
    {{730, 1090, 2440, 3400}, {90, 110, 140, 200}},  // /a/
    {{270, 2290, 3010, 3700}, {60, 100, 140, 200}},  // /i/
    {{300, 870, 2240, 3300}, {60, 90, 140, 200}},    // /u/
    {{530, 1840, 2480, 3500}, {70, 100, 140, 200}},  // /e/
    {{570, 840, 2410, 3400}, {80, 100, 140, 200}},   // /o/
};
constexpr std::size_t vowel_count = sizeof(vowels) / sizeof(vowels[0]);

// A second-order resonator with unity gain at DC, retuned as the formant
// moves; unity DC gain keeps the cascade's level steady while it does.
struct Resonator {
    double a1 = 0, a2 = 0, y1 = 0, y2 = 0;
    void tune(double freq, double bandwidth, double fs) {
        double r = std::exp(-pi * bandwidth / fs);
        a1 = 2 * r * std::cos(2 * pi * freq / fs);
        a2 = -r * r;
    }
    double step(double x) {
        double y = (1 - a1 - a2) * x + a1 * y1 + a2 * y2;
        y2 = y1;
        y1 = y;
        return y;
    }
};

// Uniform noise in [-1, 1) from a linear congruential generator: the same
// on every machine and every run.
struct Noise {
    std::uint32_t state = 0x2545f491u;
    double next() {
        state = state * 1664525u + 1013904223u;
        return static_cast<double>(state >> 8) / static_cast<double>(1u << 23) - 1.0;
    }
};

double rms(const std::vector<double>& v, const std::vector<bool>& active) {
    double sum = 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (active[i]) sum += v[i] * v[i], ++n;
    return n ? std::sqrt(sum / static_cast<double>(n)) : 0.0;
}

}  // namespace

std::vector<std::int16_t> speech_signal(std::uint32_t rate, double seconds) {
    const double fs = rate;
    const auto n = static_cast<std::size_t>(fs * seconds);
    std::vector<double> voiced(n, 0.0), unvoiced(n, 0.0);
    std::vector<bool> speaking(n, false);

    Resonator formant[4];
    Noise noise;
    // Glottal flow: a pulse train through two poles at 100 Hz (-12 dB per
    // octave above), then lip radiation (+6 dB per octave, a difference).
    const double glottal_pole = std::exp(-2 * pi * 100 / fs);
    double phase = 0, g1 = 0, g2 = 0, g2_prev = 0, hiss_prev = 0;

    for (std::size_t i = 0; i < n; ++i) {
        const double t = static_cast<double>(i) / fs;
        const double in_cycle = std::fmod(t, phrase_s + pause_s);
        const auto phrase = static_cast<std::size_t>(t / (phrase_s + pause_s));
        const bool talk = in_cycle < phrase_s;
        speaking[i] = talk;

        // Which syllable, how far into it, and the vowel it glides to.
        const auto k = static_cast<std::size_t>(in_cycle / syllable_s);
        const double within = std::fmod(in_cycle, syllable_s) / syllable_s;
        const Vowel& from = vowels[(k * 3 + phrase) % vowel_count];
        const Vowel& to = vowels[(k * 3 + 3 + phrase) % vowel_count];
        double w = std::clamp((within - 0.7) / 0.3, 0.0, 1.0);
        w = w * w * (3 - 2 * w);  // smooth transition over the last 30 %
        for (int f = 0; f < 4; ++f) {
            double freq = from.f[f] + w * (to.f[f] - from.f[f]);
            double bw = from.bw[f] + w * (to.bw[f] - from.bw[f]);
            if (freq < 0.45 * fs) formant[f].tune(freq, bw, fs);
        }

        // Pitch: declines over the phrase (135 to 100 Hz), with a slight
        // vibrato; every third syllable opens with a fricative.
        const double f0 = 135.0 - 35.0 * (in_cycle / phrase_s) + 3.0 * std::sin(2 * pi * 5.5 * t);
        const bool fricative = talk && k % 3 == 1 && within < 0.25;
        const bool voicing = talk && !fricative;

        phase += f0 / fs;
        double pulse = 0;
        if (phase >= 1.0) {
            phase -= 1.0;
            pulse = 1.0;
        }
        g1 = pulse + glottal_pole * g1;
        g2 = g1 + glottal_pole * g2;
        double source = g2 - g2_prev;
        g2_prev = g2;

        // Syllabic envelope: rises and falls within each syllable.
        double envelope = voicing ? std::pow(std::sin(pi * within), 0.6) : 0.0;
        double x = source * envelope;
        // An untuned resonator (a formant above the band) passes x unchanged.
        for (auto& r : formant) x = r.step(x);
        voiced[i] = x;

        // Fricatives: white noise tilted towards the top of the band.
        double white = noise.next();
        double hiss = white - 0.7 * hiss_prev;
        hiss_prev = white;
        unvoiced[i] = fricative ? hiss * std::sin(pi * within / 0.25) : 0.0;
    }

    // Levels: voiced speech at -20 dBFS RMS over the phrases, fricatives
    // 10 dB below it, background noise at -60 dBFS everywhere.
    const double full_scale = 32767.0;
    const double voiced_gain = full_scale * 0.1 / std::max(rms(voiced, speaking), 1e-12);
    const double unvoiced_gain = full_scale * 0.0316 / std::max(rms(unvoiced, speaking), 1e-12);
    std::vector<std::int16_t> out(n);
    for (std::size_t i = 0; i < n; ++i) {
        double s = voiced_gain * voiced[i] + unvoiced_gain * unvoiced[i] + full_scale * 0.001 * noise.next();
        out[i] = static_cast<std::int16_t>(std::lround(std::clamp(s, -32767.0, 32767.0)));
    }
    return out;
}

}  // namespace tandem::bench
