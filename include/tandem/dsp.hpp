// In-band signal detection: DTMF digits and fax tones heard in a call's audio.
//
// Some peers send what they mean as sound rather than as signalling: ISDN and
// analog (FXS) gateways play DTMF into the audio instead of sending RFC 4733
// events, and a fax machine announces itself with its calling tone (CNG,
// 1100 Hz, 0.5 s every 3.5 s) or, when it answers, with the answer tone (CED,
// 2100 Hz, or the V.21 preamble that follows it). ToneDetector listens for
// them in signed linear audio at 8 kHz (Format::slin8), with SpanDSP's DTMF
// receiver (ITU-T Q.24 timing and twist limits, good talk-off figures) and its
// modem connect-tone receivers underneath.
//
// Channels use it through Channel::set_tone_detection(): the channel decodes
// the voice its driver pushes to slin8 with a translation path of the core
// and turns what the detector hears into what the rest of the PBX already
// understands, so an in-band digit is indistinguishable from an RFC 4733 one
// for Read, WaitExten, Background and a bridge; a fax tone becomes the
// event::FaxDetect event, the FAXDETECTED variable and, as Asterisk's
// `faxdetect` does, a jump to the `fax` extension. The tone audio itself is
// passed on unchanged (it is not muted while a digit sounds).
//
// Threading: a ToneDetector belongs to one call direction and is used from
// one thread at a time (a channel's loop). Its DSP state is allocated once by
// create(); feed() neither allocates nor throws.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace tandem {

enum class FaxTone : std::uint8_t {
    cng,  // calling tone: the caller is a fax machine
    ced,  // answer tone (CED/ANS/ANSam) or V.21 preamble: the callee is a fax machine
};
// "cng" / "ced".
std::string_view to_string(FaxTone t);

// What to listen for. Everything false means no detection.
struct ToneDetection {
    bool dtmf = false;
    bool fax_cng = false;
    bool fax_ced = false;
    bool any() const { return dtmf || fax_cng || fax_ced; }
    bool operator==(const ToneDetection&) const = default;
};

// The fax part of an endpoint's `faxdetect=` option: "no", "yes" (both
// tones), "cng", "ced"; case-insensitive. std::nullopt for anything else.
std::optional<ToneDetection> parse_faxdetect(std::string_view value);

// One thing the detector heard, in the order it happened.
struct ToneEvent {
    enum class Kind : std::uint8_t { digit_begin, digit_end, fax };
    Kind kind = Kind::digit_begin;
    char digit = 0;                 // digit_begin, digit_end: 0-9, *, #, A-D
    std::uint32_t duration_ms = 0;  // digit_end: how long the digit sounded
    FaxTone tone = FaxTone::cng;    // fax
};

class ToneDetector {
public:
    // At most this many events come out of one feed(); a 20 ms packet holds
    // at most three (a digit's end, the next one's start, a fax tone), so
    // only a caller feeding seconds of dense DTMF at once could lose some.
    static constexpr std::size_t max_events = 32;

    // A detector for `what`, or nullptr when nothing is asked or SpanDSP
    // could not set up. Allocates; call it at set-up, never per packet.
    static std::unique_ptr<ToneDetector> create(ToneDetection what);
    virtual ~ToneDetector() = default;

    // Listens to `samples` of slin8 audio, following the ones fed before.
    // Returns what was confirmed in them, valid until the next call. A fax
    // tone is reported once: after that the detector stops listening for fax
    // tones (DTMF goes on).
    virtual std::span<const ToneEvent> feed(std::span<const std::int16_t> samples) = 0;
    virtual ToneDetection detecting() const = 0;
};

}  // namespace tandem
