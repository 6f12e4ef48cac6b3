// codec_speex: Speex (RFC 5574) narrowband (speex <-> slin8) and wideband
// (speex16 <-> slin16), with libspeex.
//
// Encoder options, `key=value;key=value`:
//   quality  0..10, default 8 (narrowband 15 kbit/s, libspeex's own default
//            mode; wideband 27.8 kbit/s)
//   vbr      0/1, default 0 (constant bit rate keeps packet sizes, and so
//            jitter-buffer and bandwidth planning, predictable)
//
// Packets: one packet per call with every complete 20 ms frame buffered (one
// frame for the usual 20 ms input, up to six), the frames concatenated in one
// bit stream and padded with the Speex terminator. Until 20 ms are buffered
// the encoder emits a frame with samples 0 and no payload. The decoder takes
// any number of frames in a packet (up to 120 ms).
#include <tandem/media.hpp>
#include <tandem/module.hpp>

#include <speex/speex.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace tandem;

constexpr std::size_t max_frames = 6;           // 120 ms in one packet
constexpr std::size_t max_frame_samples = 320;  // wideband: 20 ms at 16 kHz
constexpr std::size_t max_samples = max_frames * max_frame_samples;
// Bytes of bit stream: far above six frames at the highest wideband mode
// (under 110 bytes each), and what libspeex allocates for itself by default.
constexpr std::size_t bits_capacity = 2000;

struct Variant {
    Format coded;
    Format slin;
    int mode_id;  // SPEEX_MODEID_NB or SPEEX_MODEID_WB
};
constexpr Variant narrowband{Format::speex8, Format::slin8, SPEEX_MODEID_NB};
constexpr Variant wideband{Format::speex16, Format::slin16, SPEEX_MODEID_WB};

// --- options -------------------------------------------------------------------

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

bool parse_int(std::string_view text, int lo, int hi, int& out) {
    int v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
    out = v;
    return true;
}

struct EncoderSettings {
    int quality = 8;
    int vbr = 0;
};

// nullopt for an unknown key, a missing or malformed value, or one out of range.
std::optional<EncoderSettings> parse_options(std::string_view text) {
    EncoderSettings s;
    while (!text.empty()) {
        auto semi = text.find(';');
        auto item = trim(text.substr(0, semi));
        text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
        if (item.empty()) continue;
        auto eq = item.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        auto key = trim(item.substr(0, eq));
        auto value = trim(item.substr(eq + 1));
        bool ok = iequal(key, "quality") ? parse_int(value, 0, 10, s.quality)
                  : iequal(key, "vbr")   ? parse_int(value, 0, 1, s.vbr)
                                         : false;
        if (!ok) return std::nullopt;
    }
    return s;
}

// --- encoder -------------------------------------------------------------------

class SpeexEncoderStep final : public Translator {
public:
    static std::unique_ptr<Translator> create(const Variant& v, std::string_view options) {
        auto settings = parse_options(options);
        if (!settings) return nullptr;
        std::unique_ptr<SpeexEncoderStep> step(new (std::nothrow) SpeexEncoderStep(v));
        if (!step || !step->setup(*settings)) return nullptr;
        return step;
    }

    ~SpeexEncoderStep() override {
        if (state_) speex_encoder_destroy(state_);
    }

    bool convert(const Frame& in, Frame& out) override {
        auto bytes = in.payload();
        if (bytes.size() % sizeof(spx_int16_t) != 0) return false;
        const std::size_t frame = frame_;
        std::size_t n = bytes.size() / sizeof(spx_int16_t);
        // Up to 120 ms per frame. What is left after a call is under one codec
        // frame, so the buffer always has room for that much.
        if (n > max_frames * frame || n > pending_.size() - have_) return false;
        // Copied, not cast: the payload bytes may sit at any alignment in a Frame.
        std::memcpy(pending_.data() + have_, bytes.data(), bytes.size());
        have_ += n;

        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(variant_.coded);
        auto frames = std::min<std::size_t>(have_ / frame, max_frames);
        if (frames == 0) {
            out.samples = 0;
            out.set_payload({});
            return true;
        }
        speex_bits_reset(&bits_);
        // speex_encode_int may scribble on its input: fine, these samples are done.
        for (std::size_t i = 0; i < frames; ++i) speex_encode_int(state_, pending_.data() + i * frame, &bits_);
        speex_bits_insert_terminator(&bits_);
        int len = speex_bits_write(&bits_, packet_.data(), static_cast<int>(bits_capacity));
        auto used = frames * frame;
        std::copy(pending_.begin() + static_cast<std::ptrdiff_t>(used),
                  pending_.begin() + static_cast<std::ptrdiff_t>(have_), pending_.begin());
        have_ -= used;
        if (len <= 0) return false;
        out.samples = static_cast<std::uint32_t>(used);
        out.set_payload({reinterpret_cast<const std::uint8_t*>(packet_.data()), static_cast<std::size_t>(len)});
        return true;
    }

private:
    explicit SpeexEncoderStep(const Variant& v) : variant_(v) {}

    bool setup(const EncoderSettings& s) {
        state_ = speex_encoder_init(speex_lib_get_mode(variant_.mode_id));
        if (!state_) return false;
        int frame_size = 0;
        speex_encoder_ctl(state_, SPEEX_GET_FRAME_SIZE, &frame_size);
        if (frame_size <= 0 || static_cast<std::size_t>(frame_size) > max_frame_samples) return false;
        frame_ = static_cast<std::size_t>(frame_size);
        int quality = s.quality, vbr = s.vbr;
        speex_encoder_ctl(state_, SPEEX_SET_QUALITY, &quality);
        speex_encoder_ctl(state_, SPEEX_SET_VBR, &vbr);
        if (vbr) {
            float vbr_quality = static_cast<float>(s.quality);
            speex_encoder_ctl(state_, SPEEX_SET_VBR_QUALITY, &vbr_quality);
        }
        speex_bits_init_buffer(&bits_, bits_buffer_.data(), static_cast<int>(bits_capacity));
        return true;
    }

    Variant variant_;
    void* state_ = nullptr;
    std::size_t frame_ = 0;  // samples per 20 ms
    SpeexBits bits_{};
    std::array<char, bits_capacity> bits_buffer_{};
    std::array<char, bits_capacity> packet_{};
    // Room for 120 ms on top of a partial frame, so any frame up to 120 ms fits.
    std::array<spx_int16_t, max_samples + max_frame_samples> pending_{};
    std::size_t have_ = 0;
};

// --- decoder -------------------------------------------------------------------

class SpeexDecoderStep final : public Translator {
public:
    static std::unique_ptr<Translator> create(const Variant& v, std::string_view /*options: none for decoding*/) {
        std::unique_ptr<SpeexDecoderStep> step(new (std::nothrow) SpeexDecoderStep(v));
        if (!step) return nullptr;
        step->state_ = speex_decoder_init(speex_lib_get_mode(v.mode_id));
        if (!step->state_) return nullptr;
        int frame_size = 0;
        speex_decoder_ctl(step->state_, SPEEX_GET_FRAME_SIZE, &frame_size);
        if (frame_size <= 0 || static_cast<std::size_t>(frame_size) > max_frame_samples) return nullptr;
        step->frame_ = static_cast<std::size_t>(frame_size);
        speex_bits_init_buffer(&step->bits_, step->bits_buffer_.data(), static_cast<int>(bits_capacity));
        return step;
    }

    ~SpeexDecoderStep() override {
        if (state_) speex_decoder_destroy(state_);
    }

    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        if (p.empty() || p.size() > bits_capacity) return false;
        speex_bits_read_from(&bits_, reinterpret_cast<const char*>(p.data()), static_cast<int>(p.size()));
        std::size_t frames = 0;
        while (true) {
            int left = speex_bits_remaining(&bits_);
            // Fewer than 5 bits cannot hold a frame; 01111 is the terminator
            // (narrowband bit, then submode 15); a short run of zero bits is
            // padding from an encoder that did not write a terminator.
            if (left < 5 || speex_bits_peek_unsigned(&bits_, 5) == 0xF) break;
            if (left < 8 && speex_bits_peek_unsigned(&bits_, left) == 0) break;
            if (frames == max_frames) return false;  // more than 120 ms
            // -1: end of stream; -2: corrupt; bits remaining below 0: truncated.
            int rc = speex_decode_int(state_, &bits_, pcm_.data() + frames * frame_);
            if (rc == -1) break;
            if (rc != 0 || speex_bits_remaining(&bits_) < 0) return false;
            ++frames;
        }
        if (frames == 0) return false;
        emit(frames * frame_, out);
        return true;
    }

    // libspeex's concealment, a whole 20 ms frame at a time: `samples` is
    // rounded up to whole frames (at most six); `out.samples` says how many.
    bool conceal(std::uint32_t samples, Frame& out) override {
        if (samples == 0) return false;
        auto frames = std::min<std::size_t>((samples + frame_ - 1) / frame_, max_frames);
        for (std::size_t i = 0; i < frames; ++i) speex_decode_int(state_, nullptr, pcm_.data() + i * frame_);
        emit(frames * frame_, out);
        return true;
    }

private:
    explicit SpeexDecoderStep(const Variant& v) : variant_(v) {}

    void emit(std::size_t samples, Frame& out) const {
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(variant_.slin);
        out.samples = static_cast<std::uint32_t>(samples);
        out.set_payload({reinterpret_cast<const std::uint8_t*>(pcm_.data()), samples * sizeof(spx_int16_t)});
    }

    Variant variant_;
    void* state_ = nullptr;
    std::size_t frame_ = 0;  // samples per 20 ms
    SpeexBits bits_{};
    std::array<char, bits_capacity> bits_buffer_{};
    std::array<spx_int16_t, max_samples> pcm_{};
};

// --- module --------------------------------------------------------------------

class SpeexModule final : public Module {
public:
    void load(Host& host) override {
        for (const Variant* v : {&narrowband, &wideband}) {
            const char* band = v == &narrowband ? "narrowband" : "wideband";
            regs_.push_back(
                host.add(TranslatorInfo{v->slin, v->coded, std::string("Speex ") + band + " encoder (libspeex)",
                                        [v](std::string_view o) { return SpeexEncoderStep::create(*v, o); }}));
            regs_.push_back(
                host.add(TranslatorInfo{v->coded, v->slin, std::string("Speex ") + band + " decoder (libspeex)",
                                        [v](std::string_view o) { return SpeexDecoderStep::create(*v, o); }}));
        }
    }

private:
    std::vector<Registration> regs_;
};

}  // namespace

TANDEM_MODULE(SpeexModule)
