// codec_opus: Opus (RFC 6716) to and from 48 kHz signed linear, with libopus.
//
// The PBX's audio is mono, so the encoder always sends mono (a stereo-capable
// far end decodes it fine; RFC 7587 lets a sender choose). The encoder takes
// options named after the RFC 7587 fmtp parameters where one exists; the RTP
// layer derives them from what the far end asked to receive:
//
//   maxaveragebitrate  6000..510000 bit/s, default 32000
//   useinbandfec       0/1, default 1
//   usedtx             0/1, default 0
//   maxplaybackrate    8000..48000 Hz, default 48000 (limits the coded bandwidth)
//   stereo             0/1, accepted; we encode mono either way
//   cbr                0/1, default 0
//   complexity         0..10, default libopus's own (9 in 1.3)
//   packetloss         0..100 expected loss in percent, default 10 with FEC, else 0
//
// Why 32 kbit/s: Xiph's recommended range for fullband speech is 28-40 kbit/s
// and WebRTC starts mono Opus at 32 kbit/s; in-band FEC is paid for out of the
// same budget, which 24 kbit/s would leave thin. It is still half of G.711.
// Why packetloss 10 with FEC: libopus 1.3 adds redundancy (SILK LBRR) only
// when the expected loss is above zero, so useinbandfec=1 alone changes
// nothing; with speech it gives full-strength FEC from about 10% on (1-5%
// gave almost none in our measurements).
//
// Packets: the encoder emits one packet per call holding every complete 20 ms
// of buffered input (one 20 ms packet for the usual 20 ms frames, up to 120 ms
// for larger input); until 20 ms are buffered it emits a frame with samples 0
// and no payload. With usedtx=1 libopus returns 1-byte packets during silence
// (after 200 ms of it, with a refresh every 400 ms); they are emitted like any
// other packet and the RTP layer decides whether to send them.
#include <tandem/media.hpp>
#include <tandem/module.hpp>

#include <opus.h>

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

namespace {

using namespace tandem;

constexpr int sample_rate = 48000;
constexpr int block = 960;              // 20 ms at 48 kHz, the packet the encoder makes
constexpr int max_samples = 5760;       // 120 ms: the longest Opus packet
constexpr int plc_step = 120;           // 2.5 ms: concealment comes in multiples of this
constexpr int max_packet_bytes = 8000;  // 120 ms at 510 kbit/s is 7650 bytes

// --- options ---------------------------------------------------------------

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
    int bitrate = 32000;
    int fec = 1;
    int dtx = 0;
    int playback_rate = 48000;
    int stereo = 0;
    int cbr = 0;
    int complexity = -1;   // -1: libopus default
    int packet_loss = -1;  // -1: 10 with FEC, 0 without
};

// "key=value;key=value" (keys case-insensitive, blanks around tokens ignored);
// nullopt for an unknown key, a missing or malformed value, or one out of range.
std::optional<EncoderSettings> parse_options(std::string_view text) {
    EncoderSettings s;
    struct Known {
        std::string_view key;
        int EncoderSettings::*field;
        int lo, hi;
    };
    static constexpr Known known[] = {
        {"maxaveragebitrate", &EncoderSettings::bitrate, 6000, 510000},
        {"useinbandfec", &EncoderSettings::fec, 0, 1},
        {"usedtx", &EncoderSettings::dtx, 0, 1},
        {"maxplaybackrate", &EncoderSettings::playback_rate, 8000, 48000},
        {"stereo", &EncoderSettings::stereo, 0, 1},
        {"cbr", &EncoderSettings::cbr, 0, 1},
        {"complexity", &EncoderSettings::complexity, 0, 10},
        {"packetloss", &EncoderSettings::packet_loss, 0, 100},
    };
    while (!text.empty()) {
        auto semi = text.find(';');
        auto item = trim(text.substr(0, semi));
        text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
        if (item.empty()) continue;
        auto eq = item.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        auto key = trim(item.substr(0, eq));
        auto value = trim(item.substr(eq + 1));
        auto it = std::find_if(std::begin(known), std::end(known), [&](const Known& k) { return iequal(k.key, key); });
        if (it == std::end(known) || !parse_int(value, it->lo, it->hi, s.*(it->field))) return std::nullopt;
    }
    return s;
}

int bandwidth_for(int playback_rate) {
    if (playback_rate <= 8000) return OPUS_BANDWIDTH_NARROWBAND;
    if (playback_rate <= 12000) return OPUS_BANDWIDTH_MEDIUMBAND;
    if (playback_rate <= 16000) return OPUS_BANDWIDTH_WIDEBAND;
    if (playback_rate <= 24000) return OPUS_BANDWIDTH_SUPERWIDEBAND;
    return OPUS_BANDWIDTH_FULLBAND;
}

// Our own sample buffer, seen as the bytes of a slin payload (host order).
std::span<const std::uint8_t> as_bytes(const opus_int16* pcm, int samples) {
    return {reinterpret_cast<const std::uint8_t*>(pcm), static_cast<std::size_t>(samples) * sizeof(opus_int16)};
}

// --- encoder -----------------------------------------------------------------

class OpusEncoderStep final : public Translator {
public:
    static std::unique_ptr<Translator> create(std::string_view options) {
        auto settings = parse_options(options);
        if (!settings) return nullptr;
        std::unique_ptr<OpusEncoderStep> step(new (std::nothrow) OpusEncoderStep);
        if (!step || !step->setup(*settings)) return nullptr;
        return step;
    }

    ~OpusEncoderStep() override {
        if (enc_) opus_encoder_destroy(enc_);
    }

    bool convert(const Frame& in, Frame& out) override {
        auto bytes = in.payload();
        if (bytes.size() % sizeof(opus_int16) != 0) return false;
        std::size_t n = bytes.size() / sizeof(opus_int16);
        // Up to 120 ms per frame. What is left after a call is under one codec
        // frame, so the buffer always has room for that much.
        if (n > std::size_t{max_samples} || n > pending_.size() - have_) return false;
        // Copied, not cast: the payload bytes may sit at any alignment in a Frame.
        std::memcpy(pending_.data() + have_, bytes.data(), bytes.size());
        have_ += n;

        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::opus);
        int frame = static_cast<int>(std::min<std::size_t>(have_ / block, max_samples / block)) * block;
        if (frame == 0) {
            out.samples = 0;
            out.set_payload({});
            return true;
        }
        auto len = opus_encode(enc_, pending_.data(), frame, packet_.data(), max_packet_bytes);
        // The samples are consumed even when encoding failed, so one bad call
        // cannot wedge the stream.
        std::copy(pending_.begin() + frame, pending_.begin() + static_cast<std::ptrdiff_t>(have_), pending_.begin());
        have_ -= static_cast<std::size_t>(frame);
        if (len < 0) return false;
        out.samples = static_cast<std::uint32_t>(frame);
        out.set_payload({packet_.data(), static_cast<std::size_t>(len)});
        return true;
    }

private:
    OpusEncoderStep() = default;

    bool setup(const EncoderSettings& s) {
        int err = OPUS_OK;
        enc_ = opus_encoder_create(sample_rate, 1, OPUS_APPLICATION_VOIP, &err);
        if (!enc_ || err != OPUS_OK) return false;
        int loss = s.packet_loss >= 0 ? s.packet_loss : (s.fec ? 10 : 0);
        bool ok = opus_encoder_ctl(enc_, OPUS_SET_BITRATE(s.bitrate)) == OPUS_OK &&
                  opus_encoder_ctl(enc_, OPUS_SET_INBAND_FEC(s.fec)) == OPUS_OK &&
                  opus_encoder_ctl(enc_, OPUS_SET_DTX(s.dtx)) == OPUS_OK &&
                  opus_encoder_ctl(enc_, OPUS_SET_MAX_BANDWIDTH(bandwidth_for(s.playback_rate))) == OPUS_OK &&
                  opus_encoder_ctl(enc_, OPUS_SET_VBR(s.cbr ? 0 : 1)) == OPUS_OK &&
                  opus_encoder_ctl(enc_, OPUS_SET_PACKET_LOSS_PERC(loss)) == OPUS_OK;
        if (ok && s.complexity >= 0) ok = opus_encoder_ctl(enc_, OPUS_SET_COMPLEXITY(s.complexity)) == OPUS_OK;
        return ok;
    }

    OpusEncoder* enc_ = nullptr;
    // Input waiting for a whole 20 ms; room for a 120 ms frame on top of a
    // partial block, so any frame up to 120 ms fits.
    std::array<opus_int16, max_samples + block> pending_{};
    std::size_t have_ = 0;
    std::array<std::uint8_t, max_packet_bytes> packet_{};
};

// --- decoder -----------------------------------------------------------------

// Decodes to mono slin48 (a stereo packet is downmixed by libopus).
//
// 20 ms of slin48 is 1920 bytes, more than Frame's 640-byte inline buffer, so
// the output lands in the Frame's heap vector. set_payload keeps that vector's
// capacity, so a caller that reuses one output Frame (as a translation path
// does) allocates once, not per packet.
class OpusDecoderStep final : public Translator {
public:
    static std::unique_ptr<Translator> create(std::string_view /*options: none for decoding*/) {
        std::unique_ptr<OpusDecoderStep> step(new (std::nothrow) OpusDecoderStep);
        if (!step) return nullptr;
        int err = OPUS_OK;
        step->dec_ = opus_decoder_create(sample_rate, 1, &err);
        if (!step->dec_ || err != OPUS_OK) return nullptr;
        return step;
    }

    ~OpusDecoderStep() override {
        if (dec_) opus_decoder_destroy(dec_);
    }

    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        if (p.empty() || p.size() > max_packet_bytes) return false;
        auto len = static_cast<opus_int32>(p.size());
        int n = opus_packet_get_nb_samples(p.data(), len, sample_rate);
        if (n <= 0 || n > max_samples) return false;
        int got = opus_decode(dec_, p.data(), len, pcm_.data(), max_samples, 0);
        if (got < 0) return false;
        emit(got, out);
        return true;
    }

    // Packet-loss concealment (libopus PLC): the duration is rounded up to a
    // multiple of 2.5 ms, as libopus requires, and capped at 120 ms; `out.samples`
    // says how much was made.
    bool conceal(std::uint32_t samples, Frame& out) override {
        if (samples == 0) return false;
        auto n = std::min<std::uint32_t>((samples + plc_step - 1) / plc_step * plc_step, max_samples);
        int got = opus_decode(dec_, nullptr, 0, pcm_.data(), static_cast<int>(n), 0);
        if (got < 0) return false;
        emit(got, out);
        return true;
    }

    // In-band FEC: recovers a lost packet from the redundancy (SILK LBRR)
    // carried in the packet after it. The lost packet is assumed to have had
    // the same duration as `next` (libopus needs the exact duration to stay in
    // step). When `next` carries no FEC data libopus falls back to PLC, so
    // this always yields audio for a well-formed `next`.
    bool recover(const Frame& next, Frame& out) override {
        auto p = next.payload();
        if (p.empty() || p.size() > max_packet_bytes) return false;
        auto len = static_cast<opus_int32>(p.size());
        int n = opus_packet_get_nb_samples(p.data(), len, sample_rate);
        if (n <= 0 || n > max_samples) return false;
        int got = opus_decode(dec_, p.data(), len, pcm_.data(), n, 1);
        if (got < 0) return false;
        emit(got, out);
        return true;
    }

private:
    OpusDecoderStep() = default;

    void emit(int samples, Frame& out) const {
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin48);
        out.samples = static_cast<std::uint32_t>(samples);
        out.set_payload(as_bytes(pcm_.data(), samples));
    }

    OpusDecoder* dec_ = nullptr;
    std::array<opus_int16, max_samples> pcm_{};
};

// --- module ------------------------------------------------------------------

class OpusModule final : public Module {
public:
    void load(Host& host) override {
        std::string lib = opus_get_version_string();
        encoder_ = host.add(TranslatorInfo{Format::slin48, Format::opus, "Opus encoder (" + lib + ")",
                                           [](std::string_view o) { return OpusEncoderStep::create(o); }});
        decoder_ = host.add(TranslatorInfo{Format::opus, Format::slin48, "Opus decoder (" + lib + ")",
                                           [](std::string_view o) { return OpusDecoderStep::create(o); }});
    }

private:
    Registration encoder_, decoder_;
};

}  // namespace

TANDEM_MODULE(OpusModule)
