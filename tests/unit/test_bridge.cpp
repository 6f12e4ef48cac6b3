// The two-party bridge on a real core, with channels of a test technology:
// voice (translated), DTMF, text and indications both ways, the end on either
// hangup or the duration limit, the refusal of channels on two loops, and the
// RTP relay decision with fake RtpSessions.
#include "core_fixture.hpp"
#include "fake_driver.hpp"

#include <tandem/bridge.hpp>
#include <tandem/rtp.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <doctest/doctest.h>

#include <future>

using namespace tandem;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// A stand-in RTP session: it records relay_to() calls; can_relay_to() answers
// what the test says.
class FakeRtp final : public RtpSession {
public:
    explicit FakeRtp(asio::io_context& loop) : loop_(loop) {}
    bool relay_ok = true;
    RtpSession* peer = nullptr;
    int relay_calls = 0;

    bool can_relay_to(const RtpSession&) const override { return relay_ok; }
    void relay_to(RtpSession* p) override {
        peer = p;
        ++relay_calls;
    }
    asio::io_context& loop() const override { return loop_; }
    const std::string& name() const override { return name_; }
    asio::ip::address local_address() const override { return {}; }
    std::uint16_t local_port() const override { return 0; }
    void set_remote(const asio::ip::address&, std::uint16_t) override {}
    void set_remote_rtcp(const asio::ip::address&, std::uint16_t) override {}
    std::pair<asio::ip::address, std::uint16_t> remote() const override { return {}; }
    void map_payload(std::uint8_t, Format) override {}
    void clear_payloads() override {}
    void set_dtmf_payload(int, int, std::uint32_t) override {}
    void set_send_format(Format, std::uint8_t, std::uint32_t) override {}
    Format send_format() const override { return Format::ulaw; }
    Format receive_format() const override { return Format::ulaw; }
    void set_frame_handler(std::function<void(const Frame&)>) override {}
    bool write(const Frame&) override { return true; }
    bool send_dtmf_begin(char) override { return true; }
    bool send_dtmf_end(char, std::uint32_t) override { return true; }
    bool set_srtp(const SrtpCrypto&, const SrtpCrypto&) override { return false; }
    bool srtp_active() const override { return false; }
    RtpStats stats() const override { return {}; }
    void send_rtcp_report() override {}
    void close() override {}
    bool closed() const override { return false; }
    bool move_to(boost::asio::io_context&) override { return false; }

private:
    asio::io_context& loop_;
    std::string name_ = "fake";
};

using test::on_loop;

// Runs bridge(a, b) as a's dialplan would: on a's loop, bound to its hangup signal.
std::future<BridgeEnd> start_bridge(std::shared_ptr<Channel> a, std::shared_ptr<Channel> b, BridgeOptions o = {}) {
    auto p = std::make_shared<std::promise<BridgeEnd>>();
    auto fut = p->get_future();
    asio::post(a->loop(), [a, b, p, o] {
        asio::co_spawn(
            a->loop(), bridge(*a, *b, o),
            asio::bind_cancellation_slot(a->hangup_signal().slot(), [p, a, b](std::exception_ptr e, BridgeEnd r) {
                if (e)
                    p->set_exception(e);
                else
                    p->set_value(r);
            }));
    });
    return fut;
}

Frame slin(std::int16_t value) {
    Frame f;
    f.kind = FrameKind::voice;
    f.subclass = static_cast<std::uint32_t>(Format::slin8);
    f.samples = 160;
    std::vector<std::int16_t> pcm(160, value);
    f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(pcm.data()), pcm.size() * 2));
    return f;
}

struct Fixture {
    test::TestCore t;
    Registration tech;
    std::shared_ptr<test::Recorded> ra = std::make_shared<test::Recorded>(), rb = std::make_shared<test::Recorded>();
    std::shared_ptr<Channel> a, b;
    explicit Fixture(bool same_loop = true) {
        tech = t.core->technologies().add("BridgeTest", ChannelTechnology{"bridge tests", nullptr}, nullptr);
        auto& l1 = t.core->loop(0);
        auto& l2 = same_loop ? l1 : t.core->loop(1);
        // Every frame kept; hold taken by the driver, so the core plays no
        // music on hold here (test_moh.cpp does).
        const test::RecordingOptions o{.voice_only = false, .handles_hold = true};
        a = t.core->create_channel("BridgeTest", "BridgeTest/a", std::make_unique<test::RecordingDriver>(ra, o), l1);
        b = t.core->create_channel("BridgeTest", "BridgeTest/b", std::make_unique<test::RecordingDriver>(rb, o), l2);
        REQUIRE(a);
        REQUIRE(b);
    }
    ~Fixture() {
        for (auto& c : {a, b}) on_loop(*c, [&] { t.core->end_channel(c); });
    }
    // Lets the bridge coroutine run what was posted before.
    void settle() {
        on_loop(*a, [] {});
        on_loop(*a, [] {});
    }
};

}  // namespace

TEST_CASE("bridge: voice, digits, text and indications cross both ways; a hangup of b ends it") {
    Fixture fx;
    REQUIRE(fx.t.core->build_path(Format::slin8, Format::ulaw));
    on_loop(*fx.b, [&] { fx.b->set_native_format(Format::ulaw); });
    auto done = start_bridge(fx.a, fx.b);
    fx.settle();
    on_loop(*fx.a, [&] {
        CHECK(fx.a->peer_name() == fx.b->name());
        CHECK(fx.b->peer_name() == fx.a->name());
        fx.a->on_frame(slin(1000));  // slin8 -> ulaw on its way to b
        fx.a->on_frame(Frame::digit(FrameKind::dtmf_begin, '7'));
        fx.a->on_frame(Frame::digit(FrameKind::dtmf_end, '7', 100));
        fx.a->on_indication(Indication::hold);
        fx.a->on_indication(Indication::answer);  // not something to pass on

        Frame ul;
        ul.kind = FrameKind::voice;
        ul.subclass = static_cast<std::uint32_t>(Format::ulaw);
        ul.samples = 160;
        std::vector<std::uint8_t> bytes(160, 0xff);
        ul.set_payload(bytes);
        fx.b->on_frame(ul);  // ulaw -> slin8 on its way to a
        fx.b->on_frame(Frame::digit(FrameKind::dtmf_end, '*', 100));
        fx.b->on_indication(Indication::unhold);
        Frame txt;
        txt.kind = FrameKind::text;
        std::string_view hi = "hi";
        txt.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(hi.data()), hi.size()));
        fx.b->on_frame(txt);
    });
    on_loop(*fx.a, [&] {
        REQUIRE(fx.rb->frames.size() == 1);
        CHECK(fx.rb->frames[0].subclass == static_cast<std::uint32_t>(Format::ulaw));
        CHECK(fx.rb->frames[0].payload().size() == 160);
        CHECK(fx.rb->begun == "7");
        CHECK(fx.rb->digits == "7");
        REQUIRE(fx.rb->indications.size() == 1);
        CHECK(fx.rb->indications[0] == Indication::hold);

        REQUIRE(fx.ra->frames.size() == 1);
        CHECK(fx.ra->frames[0].subclass == static_cast<std::uint32_t>(Format::slin8));
        CHECK(fx.ra->frames[0].payload().size() == 320);
        CHECK(fx.ra->digits == "*");
        CHECK(fx.ra->text == "hi");
        REQUIRE(fx.ra->indications.size() == 1);
        CHECK(fx.ra->indications[0] == Indication::unhold);
    });
    CHECK(done.wait_for(50ms) == std::future_status::timeout);
    on_loop(*fx.b, [&] { fx.b->on_hangup(cause::user_busy); });
    REQUIRE(done.wait_for(2s) == std::future_status::ready);
    CHECK(done.get() == BridgeEnd::b_hungup);
    // Detached: frames no longer cross.
    on_loop(*fx.a, [&] { fx.a->on_frame(slin(5)); });
    on_loop(*fx.a, [&] { CHECK(fx.rb->frames.size() == 1); });
}

TEST_CASE("bridge: a hangup of the awaiting channel ends it at once") {
    Fixture fx;
    auto done = start_bridge(fx.a, fx.b);
    fx.settle();
    fx.a->request_hangup(cause::normal_clearing);
    REQUIRE(done.wait_for(2s) == std::future_status::ready);
    CHECK(done.get() == BridgeEnd::a_hungup);
}

TEST_CASE("bridge: the duration limit ends it") {
    Fixture fx;
    auto start = std::chrono::steady_clock::now();
    BridgeOptions o;
    o.limit = 200ms;
    auto done = start_bridge(fx.a, fx.b, o);
    REQUIRE(done.wait_for(3s) == std::future_status::ready);
    CHECK(done.get() == BridgeEnd::limit);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 200ms);
    CHECK(took < 2s);
}

TEST_CASE("bridge: channels on two loops are refused") {
    Fixture fx(false);
    REQUIRE(&fx.a->loop() != &fx.b->loop());
    auto done = start_bridge(fx.a, fx.b);
    REQUIRE(done.wait_for(2s) == std::future_status::ready);
    CHECK(done.get() == BridgeEnd::failed);
}

TEST_CASE("bridge: RTP relay engaged when both sessions agree, released on a tap and at the end") {
    Fixture fx;
    FakeRtp sa(fx.a->loop()), sb(fx.a->loop());
    fx.ra->rtp = &sa;
    fx.rb->rtp = &sb;
    auto done = start_bridge(fx.a, fx.b);
    fx.settle();
    on_loop(*fx.a, [&] {
        CHECK(sa.peer == &sb);
        CHECK(sb.peer == &sa);
        // Relayed: voice that still reaches the bridge is not sent twice; digits are.
        fx.a->on_frame(slin(1));
        fx.a->on_frame(Frame::digit(FrameKind::dtmf_end, '1', 100));
        CHECK(fx.rb->frames.empty());
        CHECK(fx.rb->digits == "1");
        fx.b->add_audio_tap();  // e.g. a recording starts
    });
    fx.settle();
    on_loop(*fx.a, [&] {
        CHECK(sa.peer == nullptr);
        CHECK(sb.peer == nullptr);
        fx.a->on_frame(slin(2));  // decoded path again
        CHECK(fx.rb->frames.size() == 1);
        fx.b->remove_audio_tap();
    });
    fx.settle();
    on_loop(*fx.a, [&] {
        CHECK(sa.peer == &sb);
        CHECK(sb.peer == &sa);
    });
    on_loop(*fx.b, [&] { fx.b->on_hangup(cause::normal_clearing); });
    REQUIRE(done.wait_for(2s) == std::future_status::ready);
    CHECK(done.get() == BridgeEnd::b_hungup);
    on_loop(*fx.a, [&] {
        CHECK(sa.peer == nullptr);
        CHECK(sb.peer == nullptr);
        CHECK(sa.relay_calls == 4);  // on, off (tap), on, off (end)
    });
}

TEST_CASE("bridge: no relay when one direction cannot relay or the option forbids it") {
    Fixture fx;
    FakeRtp sa(fx.a->loop()), sb(fx.a->loop());
    sb.relay_ok = false;
    fx.ra->rtp = &sa;
    fx.rb->rtp = &sb;
    auto done = start_bridge(fx.a, fx.b);
    fx.settle();
    on_loop(*fx.a, [&] {
        CHECK(sa.relay_calls == 0);
        CHECK(sb.relay_calls == 0);
        fx.a->on_frame(slin(1));
        CHECK(fx.rb->frames.size() == 1);
    });
    fx.a->request_hangup();
    REQUIRE(done.wait_for(2s) == std::future_status::ready);

    Fixture fx2;
    FakeRtp s1(fx2.a->loop()), s2(fx2.a->loop());
    fx2.ra->rtp = &s1;
    fx2.rb->rtp = &s2;
    BridgeOptions o;
    o.allow_relay = false;
    auto done2 = start_bridge(fx2.a, fx2.b, o);
    fx2.settle();
    on_loop(*fx2.a, [&] { CHECK(s1.relay_calls == 0); });
    fx2.a->request_hangup();
    REQUIRE(done2.wait_for(2s) == std::future_status::ready);
}
