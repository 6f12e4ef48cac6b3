// codec_g722: G.722 at 64 kbit/s to and from slin16, by SpanDSP.
//
// G.722 codes 16 kHz audio as one octet per two samples (sub-band ADPCM), so
// the encoder only has to hold back an odd trailing sample. Frame::samples
// counts 16 kHz samples; that RTP counts G.722 at 8000 Hz (RFC 3551) is the
// channel driver's business.
#include <tandem/media.hpp>
#include <tandem/module.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

// SpanDSP last: its headers need <stdint.h> and telephony.h before them, and
// in C++ telephony.h defines lrint() and lrintf() as macros, which would break
// any standard header included after it.
#include <stdint.h>
#include <spandsp/telephony.h>
#include <spandsp/g722.h>
#undef lrint
#undef lrintf

namespace {

using namespace tandem;

constexpr int bit_rate = 64000;
// Longest packet accepted: 300 ms at 16 kHz.
constexpr std::size_t max_samples = 4800;
constexpr std::size_t max_bytes = max_samples / 2;

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

class G722Encoder final : public Translator {
public:
    bool init() {
        state_.reset(g722_encode_init(nullptr, bit_rate, 0));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        const auto bytes = in.payload();
        if (bytes.size() % 2 != 0 || pending_ + bytes.size() / 2 > pcm_.size()) return false;
        std::memcpy(pcm_.data() + pending_, bytes.data(), bytes.size());
        const std::size_t total = pending_ + bytes.size() / 2;
        const std::size_t whole = total & ~std::size_t{1};  // one octet codes two samples
        const int produced = whole ? g722_encode(state_.get(), code_.data(), pcm_.data(), static_cast<int>(whole)) : 0;
        pending_ = total - whole;
        if (pending_) pcm_[0] = pcm_[whole];
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::g722);
        out.samples = static_cast<std::uint32_t>(whole);
        out.set_payload(std::span<const std::uint8_t>(code_.data(), static_cast<std::size_t>(produced)));
        return true;
    }

private:
    std::unique_ptr<g722_encode_state_t, SpanFree<g722_encode_free>> state_;
    std::size_t pending_ = 0;
    std::array<std::int16_t, max_samples + 1> pcm_{};
    std::array<std::uint8_t, max_bytes + 1> code_{};
};

class G722Decoder final : public Translator {
public:
    bool init() {
        state_.reset(g722_decode_init(nullptr, bit_rate, 0));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        // Every octet is a valid G.722 code word: only the size can be wrong.
        const auto code = in.payload();
        if (code.size() > max_bytes) return false;
        const int n =
            code.empty() ? 0 : g722_decode(state_.get(), pcm_.data(), code.data(), static_cast<int>(code.size()));
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin16);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(bytes_of(pcm_.data(), static_cast<std::size_t>(n)));
        return true;
    }

private:
    std::unique_ptr<g722_decode_state_t, SpanFree<g722_decode_free>> state_;
    std::array<std::int16_t, max_samples> pcm_{};
};

template <class T>
std::unique_ptr<Translator> make(std::string_view options) {
    if (!options.empty()) return nullptr;  // G.722 here takes no options
    auto t = std::make_unique<T>();
    if (!t->init()) return nullptr;
    return t;
}

class G722Module final : public Module {
public:
    void load(Host& host) override {
        encoder_ =
            host.add(TranslatorInfo{Format::slin16, Format::g722, "G.722 encoder, 64 kbit/s", &make<G722Encoder>});
        decoder_ =
            host.add(TranslatorInfo{Format::g722, Format::slin16, "G.722 decoder, 64 kbit/s", &make<G722Decoder>});
    }

private:
    Registration encoder_;
    Registration decoder_;
};

}  // namespace

TANDEM_MODULE(G722Module)
