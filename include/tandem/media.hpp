// Media formats and codec translators.
//
// Every audio or video frame carries a Format (Frame::subclass for voice and
// video frames). The list of formats is fixed here, so ids are stable across
// modules and cheap to compare; what a format needs for SDP (encoding name,
// clock rate, static payload type) is data in format_info().
//
// Codec modules register Translators: one direction of one codec step, such as
// ulaw -> slin8 or slin48 -> opus. The core's translator graph chains them
// along the cheapest path between two formats (Core::build_path), with each
// step's cost measured on the running machine. Signed linear at 8, 16 and
// 48 kHz (slin8, slin16, slin48) is the core's internal audio; every audio
// codec converts to and from the slin rate it works at.
//
// Threading: a Translator instance belongs to one channel and is used on that
// channel's loop only; it keeps codec state (history, filters), so each call
// direction gets its own instance from TranslatorInfo::create. convert() must
// not allocate per frame, block, or throw: it reports failure by return value.
#pragma once

#include <tandem/frame.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tandem {

enum class MediaKind : std::uint8_t { audio, video, image };

enum class Format : std::uint16_t {
    none = 0,
    slin8,   // signed linear 16-bit host order, 8 kHz
    slin16,  // 16 kHz
    slin48,  // 48 kHz
    ulaw,    // G.711 mu-law
    alaw,    // G.711 A-law
    g722,    // 16 kHz audio, 8 kHz RTP clock
    g726,    // G.726-32 (RFC 3551 bit order)
    gsm,     // GSM 06.10 full rate
    lpc10,
    adpcm,  // IMA/DVI ADPCM, 8 kHz (DVI4)
    speex8,
    speex16,
    opus,  // 48 kHz
    g729,  // G.729A
    h264,
    vp8,
    h263,
    count_,  // number of formats; keep last
};

struct FormatInfo {
    Format format;
    std::string_view name;  // Tandem's name: "ulaw", "slin16", "opus" (allow=/disallow=, file suffixes)
    MediaKind kind;
    std::string_view encoding_name;  // SDP rtpmap name: "PCMU", "G722", "opus", "H264"; "" for slin
    std::uint32_t sample_rate;       // audio samples per second (g722: 16000)
    std::uint32_t rtp_clock;         // RTP timestamp clock (g722: 8000, opus: 48000)
    int static_payload;              // RFC 3551 payload type, or -1 for dynamic
    std::uint32_t channels;          // in SDP (opus: 2, by RFC 7587)
    std::uint32_t min_frame_ms;      // smallest packet the codec makes
};

// Information about a format; `format_info(Format::none)` has name "none".
const FormatInfo& format_info(Format f);
// By Tandem name ("ulaw", "g729"); case-insensitive. Also accepts the
// Asterisk aliases "slin" (= slin8), "g711u"/"pcmu", "g711a"/"pcma", "speex".
std::optional<Format> format_by_name(std::string_view name);
// By SDP encoding name and clock rate ("PCMU"/8000, "opus"/48000); case-insensitive.
std::optional<Format> format_by_encoding(std::string_view encoding, std::uint32_t rtp_clock);
// Bytes of payload for `samples` samples, for constant-rate formats; 0 when variable (opus, speex, video).
std::size_t format_bytes(Format f, std::uint32_t samples);
// The slin format at a sample rate (8000, 16000, 48000), or none.
Format slin_at(std::uint32_t rate);

// One direction of one codec step, for one channel.
class Translator {
public:
    virtual ~Translator() = default;
    // Converts one frame. `in` holds payload in the translator's source format;
    // `out` receives the result (kind, subclass = destination format, samples,
    // payload). Returns false if the input could not be converted (corrupt
    // payload); `out` is then left unspecified.
    virtual bool convert(const Frame& in, Frame& out) = 0;
    // For decoders: invents `samples` samples in place of a lost packet
    // (packet-loss concealment). Returns false when the codec cannot conceal;
    // the caller then plays silence.
    virtual bool conceal(std::uint32_t /*samples*/, Frame& /*out*/) { return false; }
    // For decoders with in-band redundancy (Opus FEC): rebuilds a lost packet
    // from `next`, the packet after it, already received. Call it in place of
    // conceal() for the lost packet, then convert `next` as usual. The default
    // has no redundancy to use and conceals the duration of `next` instead.
    virtual bool recover(const Frame& next, Frame& out) { return conceal(next.samples, out); }
};

// The registry entry: what a codec module adds for each direction it offers.
// Registered under the name "<from>-><to>" (e.g. "ulaw->slin8").
struct TranslatorInfo {
    Format from = Format::none;
    Format to = Format::none;
    std::string description;
    // Makes a fresh instance (codec state for one channel direction). Options
    // are codec-specific `key=value;key=value` text, named after the SDP fmtp
    // parameters where there are any (opus: "maxaveragebitrate=32000;useinbandfec=1;usedtx=0"),
    // empty for defaults; nullptr when the options are invalid.
    std::function<std::unique_ptr<Translator>(std::string_view options)> create;
};

// A chain of translators from one format to another, built by the core along
// the cheapest path (Core::build_path). It holds leases on the codec modules it
// uses. Like a Translator, it belongs to one channel direction and one loop.
class TranslationPath {
public:
    virtual ~TranslationPath() = default;
    virtual Format from() const = 0;
    virtual Format to() const = 0;
    // Converts one frame through every step. False when a step failed.
    virtual bool convert(const Frame& in, Frame& out) = 0;
    // Packet-loss concealment through the first step, converted by the rest.
    virtual bool conceal(std::uint32_t samples, Frame& out) = 0;
    // "opus->slin48->slin8->ulaw"
    virtual std::string describe() const = 0;
    // Sum of the steps' measured costs (microseconds per 20 ms of audio).
    virtual unsigned cost() const = 0;
};

inline std::string translator_name(Format from, Format to) {
    return std::string(format_info(from).name) + "->" + std::string(format_info(to).name);
}

}  // namespace tandem
