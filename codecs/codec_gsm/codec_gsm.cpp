// codec_gsm: GSM 06.10 full rate to and from slin8, by SpanDSP.
//
// A GSM frame is 160 samples (20 ms) coded into 33 octets in the RTP layout
// of RFC 3551 section 4.5.8 (SpanDSP's GSM0610_PACKING_VOIP: a 0xD signature
// nibble, then the 260 bits of parameters). The encoder keeps the samples
// that do not yet fill a frame, so 10 ms input yields a packet every other
// call and 30 ms input one or two frames per call.
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
#include <spandsp/gsm0610.h>
#undef lrint
#undef lrintf

namespace {

using namespace tandem;

constexpr std::size_t frame_samples = 160;
constexpr std::size_t frame_bytes = 33;
// Longest packet accepted: 300 ms, 15 frames.
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

class GsmEncoder final : public Translator {
public:
    bool init() {
        state_.reset(gsm0610_init(nullptr, GSM0610_PACKING_VOIP));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        const auto bytes = in.payload();
        if (bytes.size() % 2 != 0 || pending_ + bytes.size() / 2 > pcm_.size()) return false;
        std::memcpy(pcm_.data() + pending_, bytes.data(), bytes.size());
        const std::size_t total = pending_ + bytes.size() / 2;
        const std::size_t whole = total / frame_samples * frame_samples;
        const int produced =
            whole ? gsm0610_encode(state_.get(), code_.data(), pcm_.data(), static_cast<int>(whole)) : 0;
        pending_ = total - whole;
        std::memmove(pcm_.data(), pcm_.data() + whole, pending_ * sizeof(std::int16_t));
        if (produced < 0) return false;
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::gsm);
        out.samples = static_cast<std::uint32_t>(whole);
        out.set_payload(std::span<const std::uint8_t>(code_.data(), static_cast<std::size_t>(produced)));
        return true;
    }

private:
    std::unique_ptr<gsm0610_state_t, SpanFree<gsm0610_free>> state_;
    std::size_t pending_ = 0;  // samples held back, fewer than one frame
    std::array<std::int16_t, max_samples + frame_samples - 1> pcm_{};
    std::array<std::uint8_t, (max_frames + 1) * frame_bytes> code_{};
};

class GsmDecoder final : public Translator {
public:
    bool init() {
        state_.reset(gsm0610_init(nullptr, GSM0610_PACKING_VOIP));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        // Any 33 octets unpack to parameters in range; a size that is not a
        // whole number of frames cannot be GSM (and SpanDSP would read past it).
        const auto code = in.payload();
        if (code.size() % frame_bytes != 0 || code.size() / frame_bytes > max_frames) return false;
        const int n =
            code.empty() ? 0 : gsm0610_decode(state_.get(), pcm_.data(), code.data(), static_cast<int>(code.size()));
        if (n < 0) return false;
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(bytes_of(pcm_.data(), static_cast<std::size_t>(n)));
        return true;
    }

private:
    std::unique_ptr<gsm0610_state_t, SpanFree<gsm0610_free>> state_;
    std::array<std::int16_t, max_samples> pcm_{};
};

template <class T>
std::unique_ptr<Translator> make(std::string_view options) {
    if (!options.empty()) return nullptr;  // GSM full rate has nothing to tune
    auto t = std::make_unique<T>();
    if (!t->init()) return nullptr;
    return t;
}

class GsmModule final : public Module {
public:
    void load(Host& host) override {
        encoder_ =
            host.add(TranslatorInfo{Format::slin8, Format::gsm, "GSM 06.10 full-rate encoder", &make<GsmEncoder>});
        decoder_ =
            host.add(TranslatorInfo{Format::gsm, Format::slin8, "GSM 06.10 full-rate decoder", &make<GsmDecoder>});
    }

private:
    Registration encoder_;
    Registration decoder_;
};

}  // namespace

TANDEM_MODULE(GsmModule)
