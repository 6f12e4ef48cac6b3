// Channel media on a real core: read/write translation (slin8 <-> ulaw through
// codec_g711 from the module directory), the bounded read queue, and a hangup
// ending a read at once.
// GCC 12 inlines Asio's recycling frame allocator into co_spawn of a
// coroutine returning a large value and then reports a new/delete mismatch
// that is not there (Asio pairs its own operator new and delete).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include "core_fixture.hpp"
#include "fake_driver.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <doctest/doctest.h>

#include <future>

using namespace tandem;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

using test::on_loop;

// Runs a coroutine on the channel's loop, bound to its hangup signal as the
// dialplan coroutine is.
template <class T, class Make>
std::future<T> spawn_on(std::shared_ptr<Channel> c, Make make) {
    auto p = std::make_shared<std::promise<T>>();
    auto fut = p->get_future();
    asio::post(c->loop(), [c, p, make]() mutable {
        asio::co_spawn(c->loop(), make(),
                       asio::bind_cancellation_slot(c->hangup_signal().slot(), [p](std::exception_ptr e, T v) {
                           if (e)
                               p->set_exception(e);
                           else
                               p->set_value(std::move(v));
                       }));
    });
    return fut;
}

Frame voice(Format f, std::size_t samples, std::int16_t value) {
    Frame fr;
    fr.kind = FrameKind::voice;
    fr.subclass = static_cast<std::uint32_t>(f);
    fr.samples = static_cast<std::uint32_t>(samples);
    if (f == Format::slin8) {
        std::vector<std::int16_t> pcm(samples, value);
        fr.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(pcm.data()), pcm.size() * 2));
    } else {
        std::vector<std::uint8_t> bytes(samples, static_cast<std::uint8_t>(value));
        fr.set_payload(bytes);
    }
    return fr;
}

std::int16_t first_sample(const Frame& f) {
    std::int16_t v = 0;
    std::memcpy(&v, f.payload().data(), 2);
    return v;
}

awaitable<bool> wait_once(std::shared_ptr<Channel> c) {
    EventWaiter w(c->loop());
    c->add_waiter(w);
    bool r = co_await w.wait(5s);
    c->remove_waiter(w);
    co_return r;
}

struct Fixture {
    test::TestCore t;
    Registration tech;
    Fixture() {
        tech = t.core->technologies().add("MediaTest", ChannelTechnology{"channel media tests", nullptr}, nullptr);
    }
    std::shared_ptr<Channel> make(std::shared_ptr<test::Recorded> rec, boost::asio::io_context& loop) {
        auto c = t.core->create_channel(
            "MediaTest", "MediaTest/x",
            std::make_unique<test::RecordingDriver>(rec, test::RecordingOptions{.voice_only = false}), loop);
        REQUIRE(c);
        return c;
    }
    void end(const std::shared_ptr<Channel>& c) {
        on_loop(*c, [&] { t.core->end_channel(c); });
    }
};

}  // namespace

TEST_CASE("channel media: write and read translate between the native and the application's formats") {
    Fixture fx;
    REQUIRE(fx.t.core->build_path(Format::slin8, Format::ulaw));  // codec_g711 is loaded
    auto rec = std::make_shared<test::Recorded>();
    auto c = fx.make(rec, fx.t.core->pick_loop());
    CHECK(c->native_format() == Format::slin8);
    CHECK(c->read_format() == Format::none);

    on_loop(*c, [&] {
        c->set_native_format(Format::ulaw);
        c->set_write_format(Format::slin8);
        c->write(voice(Format::slin8, 160, 1000));  // translated to ulaw
        c->write(voice(Format::ulaw, 160, 0x55));   // already native: as it is
        c->write(Frame::digit(FrameKind::dtmf_begin, '5'));
        c->write(Frame::digit(FrameKind::dtmf_end, '5', 120));
        c->send_text("hello");
    });
    REQUIRE(rec->frames.size() == 2);
    CHECK(rec->frames[0].subclass == static_cast<std::uint32_t>(Format::ulaw));
    CHECK(rec->frames[0].payload().size() == 160);
    CHECK(rec->frames[1].payload()[0] == 0x55);
    CHECK(rec->begun == "5");
    CHECK(rec->digits == "5");
    CHECK(rec->text == "hello");

    // The driver pushes ulaw; the application reads slin8 (G.711 round trip is close).
    auto encoded = rec->frames[0];
    on_loop(*c, [&] { c->set_read_format(Format::slin8); });
    auto got = spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(10ms); });
    CHECK_FALSE(got.get().has_value());  // a reader now exists; nothing queued yet
    on_loop(*c, [&] {
        c->on_frame(encoded);
        c->on_frame(Frame::digit(FrameKind::dtmf_end, '#', 100));
    });
    auto f1 = spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(1s); }).get();
    REQUIRE(f1);
    CHECK(f1->kind == FrameKind::voice);
    CHECK(f1->subclass == static_cast<std::uint32_t>(Format::slin8));
    CHECK(f1->payload().size() == 320);
    CHECK(std::abs(first_sample(*f1) - 1000) < 40);
    auto f2 = spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(1s); }).get();
    REQUIRE(f2);
    CHECK(f2->kind == FrameKind::dtmf_end);
    CHECK(f2->subclass == '#');

    // Read format none: native frames as they came.
    on_loop(*c, [&] {
        c->set_read_format(Format::none);
        c->on_frame(encoded);
    });
    auto f3 = spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(1s); }).get();
    REQUIRE(f3);
    CHECK(f3->subclass == static_cast<std::uint32_t>(Format::ulaw));
    fx.end(c);
}

TEST_CASE("channel media: frames queue only once a reader exists, voice is bounded, digits are kept") {
    Fixture fx;
    auto c = fx.make(std::make_shared<test::Recorded>(), fx.t.core->pick_loop());
    // Nobody reads yet: nothing is kept (an idle channel allocates no queue).
    on_loop(*c, [&] {
        for (int i = 0; i < 5; ++i) c->on_frame(voice(Format::slin8, 160, static_cast<std::int16_t>(i)));
    });
    CHECK_FALSE(spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(0ms); }).get());

    on_loop(*c, [&] {
        for (int i = 0; i < 30; ++i) {
            c->on_frame(voice(Format::slin8, 160, static_cast<std::int16_t>(i)));
            if (i % 10 == 0) c->on_frame(Frame::digit(FrameKind::dtmf_end, static_cast<char>('0' + i / 10)));
        }
        c->on_indication(Indication::hold);
    });
    std::vector<Frame> got;
    for (;;) {
        auto f = spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(0ms); }).get();
        if (!f) break;
        got.push_back(*f);
    }
    std::string digits;
    std::vector<int> samples;
    for (auto& f : got) {
        if (f.kind == FrameKind::dtmf_end) digits += static_cast<char>(f.subclass);
        if (f.kind == FrameKind::voice) samples.push_back(first_sample(f));
    }
    CHECK(digits == "012");
    REQUIRE(samples.size() == Channel::max_queued_voice);
    CHECK(samples.front() == 30 - static_cast<int>(Channel::max_queued_voice));  // the newest audio survives
    CHECK(samples.back() == 29);
    CHECK(c->dropped_frames() == 30 - Channel::max_queued_voice);
    fx.end(c);
}

TEST_CASE("channel media: a hangup ends a pending read at once") {
    Fixture fx;
    auto c = fx.make(std::make_shared<test::Recorded>(), fx.t.core->pick_loop());
    auto started = std::chrono::steady_clock::now();
    auto pending = spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(30s); });
    std::this_thread::sleep_for(50ms);
    c->request_hangup(cause::normal_clearing);
    REQUIRE(pending.wait_for(2s) == std::future_status::ready);
    CHECK_FALSE(pending.get().has_value());
    CHECK(std::chrono::steady_clock::now() - started < 2s);
    CHECK(c->hungup());
    // And after the hangup a read returns at once.
    CHECK_FALSE(spawn_on<std::optional<Frame>>(c, [c] { return c->read_frame(30s); }).get());
    fx.end(c);
}

TEST_CASE("channel media: audio taps count and wake waiters") {
    Fixture fx;
    auto c = fx.make(std::make_shared<test::Recorded>(), fx.t.core->pick_loop());
    auto woke = spawn_on<bool>(c, [c] { return wait_once(c); });
    std::this_thread::sleep_for(20ms);
    on_loop(*c, [&] { c->add_audio_tap(); });
    REQUIRE(woke.wait_for(2s) == std::future_status::ready);
    CHECK(woke.get());
    on_loop(*c, [&] {
        CHECK(c->audio_tapped());
        c->add_audio_tap();
        c->remove_audio_tap();
        CHECK(c->audio_tapped());
        c->remove_audio_tap();
        CHECK_FALSE(c->audio_tapped());
        c->remove_audio_tap();  // unbalanced: stays at zero
        CHECK_FALSE(c->audio_tapped());
    });
    fx.end(c);
}
