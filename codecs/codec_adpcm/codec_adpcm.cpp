// codec_adpcm: IMA/DVI ADPCM as RTP carries it (DVI4, RFC 3551 section
// 4.5.1) to and from slin8, by SpanDSP.
//
// Each DVI4 packet opens with a 4-octet header holding the encoder's state at
// the packet's first sample (predicted value, big-endian 16 bits; step index;
// a reserved octet), then 4-bit codes, first sample in the high nibble. The
// header lets a decoder resynchronise after a lost packet. SpanDSP writes and
// reads the header itself when the chunk size is 0 (one packet per call).
// The encoder therefore emits one packet per convert() and holds back only an
// odd trailing sample, so packets stay whole octets.
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
#include <spandsp/ima_adpcm.h>
#undef lrint
#undef lrintf

namespace {

using namespace tandem;

constexpr std::size_t header_bytes = 4;
// The IMA step-size table has 89 entries; SpanDSP indexes it with the
// header's step index unchecked, so a larger one is a corrupt packet.
constexpr std::uint8_t max_step_index = 88;
// Longest packet accepted: 300 ms at 8 kHz.
constexpr std::size_t max_samples = 2400;
constexpr std::size_t max_bytes = header_bytes + max_samples / 2;

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

class AdpcmEncoder final : public Translator {
public:
    bool init() {
        state_.reset(ima_adpcm_init(nullptr, IMA_ADPCM_DVI4, 0));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        const auto bytes = in.payload();
        if (bytes.size() % 2 != 0 || pending_ + bytes.size() / 2 > pcm_.size()) return false;
        std::memcpy(pcm_.data() + pending_, bytes.data(), bytes.size());
        const std::size_t total = pending_ + bytes.size() / 2;
        const std::size_t whole = total & ~std::size_t{1};
        // No samples, no packet: a header alone would be a packet of nothing.
        const int produced =
            whole ? ima_adpcm_encode(state_.get(), code_.data(), pcm_.data(), static_cast<int>(whole)) : 0;
        pending_ = total - whole;
        if (pending_) pcm_[0] = pcm_[whole];
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::adpcm);
        out.samples = static_cast<std::uint32_t>(whole);
        out.set_payload(std::span<const std::uint8_t>(code_.data(), static_cast<std::size_t>(produced)));
        return true;
    }

private:
    std::unique_ptr<ima_adpcm_state_t, SpanFree<ima_adpcm_free>> state_;
    std::size_t pending_ = 0;
    std::array<std::int16_t, max_samples + 1> pcm_{};
    std::array<std::uint8_t, max_bytes + 1> code_{};
};

class AdpcmDecoder final : public Translator {
public:
    bool init() {
        state_.reset(ima_adpcm_init(nullptr, IMA_ADPCM_DVI4, 0));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        // SpanDSP reads the header without looking at the length and trusts
        // the step index: check both here. An empty frame is no packet at all
        // and decodes to nothing, as for the other codecs.
        const auto code = in.payload();
        if (!code.empty() && (code.size() < header_bytes || code[2] > max_step_index)) return false;
        if (code.size() > max_bytes) return false;
        const int n =
            code.empty() ? 0 : ima_adpcm_decode(state_.get(), pcm_.data(), code.data(), static_cast<int>(code.size()));
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(bytes_of(pcm_.data(), static_cast<std::size_t>(n)));
        return true;
    }

private:
    std::unique_ptr<ima_adpcm_state_t, SpanFree<ima_adpcm_free>> state_;
    std::array<std::int16_t, max_samples> pcm_{};
};

template <class T>
std::unique_ptr<Translator> make(std::string_view options) {
    if (!options.empty()) return nullptr;  // DVI4 has nothing to tune
    auto t = std::make_unique<T>();
    if (!t->init()) return nullptr;
    return t;
}

class AdpcmModule final : public Module {
public:
    void load(Host& host) override {
        encoder_ = host.add(
            TranslatorInfo{Format::slin8, Format::adpcm, "IMA/DVI4 ADPCM encoder, 32 kbit/s", &make<AdpcmEncoder>});
        decoder_ = host.add(
            TranslatorInfo{Format::adpcm, Format::slin8, "IMA/DVI4 ADPCM decoder, 32 kbit/s", &make<AdpcmDecoder>});
    }

private:
    Registration encoder_;
    Registration decoder_;
};

}  // namespace

TANDEM_MODULE(AdpcmModule)
