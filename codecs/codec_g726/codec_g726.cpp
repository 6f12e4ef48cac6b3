// codec_g726: G.726 at 32 kbit/s ("G726-32") to and from slin8, by SpanDSP.
//
// Bit order. RFC 3551 section 4.5.4 packs G726-32 code words into octets
// starting at the least significant bit: the first sample's 4-bit code word
// is the low nibble of the first octet, the second sample's the high nibble.
// In SpanDSP that is G726_PACKING_RIGHT (its encoder ORs each code word in
// above the bits already queued). G726_PACKING_LEFT puts the first code word
// in the high nibble: that is the ITU-T I.366.2 (AAL2) order, which SDP calls
// "AAL2-G726-32" and Asterisk "g726aal2" - not what Format::g726 carries.
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
#include <spandsp/g726.h>
#undef lrint
#undef lrintf

namespace {

using namespace tandem;

constexpr int bit_rate = 32000;
constexpr int packing = G726_PACKING_RIGHT;  // RFC 3551 order; see the top of the file
// Longest packet accepted: 300 ms at 8 kHz.
constexpr std::size_t max_samples = 2400;
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

class G726Encoder final : public Translator {
public:
    bool init() {
        state_.reset(g726_init(nullptr, bit_rate, G726_ENCODING_LINEAR, packing));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        const auto bytes = in.payload();
        if (bytes.size() % 2 != 0 || pending_ + bytes.size() / 2 > pcm_.size()) return false;
        std::memcpy(pcm_.data() + pending_, bytes.data(), bytes.size());
        const std::size_t total = pending_ + bytes.size() / 2;
        // Only whole octets leave: an odd sample waits for the next frame, so
        // every packet starts on an octet boundary as RFC 3551 requires.
        const std::size_t whole = total & ~std::size_t{1};
        const int produced = whole ? g726_encode(state_.get(), code_.data(), pcm_.data(), static_cast<int>(whole)) : 0;
        pending_ = total - whole;
        if (pending_) pcm_[0] = pcm_[whole];
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::g726);
        out.samples = static_cast<std::uint32_t>(whole);
        out.set_payload(std::span<const std::uint8_t>(code_.data(), static_cast<std::size_t>(produced)));
        return true;
    }

private:
    std::unique_ptr<g726_state_t, SpanFree<g726_free>> state_;
    std::size_t pending_ = 0;
    std::array<std::int16_t, max_samples + 1> pcm_{};
    std::array<std::uint8_t, max_bytes + 1> code_{};
};

class G726Decoder final : public Translator {
public:
    bool init() {
        state_.reset(g726_init(nullptr, bit_rate, G726_ENCODING_LINEAR, packing));
        return state_ != nullptr;
    }

    bool convert(const Frame& in, Frame& out) override {
        // Every nibble is a valid code word: only the size can be wrong.
        const auto code = in.payload();
        if (code.size() > max_bytes) return false;
        const int n =
            code.empty() ? 0 : g726_decode(state_.get(), pcm_.data(), code.data(), static_cast<int>(code.size()));
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(bytes_of(pcm_.data(), static_cast<std::size_t>(n)));
        return true;
    }

private:
    std::unique_ptr<g726_state_t, SpanFree<g726_free>> state_;
    std::array<std::int16_t, max_samples> pcm_{};
};

template <class T>
std::unique_ptr<Translator> make(std::string_view options) {
    if (!options.empty()) return nullptr;  // no options: the rate is fixed by the format
    auto t = std::make_unique<T>();
    if (!t->init()) return nullptr;
    return t;
}

class G726Module final : public Module {
public:
    void load(Host& host) override {
        encoder_ = host.add(TranslatorInfo{Format::slin8, Format::g726, "G.726 encoder, 32 kbit/s, RFC 3551 packing",
                                           &make<G726Encoder>});
        decoder_ = host.add(TranslatorInfo{Format::g726, Format::slin8, "G.726 decoder, 32 kbit/s, RFC 3551 packing",
                                           &make<G726Decoder>});
    }

private:
    Registration encoder_;
    Registration decoder_;
};

}  // namespace

TANDEM_MODULE(G726Module)
