// codec_g729: G.729 Annex A (g729 <-> slin8), with bcg729.
//
// A G.729 frame is 10 ms: 80 samples in, 10 bytes out. The encoder emits one
// packet per call with every complete 10 ms frame buffered (two frames, 20
// bytes, for the usual 20 ms input; up to twelve), and a frame with samples 0
// and no payload while less than 10 ms is buffered. It runs without Annex B
// (no VAD/DTX), so it never makes SID frames; its only option is the RFC 3555
// fmtp `annexb=no`, which is accepted and changes nothing.
//
// The decoder follows RFC 3551: a packet is zero or more 10-byte frames
// followed by at most one 2-byte Annex B SID (comfort noise) frame, which it
// decodes to 10 ms of comfort noise. Any other length is rejected.
// Concealment uses the decoder's frame-erasure mode (G.729 section 4.4).
#include <tandem/media.hpp>
#include <tandem/module.hpp>

// The bcg729 headers declare C functions without extern "C" guards.
extern "C" {
#include <bcg729/decoder.h>
#include <bcg729/encoder.h>
}

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string_view>

namespace {

using namespace tandem;

constexpr std::size_t frame_samples = 80;  // 10 ms at 8 kHz
constexpr std::size_t frame_bytes = 10;
constexpr std::size_t sid_bytes = 2;
constexpr std::size_t max_frames = 12;  // 120 ms in one packet
constexpr std::size_t max_samples = max_frames * frame_samples;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
        if ((x >= 'A' && x <= 'Z' ? x + 32 : x) != (y >= 'A' && y <= 'Z' ? y + 32 : y)) return false;
    }
    return true;
}

// Only `annexb=no` (or nothing) is valid: this encoder cannot do Annex B.
bool valid_options(std::string_view text) {
    while (!text.empty()) {
        auto semi = text.find(';');
        auto item = trim(text.substr(0, semi));
        text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
        if (item.empty()) continue;
        auto eq = item.find('=');
        if (eq == std::string_view::npos) return false;
        if (!iequal(trim(item.substr(0, eq)), "annexb") || !iequal(trim(item.substr(eq + 1)), "no")) return false;
    }
    return true;
}

// --- encoder -------------------------------------------------------------------

class G729EncoderStep final : public Translator {
public:
    static std::unique_ptr<Translator> create(std::string_view options) {
        if (!valid_options(options)) return nullptr;
        std::unique_ptr<G729EncoderStep> step(new (std::nothrow) G729EncoderStep);
        if (!step) return nullptr;
        step->enc_ = initBcg729EncoderChannel(0);  // 0: no VAD/DTX
        if (!step->enc_) return nullptr;
        return step;
    }

    ~G729EncoderStep() override {
        if (enc_) closeBcg729EncoderChannel(enc_);
    }

    bool convert(const Frame& in, Frame& out) override {
        auto bytes = in.payload();
        if (bytes.size() % sizeof(std::int16_t) != 0) return false;
        std::size_t n = bytes.size() / sizeof(std::int16_t);
        // Up to 120 ms per frame. What is left after a call is under one codec
        // frame, so the buffer always has room for that much.
        if (n > max_samples || n > pending_.size() - have_) return false;
        // Copied, not cast: the payload bytes may sit at any alignment in a Frame.
        std::memcpy(pending_.data() + have_, bytes.data(), bytes.size());
        have_ += n;

        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::g729);
        auto frames = std::min(have_ / frame_samples, max_frames);
        std::size_t len = 0;
        for (std::size_t i = 0; i < frames; ++i) {
            std::uint8_t produced = 0;
            bcg729Encoder(enc_, pending_.data() + i * frame_samples, packet_.data() + len, &produced);
            len += produced;  // always 10 without VAD
        }
        auto used = frames * frame_samples;
        std::copy(pending_.begin() + static_cast<std::ptrdiff_t>(used),
                  pending_.begin() + static_cast<std::ptrdiff_t>(have_), pending_.begin());
        have_ -= used;
        out.samples = static_cast<std::uint32_t>(used);
        out.set_payload({packet_.data(), len});
        return true;
    }

private:
    G729EncoderStep() = default;

    bcg729EncoderChannelContextStruct* enc_ = nullptr;
    // Room for 120 ms on top of a partial frame, so any frame up to 120 ms fits.
    std::array<std::int16_t, max_samples + frame_samples> pending_{};
    std::size_t have_ = 0;
    std::array<std::uint8_t, max_frames * frame_bytes> packet_{};
};

// --- decoder -------------------------------------------------------------------

class G729DecoderStep final : public Translator {
public:
    static std::unique_ptr<Translator> create(std::string_view /*options: none for decoding*/) {
        std::unique_ptr<G729DecoderStep> step(new (std::nothrow) G729DecoderStep);
        if (!step) return nullptr;
        step->dec_ = initBcg729DecoderChannel();
        if (!step->dec_) return nullptr;
        return step;
    }

    ~G729DecoderStep() override {
        if (dec_) closeBcg729DecoderChannel(dec_);
    }

    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        std::size_t voice = p.size() / frame_bytes;
        std::size_t rest = p.size() % frame_bytes;
        if (p.empty() || (rest != 0 && rest != sid_bytes) || voice + (rest ? 1 : 0) > max_frames) return false;
        std::size_t frames = 0;
        for (; frames < voice; ++frames)
            bcg729Decoder(dec_, p.data() + frames * frame_bytes, frame_bytes, 0, 0, 0,
                          pcm_.data() + frames * frame_samples);
        if (rest) {
            bcg729Decoder(dec_, p.data() + voice * frame_bytes, sid_bytes, 0, 1, 0,
                          pcm_.data() + frames * frame_samples);
            ++frames;
        }
        emit(frames * frame_samples, out);
        return true;
    }

    // Frame erasure, 10 ms at a time: `samples` is rounded up to whole frames
    // (at most twelve); `out.samples` says how many. After a SID frame the
    // decoder goes on with comfort noise, as Annex B asks for untransmitted frames.
    bool conceal(std::uint32_t samples, Frame& out) override {
        if (samples == 0) return false;
        auto frames = std::min<std::size_t>((samples + frame_samples - 1) / frame_samples, max_frames);
        for (std::size_t i = 0; i < frames; ++i)
            bcg729Decoder(dec_, nullptr, 0, 1, 0, 0, pcm_.data() + i * frame_samples);
        emit(frames * frame_samples, out);
        return true;
    }

private:
    G729DecoderStep() = default;

    void emit(std::size_t samples, Frame& out) const {
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(samples);
        out.set_payload({reinterpret_cast<const std::uint8_t*>(pcm_.data()), samples * sizeof(std::int16_t)});
    }

    bcg729DecoderChannelContextStruct* dec_ = nullptr;
    std::array<std::int16_t, max_samples> pcm_{};
};

// --- module --------------------------------------------------------------------

class G729Module final : public Module {
public:
    void load(Host& host) override {
        encoder_ = host.add(TranslatorInfo{Format::slin8, Format::g729, "G.729A encoder (bcg729)",
                                           [](std::string_view o) { return G729EncoderStep::create(o); }});
        decoder_ = host.add(TranslatorInfo{Format::g729, Format::slin8, "G.729A decoder (bcg729)",
                                           [](std::string_view o) { return G729DecoderStep::create(o); }});
    }

private:
    Registration encoder_, decoder_;
};

}  // namespace

TANDEM_MODULE(G729Module)
