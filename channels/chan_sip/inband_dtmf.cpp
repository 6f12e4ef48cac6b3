#include "chan_sip/inband_dtmf.hpp"

#include <tandem/core.hpp>

#include <algorithm>
#include <cctype>

// SpanDSP's headers are not self-contained: dtmf.h needs these first.
#include <spandsp/telephony.h>
#include <spandsp/logging.h>
#include <spandsp/super_tone_rx.h>
#include <spandsp/dtmf.h>

namespace tandem::sip {

namespace {
constexpr int frame_samples = 160;  // 20 ms of slin8
constexpr int gap_ms = 50;
constexpr auto frame_time = std::chrono::milliseconds(20);

bool is_dtmf_digit(char d) {
    return (d >= '0' && d <= '9') || d == '*' || d == '#' || (d >= 'A' && d <= 'D') || (d >= 'a' && d <= 'd');
}
}  // namespace

InbandDtmfSender::InbandDtmfSender(Channel& chan, Sink sink)
    : chan_(chan),
      tapped_(chan.weak_from_this()),
      sink_(std::move(sink)),
      tx_(dtmf_tx_init(nullptr)),
      timer_(chan.loop()) {
    pcm_.kind = FrameKind::voice;
    pcm_.subclass = static_cast<std::uint32_t>(Format::slin8);
    pcm_.samples = frame_samples;
}

InbandDtmfSender::~InbandDtmfSender() {
    *alive_ = false;
    timer_.cancel();
    if (active_)
        if (auto c = tapped_.lock()) c->remove_audio_tap();
    if (tx_) dtmf_tx_free(tx_);
}

void InbandDtmfSender::send(char digit, std::chrono::milliseconds duration) {
    if (!tx_ || !is_dtmf_digit(digit)) return;
    if (count_ == queue_.size()) {
        chan_.core().log().warning("{}: in-band DTMF: too many digits queued, '{}' dropped", chan_.name(), digit);
        return;
    }
    int ms = static_cast<int>(std::clamp<long long>(duration.count(), 40, 1000));
    queue_[(head_ + count_) % queue_.size()] = {static_cast<char>(std::toupper(static_cast<unsigned char>(digit))), ms};
    ++count_;
    if (active_) return;
    active_ = true;
    chan_.add_audio_tap();
    next_ = std::chrono::steady_clock::now();
    start_next();
    tick();
}

void InbandDtmfSender::start_next() {
    auto q = queue_[head_];
    head_ = (head_ + 1) % queue_.size();
    --count_;
    dtmf_tx_set_timing(tx_, q.ms, gap_ms);
    dtmf_tx_put(tx_, &q.digit, 1);
}

void InbandDtmfSender::tick() {
    std::int16_t samples[frame_samples];
    int n = dtmf_tx(tx_, samples, frame_samples);
    if (n < frame_samples && count_ > 0) {
        start_next();
        n += dtmf_tx(tx_, samples + n, frame_samples - n);
    }
    if (n <= 0) {
        finish();
        return;
    }
    // The last frame of a digit's gap is padded with silence to a full frame.
    for (int i = n; i < frame_samples; ++i) samples[i] = 0;
    pcm_.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(samples), sizeof samples));
    const Format native = chan_.native_format();
    if (native == Format::slin8) {
        sink_(pcm_);
    } else if (native != Format::none) {
        if (!encode_ || encoded_for_ != native) {
            // Once per call (or per format change), not per frame.
            encode_ = chan_.core().build_path(Format::slin8, native);
            encoded_for_ = native;
        }
        if (encode_ && encode_->convert(pcm_, encoded_)) sink_(encoded_);
    }
    next_ += frame_time;
    timer_.expires_at(next_);
    timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
        auto a = alive.lock();
        if (!a || !*a || ec) return;
        if (chan_.hungup()) {
            finish();
            return;
        }
        tick();
    });
}

void InbandDtmfSender::finish() {
    if (!active_) return;
    active_ = false;
    count_ = 0;
    chan_.remove_audio_tap();
}

}  // namespace tandem::sip
