// The reference for the media benchmark's overhead figure: Opus <-> G.711
// done by calling the codec libraries directly, with nothing of Tandem in
// between (no Frame, no Translator, no TranslationPath).
//
// Each chain does the same work per 20 ms frame as the translation path the
// core builds for that direction, with the same settings:
//   opus -> G.711: opus_decode (48 kHz mono), SpeexDSP resampler 48 -> 8 kHz
//                  at Tandem's quality, G.711 encoding by table lookup;
//   G.711 -> opus: G.711 decoding by table lookup, SpanDSP's packet-loss
//                  concealment history (plc_rx, which codec_g711 keeps for
//                  every decoded packet), SpeexDSP resampler 8 -> 48 kHz,
//                  opus_encode with codec_opus's defaults (VoIP, 32 kbit/s
//                  VBR, in-band FEC, 10 % expected loss, fullband, no DTX).
// The G.711 tables follow the ITU-T G.191 convention codec_g711 uses (negative
// samples have magnitude -x-1), filled from SpanDSP's G.711 functions, so a
// chain's output can be compared byte for byte with the path's.
//
// Threading: a chain holds codec state; use each one from one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

struct OpusEncoder;
struct OpusDecoder;
struct SpeexResamplerState_;

namespace tandem::bench {

enum class Law { ulaw, alaw };

// Wall time of each stage of one frame, in nanoseconds (for the breakdown
// only: timing stages adds clock reads the plain run does not have).
struct StageTimes {
    std::int64_t ns[3] = {0, 0, 0};
};

// Opus packets (20 ms) to G.711 (160 bytes).
class DirectOpusToG711 {
public:
    explicit DirectOpusToG711(Law law);
    ~DirectOpusToG711();
    DirectOpusToG711(const DirectOpusToG711&) = delete;
    DirectOpusToG711& operator=(const DirectOpusToG711&) = delete;
    bool ok() const { return ok_; }

    // Converts one packet; the G.711 bytes are in output() until the next call.
    // Returns false when libopus rejects the packet.
    bool run(std::span<const std::uint8_t> packet, StageTimes* times = nullptr);
    std::span<const std::uint8_t> output() const { return {codes_.data(), out_len_}; }

    static const char* stage_name(int i);

private:
    bool ok_ = false;
    Law law_;
    OpusDecoder* dec_ = nullptr;
    SpeexResamplerState_* resampler_ = nullptr;
    std::array<std::int16_t, 5760> pcm48_{};
    std::array<std::int16_t, 960 + 16> pcm8_{};
    std::array<std::uint8_t, 960 + 16> codes_{};
    std::size_t out_len_ = 0;
};

// G.711 (any number of bytes up to 60 ms) to Opus packets (20 ms).
class DirectG711ToOpus {
public:
    explicit DirectG711ToOpus(Law law);
    ~DirectG711ToOpus();
    DirectG711ToOpus(const DirectG711ToOpus&) = delete;
    DirectG711ToOpus& operator=(const DirectG711ToOpus&) = delete;
    bool ok() const { return ok_; }

    // Converts 160 G.711 bytes into one Opus packet, in output() until the
    // next call. False when libopus fails.
    bool run(std::span<const std::uint8_t> codes, StageTimes* times = nullptr);
    std::span<const std::uint8_t> output() const { return {packet_.data(), out_len_}; }

    static const char* stage_name(int i);

private:
    struct Plc;
    bool ok_ = false;
    Law law_;
    std::unique_ptr<Plc> plc_;
    SpeexResamplerState_* resampler_ = nullptr;
    OpusEncoder* enc_ = nullptr;
    std::array<std::int16_t, 480> pcm8_{};
    std::array<std::int16_t, 2880 + 16> pcm48_{};
    std::array<std::uint8_t, 4000> packet_{};
    std::size_t out_len_ = 0;
};

}  // namespace tandem::bench
