// codec_lpc10: LPC-10 (FIPS 137, the LPC-10e variant) at 2.4 kbit/s to and
// from slin8, by SpanDSP.
//
// An LPC-10 frame is 180 samples (22.5 ms) coded into 54 bits, carried in 7
// octets. Input rarely arrives in 22.5 ms pieces, so the encoder keeps the
// samples that do not fill a frame: with 20 ms input, eight of every nine
// calls give one frame and one gives none.
//
// Latency, honestly: LPC-10 is slow. Its analysis works on a window several
// frames long and smooths pitch and voicing across neighbouring frames, so a
// sound onset leaves SpanDSP's decoder 120-130 ms after it entered the encoder (measured with SpanDSP
// 0.0.6, frame-aligned input). The buffering here adds up to one more frame,
// 22.5 ms. Expect some 150 ms before network and jitter buffer: usable as a
// low-bandwidth fallback, plainly noticeable in conversation.
#include <tandem/media.hpp>
#include <tandem/module.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

// SpanDSP last: its headers need <stdint.h> and telephony.h before them, and
// in C++ telephony.h defines lrint() and lrintf() as macros, which would break
// any standard header included after it.
#include <stdint.h>
#include <spandsp/telephony.h>
#include <spandsp/lpc10.h>
#undef lrint
#undef lrintf

namespace {

using namespace tandem;

constexpr std::size_t frame_samples = LPC10_SAMPLES_PER_FRAME;  // 180
constexpr std::size_t frame_bytes = 7;                          // 54 bits, rounded up
// Longest packet accepted: 15 frames, 337.5 ms.
constexpr std::size_t max_frames = 15;
constexpr std::size_t max_samples = max_frames * frame_samples;

template <auto Free>
struct SpanFree {
    template <class T>
    void operator()(T* p) const noexcept {
        Free(p);
    }
};

std::span<const std::uint8_t> bytes_of(const std::int16_t* pcm, std::size_t n) {
    return {reinterpret_cast<const std::uint8_t*>(pcm), n * sizeof(std::int16_t)};
}

class Lpc10Encoder final : public Translator {
public:
    bool init() {
        state_.reset(lpc10_encode_init(nullptr, true));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        const auto bytes = in.payload();
        if (bytes.size() % 2 != 0 || pending_ + bytes.size() / 2 > pcm_.size()) return false;
        std::memcpy(pcm_.data() + pending_, bytes.data(), bytes.size());
        const std::size_t total = pending_ + bytes.size() / 2;
        const std::size_t whole = total / frame_samples * frame_samples;
        const int produced = whole ? lpc10_encode(state_.get(), code_.data(), pcm_.data(), static_cast<int>(whole)) : 0;
        pending_ = total - whole;
        std::memmove(pcm_.data(), pcm_.data() + whole, pending_ * sizeof(std::int16_t));
        if (produced < 0) return false;
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::lpc10);
        out.samples = static_cast<std::uint32_t>(whole);
        out.set_payload(std::span<const std::uint8_t>(code_.data(), static_cast<std::size_t>(produced)));
        return true;
    }

private:
    std::unique_ptr<lpc10_encode_state_t, SpanFree<lpc10_encode_free>> state_;
    std::size_t pending_ = 0;  // samples held back, fewer than one frame
    std::array<std::int16_t, max_samples + frame_samples - 1> pcm_{};
    std::array<std::uint8_t, (max_frames + 1) * frame_bytes> code_{};
};

class Lpc10Decoder final : public Translator {
public:
    bool init() {
        state_.reset(lpc10_decode_init(nullptr, true));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        // SpanDSP decodes whole 7-octet frames only; anything else is not LPC-10.
        const auto code = in.payload();
        if (code.size() % frame_bytes != 0 || code.size() / frame_bytes > max_frames) return false;
        const int n =
            code.empty() ? 0 : lpc10_decode(state_.get(), pcm_.data(), code.data(), static_cast<int>(code.size()));
        if (n < 0) return false;
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(bytes_of(pcm_.data(), static_cast<std::size_t>(n)));
        return true;
    }

private:
    std::unique_ptr<lpc10_decode_state_t, SpanFree<lpc10_decode_free>> state_;
    std::array<std::int16_t, max_samples> pcm_{};
};

template <class T>
std::unique_ptr<Translator> make(std::string_view options) {
    if (!options.empty()) return nullptr;  // LPC-10 has nothing to tune
    auto t = std::make_unique<T>();
    if (!t->init()) return nullptr;
    return t;
}

class Lpc10Module final : public Module {
public:
    void load(Host& host) override {
        encoder_ =
            host.add(TranslatorInfo{Format::slin8, Format::lpc10, "LPC-10 encoder, 2.4 kbit/s", &make<Lpc10Encoder>});
        decoder_ =
            host.add(TranslatorInfo{Format::lpc10, Format::slin8, "LPC-10 decoder, 2.4 kbit/s", &make<Lpc10Decoder>});
    }

private:
    Registration encoder_;
    Registration decoder_;
};

}  // namespace

TANDEM_MODULE(Lpc10Module)
