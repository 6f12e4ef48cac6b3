// The adaptive jitter buffer alone, on a simulated clock: in-order play-out,
// reordering, loss concealment, late and duplicate frames, growth under
// jitter, slow shrinking, and resynchronisation on a timestamp jump.
#include <tandem/rtp.hpp>

#include <doctest/doctest.h>

#include <vector>

using namespace tandem;
using namespace std::chrono_literals;
using clk = std::chrono::steady_clock;

namespace {

Frame voice(std::uint32_t ts) {
    Frame f;
    f.kind = FrameKind::voice;
    f.subclass = static_cast<std::uint32_t>(Format::ulaw);
    f.samples = 160;
    f.timestamp = ts;
    std::uint8_t b[160] = {};
    b[0] = static_cast<std::uint8_t>(ts / 160);
    f.set_payload(b);
    return f;
}

// Plays `ticks` 20 ms periods from `t`, recording timestamps (or -1 for concealment, -2 for nothing).
std::vector<long> play(JitterBuffer& jb, clk::time_point& t, int ticks) {
    std::vector<long> out;
    Frame f;
    for (int i = 0; i < ticks; ++i) {
        auto o = jb.get(t, f);
        out.push_back(o.result == JitterBuffer::Result::frame     ? static_cast<long>(f.timestamp)
                      : o.result == JitterBuffer::Result::conceal ? -1
                                                                  : -2);
        t += 20ms;
    }
    return out;
}

}  // namespace

TEST_CASE("jitterbuffer: reorders, conceals a loss, drops late and duplicate frames") {
    JitterBuffer jb({.min_delay = 40ms, .max_delay = 200ms});
    auto t = clk::now();
    CHECK(jb.put(voice(0), t));
    CHECK(jb.put(voice(320), t));
    CHECK(jb.put(voice(160), t));        // reordered
    CHECK_FALSE(jb.put(voice(160), t));  // duplicate
    CHECK(jb.put(voice(640), t));        // 480 is lost
    CHECK(jb.stats().duplicates == 1);
    auto got = play(jb, t, 5);
    CHECK(got == std::vector<long>{0, 160, 320, -1, 640});
    CHECK_FALSE(jb.put(voice(480), t));  // its turn has passed
    CHECK(jb.stats().late == 1);
    CHECK(jb.stats().played == 4);
    CHECK(jb.stats().concealed == 1);
    // Not voice: refused.
    CHECK_FALSE(jb.put(Frame::digit(FrameKind::dtmf_begin, '1'), t));
}

TEST_CASE("jitterbuffer: waits for its target delay, grows under jitter, shrinks slowly") {
    JitterBuffer jb({.min_delay = 40ms, .max_delay = 300ms, .shrink_after = 1000ms});
    auto t0 = clk::now();
    auto t = t0;
    Frame f;
    jb.put(voice(0), t);
    CHECK(jb.get(t, f).result == JitterBuffer::Result::none);  // 20 ms buffered < 40 ms target
    jb.put(voice(160), t);
    CHECK(jb.get(t, f).result == JitterBuffer::Result::frame);
    // Packets now arrive in bursts: 100 ms of nothing, then 5 frames at once.
    std::uint32_t ts = 320;
    t = t0 + 20ms;
    std::size_t conceal = 0;
    for (int burst = 0; burst < 10; ++burst) {
        for (int i = 0; i < 5; ++i) {
            auto o = jb.get(t, f);
            if (o.result == JitterBuffer::Result::conceal) ++conceal;
            t += 20ms;
        }
        for (int i = 0; i < 5; ++i, ts += 160) jb.put(voice(ts), t);
    }
    CHECK(jb.stats().target_ms >= 100);  // learnt from the spread of arrivals
    CHECK(jb.stats().target_ms <= 300);
    // Once the delay covers the bursts, play-out is continuous: the later
    // bursts need no concealment.
    std::size_t late_conceal = 0;
    for (int burst = 0; burst < 5; ++burst) {
        for (int i = 0; i < 5; ++i) {
            auto o = jb.get(t, f);
            if (o.result == JitterBuffer::Result::conceal) ++late_conceal;
            t += 20ms;
        }
        for (int i = 0; i < 5; ++i, ts += 160) jb.put(voice(ts), t);
    }
    CHECK(late_conceal == 0);
    CHECK(conceal > 0);
    // Steady arrivals again: the delay comes down, one frame at a time, not at once.
    auto delay_before = jb.stats().delay_ms;
    for (int i = 0; i < 300; ++i) {
        jb.put(voice(ts), t);
        ts += 160;
        jb.get(t, f);
        t += 20ms;
    }
    CHECK(jb.stats().delay_ms < delay_before);
    CHECK(jb.stats().delay_ms >= 20);
}

TEST_CASE("jitterbuffer: a timestamp jump resynchronises") {
    JitterBuffer jb({.min_delay = 20ms, .max_delay = 200ms, .resync = 1000ms});
    auto t = clk::now();
    for (std::uint32_t ts = 0; ts < 1600; ts += 160) jb.put(voice(ts), t);
    auto got = play(jb, t, 3);
    CHECK(got[0] == 0);
    // The source restarted far away (new SSRC, or a long pause with a reset clock).
    for (std::uint32_t ts = 4000000; ts < 4000000 + 800; ts += 160) CHECK(jb.put(voice(ts), t));
    CHECK(jb.stats().resyncs == 1);
    got = play(jb, t, 3);
    CHECK(got[0] == 4000000);
    CHECK(got[1] == 4000160);
    // Backwards too (timestamp wrap-around handled as a jump, not as "late").
    CHECK(jb.put(voice(100), t));
    CHECK(jb.stats().resyncs == 2);
    jb.reset();
    Frame f;
    CHECK(jb.get(t, f).result == JitterBuffer::Result::none);
}
