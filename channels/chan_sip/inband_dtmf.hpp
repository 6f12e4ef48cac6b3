// In-band DTMF sending for endpoints with dtmfmode=inband: a digit becomes
// dual tones in the call's outgoing audio instead of an RFC 4733 event or a
// SIP INFO.
//
// The tones are made by SpanDSP's DTMF generator in slin8, encoded to the
// channel's native format and handed to a sink (the driver's RTP write) one
// 20 ms frame at a time, paced by a timer on the channel's loop. Digits that
// arrive while one is playing wait their turn in a small fixed queue (excess
// digits are dropped with a warning, never allocated). While digits play the
// channel is audio-tapped, so a bridge relays through the core instead of
// RTP to RTP, and sending() tells the driver to drop the bridge's voice so
// the tones are not mixed with it.
//
// Threading: everything on the channel's loop; construct, use and destroy
// there. Destroy it at hangup, while the channel is whole (the destructor
// removes its audio tap). One destroyed later, as the channel's driver is
// when the channel goes without a hangup, leaves the tap alone: it finds the
// channel through a weak_ptr, which no longer locks once the channel's own
// destruction has begun, so it never touches a half-destroyed channel; it
// must then not outlive the channel's loop. No allocation or throw per frame.
#pragma once

#include <tandem/channel.hpp>
#include <tandem/frame.hpp>
#include <tandem/media.hpp>

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>

struct dtmf_tx_state_s;

namespace tandem::sip {

class InbandDtmfSender {
public:
    using Sink = std::function<void(const Frame&)>;

    // `sink` receives voice frames in the channel's native format.
    InbandDtmfSender(Channel& chan, Sink sink);
    ~InbandDtmfSender();
    InbandDtmfSender(const InbandDtmfSender&) = delete;
    InbandDtmfSender& operator=(const InbandDtmfSender&) = delete;

    // Queues a digit (0-9, *, #, A-D); `duration` is the tone's length,
    // clamped to 40..1000 ms; a 50 ms gap follows each digit.
    void send(char digit, std::chrono::milliseconds duration);
    // True while tones are playing or queued.
    bool sending() const { return active_; }

private:
    struct Queued {
        char digit = 0;
        int ms = 0;
    };
    void start_next();
    void tick();
    void finish();

    Channel& chan_;
    std::weak_ptr<Channel> tapped_;  // for the destructor only: see above
    Sink sink_;
    dtmf_tx_state_s* tx_ = nullptr;
    std::unique_ptr<TranslationPath> encode_;
    Format encoded_for_ = Format::none;
    std::array<Queued, 16> queue_{};
    std::size_t head_ = 0, count_ = 0;
    bool active_ = false;
    std::chrono::steady_clock::time_point next_;
    // Cleared by the destructor: a timer callback that was already queued
    // sees it and does nothing.
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
    boost::asio::steady_timer timer_;
    Frame pcm_, encoded_;
};

}  // namespace tandem::sip
