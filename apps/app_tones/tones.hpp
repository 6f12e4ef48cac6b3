// Call-progress tones: Asterisk's tone-string syntax and a generator of
// signed linear frames. Pure code, no I/O, so tests check it directly.
//
//   "350+440"              two frequencies added, for ever
//   "480+620/500,0/500"    parts with durations in ms, repeated
//   "!950/330,!1400/330"   '!' parts play only the first time through
//   "425*33/500"           425 Hz amplitude-modulated by 33 Hz
//
// A Generator belongs to one channel's loop; next() fills a frame without
// allocating (the frame's inline buffer holds 20 ms at 8 kHz).
#pragma once

#include <tandem/frame.hpp>
#include <tandem/media.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace tandem::tones {

struct Part {
    double f1 = 0, f2 = 0;
    bool modulate = false;  // f1 * f2 rather than f1 + f2
    std::uint32_t ms = 0;   // 0: for ever
    bool once = false;
};

inline std::optional<double> to_double(std::string_view s) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0 || v > 20000) return std::nullopt;
    return v;
}

// nullopt when the string is not a tone list (then it may be a tone name).
inline std::optional<std::vector<Part>> parse(std::string_view text) {
    std::vector<Part> parts;
    while (!text.empty()) {
        auto comma = text.find(',');
        auto item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (item.empty()) continue;
        Part p;
        if (item.front() == '!') {
            p.once = true;
            item.remove_prefix(1);
        }
        if (auto slash = item.find('/'); slash != std::string_view::npos) {
            auto ms = to_double(item.substr(slash + 1));
            if (!ms) return std::nullopt;
            p.ms = static_cast<std::uint32_t>(*ms);
            item = item.substr(0, slash);
        }
        auto op = item.find_first_of("+*");
        auto f1 = to_double(item.substr(0, op));
        if (!f1) return std::nullopt;
        p.f1 = *f1;
        if (op != std::string_view::npos) {
            auto f2 = to_double(item.substr(op + 1));
            if (!f2) return std::nullopt;
            p.f2 = *f2;
            p.modulate = item[op] == '*';
        }
        parts.push_back(p);
    }
    if (parts.empty()) return std::nullopt;
    return parts;
}

// Produces 20 ms slin8 frames of a tone list; finished() once a list with
// nothing left to repeat has played.
class Generator {
public:
    static constexpr std::uint32_t rate = 8000;
    static constexpr std::uint32_t frame_samples = 160;

    Generator(std::vector<Part> parts, double amplitude) : parts_(std::move(parts)), amplitude_(amplitude) {}

    bool finished() const { return done_; }

    // Fills `out` with the next 20 ms; false when the tone has ended.
    bool next(Frame& out) {
        if (done_ || parts_.empty()) return false;
        std::int16_t buf[frame_samples];
        for (std::uint32_t i = 0; i < frame_samples; ++i) {
            if (done_) {
                buf[i] = 0;
                continue;
            }
            const Part& p = parts_[index_];
            double t = static_cast<double>(at_) / rate;
            double v = 0;
            if (p.modulate) {
                v = std::sin(2 * M_PI * p.f1 * t) * (1 + 0.9 * std::sin(2 * M_PI * p.f2 * t)) / 1.9;
            } else if (p.f1 > 0 || p.f2 > 0) {
                int n = (p.f1 > 0) + (p.f2 > 0);
                if (p.f1 > 0) v += std::sin(2 * M_PI * p.f1 * t);
                if (p.f2 > 0) v += std::sin(2 * M_PI * p.f2 * t);
                v /= n;
            }
            buf[i] = static_cast<std::int16_t>(std::lround(v * amplitude_));
            ++at_;
            if (p.ms && at_ >= static_cast<std::uint64_t>(p.ms) * rate / 1000) advance();
        }
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = frame_samples;
        out.timestamp = static_cast<std::uint32_t>(produced_);
        produced_ += frame_samples;
        out.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(buf), sizeof buf));
        return true;
    }

private:
    void advance() {
        at_ = 0;
        ++index_;
        if (index_ < parts_.size()) return;
        // Repeat the parts not marked '!', from the first of them.
        index_ = 0;
        while (index_ < parts_.size() && parts_[index_].once) ++index_;
        if (index_ == parts_.size()) done_ = true;
    }
    std::vector<Part> parts_;
    double amplitude_;
    std::size_t index_ = 0;
    std::uint64_t at_ = 0;  // samples into the current part
    std::uint64_t produced_ = 0;
    bool done_ = false;
};

// Power of one frequency in a block of samples (Goertzel), normalised so a
// full-scale sine at that frequency gives about 0.25 * amplitude^2.
inline double goertzel(const std::int16_t* s, std::size_t n, double hz, double rate) {
    double k = 2 * std::cos(2 * M_PI * hz / rate), s1 = 0, s2 = 0;
    for (std::size_t i = 0; i < n; ++i) {
        double s0 = s[i] + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    double power = s1 * s1 + s2 * s2 - k * s1 * s2;
    return power / (double(n) * double(n));
}

}  // namespace tandem::tones
