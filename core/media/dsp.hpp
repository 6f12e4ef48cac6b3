// The channel side of in-band detection (Channel::set_tone_detection).
//
// A ChannelDsp sits in Channel::on_frame(): it decodes each voice frame the
// driver pushes to slin8 through a translation path the core builds (once per
// format, never per frame), feeds the ToneDetector (tandem/dsp.hpp), and then
// acts on what it heard in terms the PBX already understands: dtmf_begin and
// dtmf_end frames pushed into the channel as a driver pushes RFC 4733 digits,
// and for a fax tone the FaxDetect event, the FAXDETECTED variable and,
// once per call, Channel::async_goto() to the `fax` extension of the
// channel's context when it has one (FAXEXTEN keeps the extension the call
// was at), as Asterisk's `faxdetect` does.
//
// Threading: owned by its channel and used only on the channel's loop. No
// allocation per frame; bad frames (no audio, an unknown format, a format
// without a path to slin8) are skipped, never thrown about.
#pragma once

#include <tandem/dsp.hpp>
#include <tandem/frame.hpp>
#include <tandem/media.hpp>

#include <array>
#include <memory>
#include <span>

namespace tandem {

class Channel;

class ChannelDsp {
public:
    // nullptr when `what` asks for nothing or the detector cannot be made.
    static std::unique_ptr<ChannelDsp> create(Channel& chan, ToneDetection what);

    ToneDetection detecting() const { return detector_->detecting(); }
    // The driver's format changed: build the decoding path now, so the first
    // frame in the new format does not have to.
    void prepare(Format native);
    // Listens to one voice frame. Returns the frame decoded to slin8 when it
    // had to be decoded (valid until the next call), so a reader of slin8
    // need not decode it again; nullptr when it was slin8 already or could
    // not be decoded.
    const Frame* listen(const Frame& voice);
    // True when the last listen() heard something to act on.
    bool heard() const { return heard_count_ > 0; }
    // Acts on what the last listen() heard. Separate from listen() so the
    // channel passes the voice frame on first and the digits after it.
    void act();

private:
    ChannelDsp(Channel& chan, std::unique_ptr<ToneDetector> detector) : chan_(chan), detector_(std::move(detector)) {}
    void fax_detected(FaxTone tone);

    Channel& chan_;
    std::unique_ptr<ToneDetector> detector_;
    std::unique_ptr<TranslationPath> decoder_;
    Format failed_ = Format::none;  // a format with no path to slin8: not retried per frame
    Frame decoded_;
    std::array<std::int16_t, 160> pcm_{};  // aligned samples handed to the detector, 20 ms at a time
    std::array<ToneEvent, ToneDetector::max_events> heard_{};
    std::size_t heard_count_ = 0;
    bool jumped_ = false;
};

}  // namespace tandem
