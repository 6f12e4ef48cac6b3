// Fakes of the channel driver interface (tandem/channel.hpp) for unit tests:
// the wire side of a test channel, which either records what the channel
// sends to it or drops it.
//
// Threading: a driver is called on its channel's loop, and a test reads what
// it recorded from its own thread while the loop may still be writing; so
// Recorded keeps everything behind `mu`. Use count()/copy(), hold `mu`, or
// read on the channel's loop (as the bridge tests do).
#pragma once

#include <tandem/channel.hpp>
#include <tandem/frame.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::test {

// What a channel sent to its wire side, in the order it came. Shared with the
// test, so it outlives the channel and its driver.
struct Recorded {
    std::mutex mu;
    std::vector<Frame> frames;                                 // frames written
    std::vector<std::chrono::steady_clock::time_point> times;  // when each frame came
    std::vector<Indication> indications;
    std::string digits;  // digits sent whole or ended (send_digit)
    std::string begun;   // digits started (send_digit_begin)
    std::string text;
    // What the driver's rtp() returns: set it to put a fake RtpSession under
    // the channel before a bridge looks.
    RtpSession* rtp = nullptr;

    // One frame and its arrival time. Also the sink of code under test that
    // hands frames to a callback rather than to a driver (in-band DTMF).
    void record(const Frame& f) {
        std::lock_guard l(mu);
        frames.push_back(f);
        times.push_back(std::chrono::steady_clock::now());
    }
    std::size_t count() {
        std::lock_guard l(mu);
        return frames.size();
    }
    std::vector<Frame> copy() {
        std::lock_guard l(mu);
        return frames;
    }
};

struct RecordingOptions {
    // Keep voice frames only (what a prompt or music test measures); false
    // keeps every frame written.
    bool voice_only = true;
    // Claim hold for the driver (ChannelDriver::handles_hold), so the core
    // plays no music on hold: for tests of hold as an indication only.
    bool handles_hold = false;
};

// Records everything the channel sends into a shared Recorded.
class RecordingDriver final : public ChannelDriver {
public:
    explicit RecordingDriver(std::shared_ptr<Recorded> rec, RecordingOptions o = {})
        : rec_(std::move(rec)), options_(o) {}

    void write(Channel&, const Frame& f) override {
        if (options_.voice_only && f.kind != FrameKind::voice) return;
        rec_->record(f);
    }
    void indicate(Channel&, Indication i) override {
        std::lock_guard l(rec_->mu);
        rec_->indications.push_back(i);
    }
    void send_digit_begin(Channel&, char d) override {
        std::lock_guard l(rec_->mu);
        rec_->begun += d;
    }
    void send_digit(Channel&, char d, std::chrono::milliseconds) override {
        std::lock_guard l(rec_->mu);
        rec_->digits += d;
    }
    void send_text(Channel&, std::string_view t) override {
        std::lock_guard l(rec_->mu);
        rec_->text += t;
    }
    RtpSession* rtp() override { return rec_->rtp; }
    bool handles_hold() const override { return options_.handles_hold; }

private:
    std::shared_ptr<Recorded> rec_;
    RecordingOptions options_;
};

// A wire side that takes everything and keeps nothing.
class NullDriver final : public ChannelDriver {};

}  // namespace tandem::test
