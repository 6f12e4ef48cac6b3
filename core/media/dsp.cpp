// In-band DTMF and fax tone detection with SpanDSP, and its place in a
// channel (see tandem/dsp.hpp and media/dsp.hpp).
#include "media/dsp.hpp"

#include <tandem/channel.hpp>
#include <tandem/core.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>
#include <utility>

// SpanDSP last: in C++ telephony.h defines lrint() and lrintf() as macros,
// which would break any standard header included after it.
#include <stdint.h>
#include <spandsp/telephony.h>
#include <spandsp/logging.h>
#include <spandsp/super_tone_rx.h>  // tone_report_func_t
#include <spandsp/dtmf.h>
#include <spandsp/modem_connect_tones.h>
#undef lrint
#undef lrintf

namespace tandem {

std::string_view to_string(FaxTone t) {
    return t == FaxTone::cng ? "cng" : "ced";
}

std::optional<ToneDetection> parse_faxdetect(std::string_view value) {
    std::string v;
    for (char c : value)
        if (!std::isspace(static_cast<unsigned char>(c)))
            v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ToneDetection d;
    if (v == "no" || v == "false" || v == "0" || v.empty()) return d;
    if (v == "yes" || v == "true" || v == "1") {
        d.fax_cng = d.fax_ced = true;
        return d;
    }
    if (v == "cng") {
        d.fax_cng = true;
        return d;
    }
    if (v == "ced") {
        d.fax_ced = true;
        return d;
    }
    return std::nullopt;
}

namespace {

// The SpanDSP receivers behind ToneDetector. Each receiver reports through a
// C callback while dtmf_rx()/modem_connect_tones_rx() run; the callbacks only
// append to the fixed event array, so nothing is allocated after create().
class SpanToneDetector final : public ToneDetector {
public:
    explicit SpanToneDetector(ToneDetection what) : what_(what) {}
    ~SpanToneDetector() override {
        if (dtmf_) dtmf_rx_free(dtmf_);
        if (cng_) modem_connect_tones_rx_free(cng_);
        if (ced_) modem_connect_tones_rx_free(ced_);
    }
    SpanToneDetector(const SpanToneDetector&) = delete;
    SpanToneDetector& operator=(const SpanToneDetector&) = delete;

    bool init() {
        if (what_.dtmf) {
            // A digits callback, though we only use the real-time one: without
            // it the receiver keeps every digit in a buffer of its own.
            dtmf_ = dtmf_rx_init(nullptr, &SpanToneDetector::on_digits, this);
            if (!dtmf_) return false;
            dtmf_rx_set_realtime_callback(dtmf_, &SpanToneDetector::on_dtmf, this);
        }
        if (what_.fax_cng) {
            cng_ = modem_connect_tones_rx_init(nullptr, MODEM_CONNECT_TONES_FAX_CNG, &SpanToneDetector::on_fax, this);
            if (!cng_) return false;
        }
        if (what_.fax_ced) {
            ced_ = modem_connect_tones_rx_init(nullptr, MODEM_CONNECT_TONES_FAX_CED_OR_PREAMBLE,
                                               &SpanToneDetector::on_fax, this);
            if (!ced_) return false;
        }
        return true;
    }

    std::span<const ToneEvent> feed(std::span<const std::int16_t> samples) override {
        count_ = 0;
        // Pieces of 10 ms: the clock that times digits advances per piece.
        constexpr std::size_t piece = 80;
        while (!samples.empty()) {
            auto n = std::min(piece, samples.size());
            auto* amp = samples.data();
            if (dtmf_) dtmf_rx(dtmf_, amp, static_cast<int>(n));
            if (!fax_done_) {
                if (cng_) modem_connect_tones_rx(cng_, amp, static_cast<int>(n));
                if (ced_ && !fax_done_) modem_connect_tones_rx(ced_, amp, static_cast<int>(n));
            }
            clock_ += n;
            samples = samples.subspan(n);
        }
        return {events_.data(), count_};
    }

    ToneDetection detecting() const override { return what_; }

private:
    void add(const ToneEvent& e) {
        if (count_ < events_.size()) events_[count_++] = e;
    }

    static void on_digits(void*, const char*, int) {}

    // code: the digit (ASCII) when one starts, 0 when it ends.
    static void on_dtmf(void* user, int code, int /*level*/, int /*delay*/) {
        auto* self = static_cast<SpanToneDetector*>(user);
        if (code) {
            if (self->digit_) self->end_digit();
            self->digit_ = static_cast<char>(code);
            self->digit_started_ = self->clock_;
            self->add({ToneEvent::Kind::digit_begin, self->digit_, 0, FaxTone::cng});
        } else if (self->digit_) {
            self->end_digit();
        }
    }
    void end_digit() {
        auto ms = static_cast<std::uint32_t>((clock_ - digit_started_) / 8);
        add({ToneEvent::Kind::digit_end, digit_, std::max<std::uint32_t>(ms, 10), FaxTone::cng});
        digit_ = 0;
    }

    static void on_fax(void* user, int code, int /*level*/, int /*delay*/) {
        auto* self = static_cast<SpanToneDetector*>(user);
        if (self->fax_done_) return;
        FaxTone tone;
        switch (code) {
            case MODEM_CONNECT_TONES_FAX_CNG:
                tone = FaxTone::cng;
                break;
            case MODEM_CONNECT_TONES_ANS:
            case MODEM_CONNECT_TONES_ANS_PR:
            case MODEM_CONNECT_TONES_ANSAM:
            case MODEM_CONNECT_TONES_ANSAM_PR:
            case MODEM_CONNECT_TONES_FAX_PREAMBLE:
                tone = FaxTone::ced;
                break;
            default:
                return;  // MODEM_CONNECT_TONES_NONE: a tone stopped
        }
        self->fax_done_ = true;
        self->add({ToneEvent::Kind::fax, 0, 0, tone});
    }

    ToneDetection what_;
    dtmf_rx_state_t* dtmf_ = nullptr;
    modem_connect_tones_rx_state_t* cng_ = nullptr;
    modem_connect_tones_rx_state_t* ced_ = nullptr;
    std::array<ToneEvent, max_events> events_{};
    std::size_t count_ = 0;
    std::uint64_t clock_ = 0;  // samples fed so far
    char digit_ = 0;           // the digit sounding now, 0 for none
    std::uint64_t digit_started_ = 0;
    bool fax_done_ = false;
};

}  // namespace

std::unique_ptr<ToneDetector> ToneDetector::create(ToneDetection what) {
    if (!what.any()) return nullptr;
    auto d = std::make_unique<SpanToneDetector>(what);
    if (!d->init()) return nullptr;
    return d;
}

// --- the channel side ---------------------------------------------------------

std::unique_ptr<ChannelDsp> ChannelDsp::create(Channel& chan, ToneDetection what) {
    auto detector = ToneDetector::create(what);
    if (!detector) return nullptr;
    std::unique_ptr<ChannelDsp> dsp(new ChannelDsp(chan, std::move(detector)));
    dsp->prepare(chan.native_format());
    return dsp;
}

void ChannelDsp::prepare(Format native) {
    if (native == Format::slin8 || native == Format::none || native == failed_) return;
    if (decoder_ && decoder_->from() == native) return;
    decoder_ = chan_.core().build_path(native, Format::slin8);
    if (!decoder_) {
        failed_ = native;
        chan_.core().log().warning("{}: no translation from {} to slin8: in-band detection is deaf to it", chan_.name(),
                                   format_info(native).name);
    }
}

const Frame* ChannelDsp::listen(const Frame& voice) {
    heard_count_ = 0;
    auto raw = voice.subclass;
    if (voice.kind != FrameKind::voice || raw == 0 || raw >= static_cast<std::uint32_t>(Format::count_)) return nullptr;
    auto format = static_cast<Format>(raw);
    if (format_info(format).kind != MediaKind::audio) return nullptr;

    const Frame* linear = &voice;
    const Frame* decoded = nullptr;
    if (format != Format::slin8) {
        if (format == failed_) return nullptr;
        prepare(format);
        if (!decoder_ || decoder_->from() != format || !decoder_->convert(voice, decoded_)) return nullptr;
        if (static_cast<Format>(decoded_.subclass) != Format::slin8) return nullptr;
        linear = decoded = &decoded_;
    }

    // The payload need not be aligned for int16_t: copy it in pieces.
    auto bytes = linear->payload();
    std::size_t samples = bytes.size() / 2;
    for (std::size_t at = 0; at < samples;) {
        auto n = std::min(pcm_.size(), samples - at);
        std::memcpy(pcm_.data(), bytes.data() + at * 2, n * 2);
        for (auto& e : detector_->feed(std::span<const std::int16_t>(pcm_.data(), n)))
            if (heard_count_ < heard_.size()) heard_[heard_count_++] = e;
        at += n;
    }
    return decoded;
}

void ChannelDsp::act() {
    // Taken out first: pushing a digit runs observers that may do anything.
    auto count = std::exchange(heard_count_, 0);
    for (std::size_t i = 0; i < count; ++i) {
        const auto& e = heard_[i];
        switch (e.kind) {
            case ToneEvent::Kind::digit_begin:
                chan_.core().log().debug("{}: in-band DTMF '{}' begins", chan_.name(), e.digit);
                chan_.on_frame(Frame::digit(FrameKind::dtmf_begin, e.digit));
                break;
            case ToneEvent::Kind::digit_end:
                chan_.core().log().debug("{}: in-band DTMF '{}' ({} ms)", chan_.name(), e.digit, e.duration_ms);
                chan_.on_frame(Frame::digit(FrameKind::dtmf_end, e.digit, e.duration_ms));
                break;
            case ToneEvent::Kind::fax:
                fax_detected(e.tone);
                break;
        }
    }
}

void ChannelDsp::fax_detected(FaxTone tone) {
    auto& core = chan_.core();
    std::string name(to_string(tone));
    core.log().notice("{}: fax tone {} detected", chan_.name(), name);
    chan_.set_variable("FAXDETECTED", name);
    auto& bus = core.events();
    if (bus.has_subscribers()) bus.publish(event::FaxDetect{chan_.name(), chan_.uniqueid(), name});
    // Asterisk's faxdetect: a call in the dialplan whose context has a `fax`
    // extension goes there, once.
    if (jumped_ || chan_.hungup() || chan_.context().empty() || chan_.exten() == "fax") return;
    if (!core.dialplan_exists(chan_.context(), "fax", 1, chan_.caller().number)) return;
    // A channel without a dialplan of its own (a callee Dial owns) stays put.
    auto was_at = chan_.exten();
    if (!chan_.async_goto(chan_.context(), "fax", 1)) return;
    jumped_ = true;
    core.log().info("{}: redirecting to the fax extension of {}", chan_.name(), chan_.context());
    chan_.set_variable("FAXEXTEN", std::move(was_at));
}

}  // namespace tandem
