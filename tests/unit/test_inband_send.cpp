// In-band DTMF sending (chan_sip, dtmfmode=inband): digits become dual tones
// at a 20 ms pace in the channel's native format, the channel is audio-tapped
// while they play, and queued digits follow each other.
#include "../../apps/app_tones/tones.hpp"
#include "chan_sip/inband_dtmf.hpp"
#include "core_fixture.hpp"
#include "fake_driver.hpp"

#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <cstring>
#include <future>
#include <mutex>
#include <utility>

using namespace tandem;
using namespace std::chrono_literals;

namespace {

using test::on_loop;

std::vector<std::int16_t> pcm(const std::vector<Frame>& frames, std::size_t from, std::size_t to) {
    std::vector<std::int16_t> out;
    for (std::size_t i = from; i < to && i < frames.size(); ++i) {
        auto p = frames[i].payload();
        auto at = out.size();
        out.resize(at + p.size() / 2);
        std::memcpy(out.data() + at, p.data(), p.size() / 2 * 2);
    }
    return out;
}

}  // namespace

TEST_CASE("inband dtmf: a digit is its two tones, 20 ms frames, audio-tapped while playing") {
    test::TestCore tc;
    auto chan =
        tc.core->create_channel("Trace", "Trace/inband", std::make_unique<test::NullDriver>(), tc.core->pick_loop());
    REQUIRE(chan);
    auto sent = std::make_shared<test::Recorded>();
    std::unique_ptr<sip::InbandDtmfSender> tx;
    on_loop(*chan, [&] {
        chan->set_native_format(Format::slin8);
        tx = std::make_unique<sip::InbandDtmfSender>(*chan, [sent](const Frame& f) { sent->record(f); });
        tx->send('5', 200ms);
        tx->send('#', 100ms);
        tx->send('x', 100ms);  // not a digit: ignored
    });
    CHECK(on_loop(*chan, [&] { return chan->audio_tapped() && tx->sending(); }));
    // '5': 200 ms + 50 ms gap; '#': 100 ms + 50 ms gap = 400 ms, 20 frames.
    REQUIRE(tc.wait_for([&] { return !on_loop(*chan, [&] { return tx->sending(); }); }, 3s));
    CHECK_FALSE(on_loop(*chan, [&] { return chan->audio_tapped(); }));
    std::lock_guard l(sent->mu);
    auto& fr = sent->frames;
    CHECK(fr.size() >= 19);
    CHECK(fr.size() <= 21);
    for (auto& f : fr) {
        CHECK(f.kind == FrameKind::voice);
        CHECK(f.subclass == static_cast<std::uint32_t>(Format::slin8));
        CHECK(f.payload().size() == 320);
    }
    // Paced, not burst: the frames span about 400 ms.
    auto span = sent->times.back() - sent->times.front();
    CHECK(span > 300ms);
    CHECK(span < 600ms);
    // '5' is 770 + 1336 Hz; '#' is 941 + 1477 Hz.
    auto five = pcm(fr, 1, 9);
    CHECK(tones::goertzel(five.data(), five.size(), 770, 8000) >
          100 * tones::goertzel(five.data(), five.size(), 941, 8000));
    CHECK(tones::goertzel(five.data(), five.size(), 1336, 8000) >
          100 * tones::goertzel(five.data(), five.size(), 1477, 8000));
    auto hash = pcm(fr, 14, 17);
    CHECK(tones::goertzel(hash.data(), hash.size(), 941, 8000) >
          100 * tones::goertzel(hash.data(), hash.size(), 770, 8000));
    CHECK(tones::goertzel(hash.data(), hash.size(), 1477, 8000) >
          100 * tones::goertzel(hash.data(), hash.size(), 1336, 8000));
    // The gap between the digits is silence.
    auto gap = pcm(fr, 11, 12);
    long long energy = 0;
    for (auto v : gap) energy += std::abs(v);
    CHECK(energy == 0);
    on_loop(*chan, [&] { tx.reset(); });
    on_loop(*chan, [&] { tc.core->end_channel(chan); });
}

TEST_CASE("inband dtmf: tones are encoded to the native format; destroying mid-digit untaps") {
    test::TestCore tc;
    auto chan =
        tc.core->create_channel("Trace", "Trace/inband", std::make_unique<test::NullDriver>(), tc.core->pick_loop());
    REQUIRE(chan);
    auto sent = std::make_shared<test::Recorded>();
    std::unique_ptr<sip::InbandDtmfSender> tx;
    on_loop(*chan, [&] {
        chan->set_native_format(Format::ulaw);
        tx = std::make_unique<sip::InbandDtmfSender>(*chan, [sent](const Frame& f) { sent->record(f); });
        tx->send('1', 1000ms);
    });
    REQUIRE(tc.wait_for([&] { return sent->count() >= 3; }, 2s));
    auto [tapped_before, tapped_after] = on_loop(*chan, [&] {
        bool before = chan->audio_tapped();
        tx.reset();
        return std::pair(before, chan->audio_tapped());
    });
    CHECK(tapped_before);
    CHECK_FALSE(tapped_after);
    std::this_thread::sleep_for(100ms);
    auto n = sent->count();
    std::this_thread::sleep_for(100ms);
    CHECK(sent->count() == n);  // nothing after destruction
    std::lock_guard l(sent->mu);
    for (auto& f : sent->frames) {
        CHECK(f.subclass == static_cast<std::uint32_t>(Format::ulaw));
        CHECK(f.payload().size() == 160);
    }
    on_loop(*chan, [&] { tc.core->end_channel(chan); });
}
