// Two-party bridges: two channels exchanging media until one of them leaves.
//
// `co_await bridge(a, b, options)` runs from the coroutine that drives `a`
// (its dialplan application, normally Dial) and returns when either channel
// hangs up or the duration limit passes. It never hangs a channel up itself:
// the caller decides what the end means (Dial hangs up both by default, or
// lets the caller continue in the dialplan with its `g` option). A pending
// redirect on either leg (a transfer, Core::redirect) ends it too; the
// redirect stays on the channel for the caller to take.
//
// What it forwards, both ways: voice (translated between the two native
// formats by the receiving channel's write path when they differ), video as
// it comes, DTMF begin/end, text, and call-progress indications (ringing,
// progress, busy, congestion, hold, unhold...) through `indicate()`.
//
// Relay fast path: when both drivers return an RtpSession (`driver().rtp()`),
// each can relay to the other (`can_relay_to()`, both ways), and neither
// channel has an audio tap (`audio_tapped()`), the bridge asks the sessions to
// forward RTP packets to each other without decoding (`relay_to()`). It checks
// again on every event of either channel (tap added, native format changed,
// indication, answer) and undoes the relay (`relay_to(nullptr)`) when the
// condition no longer holds and when the bridge ends. While relayed, voice
// frames that still reach the bridge are not forwarded (the packets already
// were); DTMF, text and indications still are (SIP INFO digits, for one).
//
// Threading: both channels must live on the same event loop, the loop the
// awaiting coroutine runs on (Dial creates its outgoing legs on the caller's
// loop); otherwise bridge() returns BridgeEnd::failed at once and logs why.
// While bridged, the bridge owns both channels' frame observers.
#pragma once

#include <tandem/channel.hpp>

#include <chrono>
#include <string_view>

namespace tandem {

struct BridgeOptions {
    // End the bridge after this long; zero means no limit.
    std::chrono::milliseconds limit{0};
    // Allow the RTP relay fast path (off: always decode, e.g. for tests).
    bool allow_relay = true;
};

enum class BridgeEnd {
    a_hungup,  // the first channel (the awaiting one) hung up
    b_hungup,  // the other channel hung up
    limit,     // the duration limit passed
    failed,    // could not bridge (different loops, same channel)
    // A transfer redirected one leg (Channel::redirect_pending()); the
    // awaiting code takes the redirect and acts on it (Dial: the redirected
    // leg goes on, the other is hung up).
    a_redirected,
    b_redirected,
};

std::string_view to_string(BridgeEnd e);

awaitable<BridgeEnd> bridge(Channel& a, Channel& b, BridgeOptions options = {});

}  // namespace tandem
