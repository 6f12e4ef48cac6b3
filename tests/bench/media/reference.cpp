#include "reference.hpp"

#include "media/resample.hpp"

#include <opus.h>
#include <speex/speex_resampler.h>

#include <chrono>
#include <cstring>

// SpanDSP last: telephony.h defines lrint()/lrintf() as macros in C++, which
// would break standard headers included after it.
#include <stdint.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/plc.h>
#undef lrint
#undef lrintf

namespace tandem::bench {

namespace {

constexpr int opus_rate = 48000;
constexpr int opus_block = 960;  // 20 ms at 48 kHz

// Encoding tables indexed by the top 14 (mu-law) or 12 (A-law) bits of a
// sample, decoding tables by the code: what a table-driven G.711 does.
struct Tables {
    std::array<std::uint8_t, 1u << 14> to_ulaw{};
    std::array<std::uint8_t, 1u << 12> to_alaw{};
    std::array<std::int16_t, 256> from_ulaw{}, from_alaw{};
    Tables() {
        for (int i = 0; i < (1 << 14); ++i) {
            int top = i < (1 << 13) ? i : i - (1 << 14);
            // SpanDSP takes a negative sample's magnitude as -x; G.191 (and
            // codec_g711) as -x-1. Feeding SpanDSP x+1 for negatives gives
            // the G.191 code for the whole group of samples the index covers.
            to_ulaw[static_cast<std::size_t>(i)] = linear_to_ulaw(top < 0 ? top * 4 + 1 : top * 4);
        }
        for (int i = 0; i < (1 << 12); ++i) {
            int top = i < (1 << 11) ? i : i - (1 << 12);
            to_alaw[static_cast<std::size_t>(i)] = linear_to_alaw(top * 16);
        }
        for (int c = 0; c < 256; ++c) {
            from_ulaw[static_cast<std::size_t>(c)] = ulaw_to_linear(static_cast<std::uint8_t>(c));
            from_alaw[static_cast<std::size_t>(c)] = alaw_to_linear(static_cast<std::uint8_t>(c));
        }
    }
};

// Built once, read-only afterwards (the function-local static is
// initialised thread-safely; nothing writes it later).
const Tables& tables() {
    static const Tables t;
    return t;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

// --- opus -> G.711 -----------------------------------------------------------

DirectOpusToG711::DirectOpusToG711(Law law) : law_(law) {
    tables();
    int err = OPUS_OK;
    dec_ = opus_decoder_create(opus_rate, 1, &err);
    if (!dec_ || err != OPUS_OK) return;
    resampler_ = speex_resampler_init(1, opus_rate, 8000, resampler_quality, &err);
    ok_ = resampler_ != nullptr;
}

DirectOpusToG711::~DirectOpusToG711() {
    if (dec_) opus_decoder_destroy(dec_);
    if (resampler_) speex_resampler_destroy(resampler_);
}

const char* DirectOpusToG711::stage_name(int i) {
    static const char* const names[] = {"opus_decode", "SpeexDSP 48->8 kHz", "G.711 encode (table)"};
    return names[i];
}

bool DirectOpusToG711::run(std::span<const std::uint8_t> packet, StageTimes* times) {
    std::int64_t t0 = times ? now_ns() : 0;
    int got = opus_decode(dec_, packet.data(), static_cast<opus_int32>(packet.size()), pcm48_.data(),
                          static_cast<int>(pcm48_.size()), 0);
    if (got < 0) return false;
    std::int64_t t1 = times ? now_ns() : 0;
    spx_uint32_t in_len = static_cast<spx_uint32_t>(got), out_len = static_cast<spx_uint32_t>(pcm8_.size());
    speex_resampler_process_int(resampler_, 0, pcm48_.data(), &in_len, pcm8_.data(), &out_len);
    std::int64_t t2 = times ? now_ns() : 0;
    const auto& t = tables();
    if (law_ == Law::ulaw) {
        for (std::size_t i = 0; i < out_len; ++i) codes_[i] = t.to_ulaw[static_cast<std::uint16_t>(pcm8_[i]) >> 2];
    } else {
        for (std::size_t i = 0; i < out_len; ++i) codes_[i] = t.to_alaw[static_cast<std::uint16_t>(pcm8_[i]) >> 4];
    }
    out_len_ = out_len;
    if (times) {
        std::int64_t t3 = now_ns();
        times->ns[0] = t1 - t0;
        times->ns[1] = t2 - t1;
        times->ns[2] = t3 - t2;
    }
    return true;
}

// --- G.711 -> opus -----------------------------------------------------------

struct DirectG711ToOpus::Plc {
    plc_state_t state{};
};

DirectG711ToOpus::DirectG711ToOpus(Law law) : law_(law), plc_(std::make_unique<Plc>()) {
    tables();
    plc_init(&plc_->state);
    int err = OPUS_OK;
    resampler_ = speex_resampler_init(1, 8000, opus_rate, resampler_quality, &err);
    if (!resampler_) return;
    enc_ = opus_encoder_create(opus_rate, 1, OPUS_APPLICATION_VOIP, &err);
    if (!enc_ || err != OPUS_OK) return;
    // codec_opus's defaults (see its header comment); complexity is left at
    // libopus's own default there too.
    ok_ = opus_encoder_ctl(enc_, OPUS_SET_BITRATE(32000)) == OPUS_OK &&
          opus_encoder_ctl(enc_, OPUS_SET_INBAND_FEC(1)) == OPUS_OK &&
          opus_encoder_ctl(enc_, OPUS_SET_DTX(0)) == OPUS_OK &&
          opus_encoder_ctl(enc_, OPUS_SET_MAX_BANDWIDTH(OPUS_BANDWIDTH_FULLBAND)) == OPUS_OK &&
          opus_encoder_ctl(enc_, OPUS_SET_VBR(1)) == OPUS_OK &&
          opus_encoder_ctl(enc_, OPUS_SET_PACKET_LOSS_PERC(10)) == OPUS_OK;
}

DirectG711ToOpus::~DirectG711ToOpus() {
    if (enc_) opus_encoder_destroy(enc_);
    if (resampler_) speex_resampler_destroy(resampler_);
}

const char* DirectG711ToOpus::stage_name(int i) {
    static const char* const names[] = {"G.711 decode (table) + SpanDSP plc_rx", "SpeexDSP 8->48 kHz", "opus_encode"};
    return names[i];
}

bool DirectG711ToOpus::run(std::span<const std::uint8_t> codes, StageTimes* times) {
    if (codes.size() > pcm8_.size()) return false;
    std::int64_t t0 = times ? now_ns() : 0;
    const auto& table = law_ == Law::ulaw ? tables().from_ulaw : tables().from_alaw;
    const std::size_t n = codes.size();
    for (std::size_t i = 0; i < n; ++i) pcm8_[i] = table[codes[i]];
    plc_rx(&plc_->state, pcm8_.data(), static_cast<int>(n));
    std::int64_t t1 = times ? now_ns() : 0;
    spx_uint32_t in_len = static_cast<spx_uint32_t>(n), out_len = static_cast<spx_uint32_t>(pcm48_.size());
    speex_resampler_process_int(resampler_, 0, pcm8_.data(), &in_len, pcm48_.data(), &out_len);
    std::int64_t t2 = times ? now_ns() : 0;
    // 20 ms in, 20 ms out: SpeexDSP's integer ratio 1:6 gives exactly 960.
    if (out_len < static_cast<spx_uint32_t>(opus_block)) return false;
    auto len = opus_encode(enc_, pcm48_.data(), opus_block, packet_.data(), static_cast<opus_int32>(packet_.size()));
    if (len < 0) return false;
    out_len_ = static_cast<std::size_t>(len);
    if (times) {
        std::int64_t t3 = now_ns();
        times->ns[0] = t1 - t0;
        times->ns[1] = t2 - t1;
        times->ns[2] = t3 - t2;
    }
    return true;
}

}  // namespace tandem::bench
