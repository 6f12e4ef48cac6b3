// Core::redirect, the transfer primitive: a redirect ends the bridge of the
// leg it targets (BridgeEnd::a_/b_redirected) and stays on the channel for
// whoever runs it to take; the redirected leg wins over a hangup of the other
// (a transferer may hang up at once); a hung-up channel is not redirected.
#include "core_fixture.hpp"

#include <tandem/bridge.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <doctest/doctest.h>

#include <future>

using namespace tandem;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

struct SilentDriver final : ChannelDriver {};

struct Pair {
    test::TestCore t;
    Registration tech;
    std::shared_ptr<Channel> a, b;
    Pair() {
        tech = t.core->technologies().add("RedirectTest", ChannelTechnology{"redirect tests", nullptr}, nullptr);
        auto& loop = t.core->loop(0);
        a = t.core->create_channel("RedirectTest", "RedirectTest/a", std::make_unique<SilentDriver>(), loop);
        b = t.core->create_channel("RedirectTest", "RedirectTest/b", std::make_unique<SilentDriver>(), loop);
        REQUIRE(a);
        REQUIRE(b);
    }
    ~Pair() {
        for (auto& c : {a, b}) test::on_loop(*c, [&] { t.core->end_channel(c); });
    }
    std::future<BridgeEnd> bridged() {
        auto p = std::make_shared<std::promise<BridgeEnd>>();
        auto f = p->get_future();
        asio::post(a->loop(), [this, p] {
            asio::co_spawn(
                a->loop(), bridge(*a, *b),
                asio::bind_cancellation_slot(a->hangup_signal().slot(), [p](std::exception_ptr e, BridgeEnd r) {
                    if (e)
                        p->set_exception(e);
                    else
                        p->set_value(r);
                }));
        });
        test::on_loop(*a, [] {});
        return f;
    }
};

}  // namespace

TEST_CASE("redirect: ends the bridge of the redirected leg and waits there to be taken") {
    Pair p;
    auto end = p.bridged();
    CHECK(end.wait_for(50ms) == std::future_status::timeout);
    p.t.core->redirect(p.b, Channel::Redirect{"phones", "1003", 1, nullptr});
    REQUIRE(end.wait_for(2s) == std::future_status::ready);
    CHECK(end.get() == BridgeEnd::b_redirected);
    test::on_loop(*p.b, [&] {
        CHECK(p.b->redirect_pending());
        auto r = p.b->take_redirect();
        REQUIRE(r);
        CHECK(r->context == "phones");
        CHECK(r->exten == "1003");
        CHECK(r->priority == 1);
        CHECK_FALSE(r->bridge_to);
        CHECK_FALSE(p.b->redirect_pending());
        CHECK_FALSE(p.b->take_redirect());
    });
}

TEST_CASE("redirect: the awaiting leg too, with a channel to bridge to") {
    Pair p;
    auto end = p.bridged();
    p.t.core->redirect(p.a, Channel::Redirect{{}, {}, 1, p.b});
    REQUIRE(end.wait_for(2s) == std::future_status::ready);
    CHECK(end.get() == BridgeEnd::a_redirected);
    test::on_loop(*p.a, [&] {
        auto r = p.a->take_redirect();
        REQUIRE(r);
        CHECK(r->bridge_to == p.b);
    });
}

TEST_CASE("redirect: the transferee goes on even when the transferer hangs up at once") {
    Pair p;
    auto end = p.bridged();
    test::on_loop(*p.a, [&] {
        p.b->set_redirect(Channel::Redirect{"ctx", "200", 1, nullptr});
        p.a->on_hangup(cause::normal_clearing);
    });
    REQUIRE(end.wait_for(2s) == std::future_status::ready);
    CHECK(end.get() == BridgeEnd::b_redirected);
}

TEST_CASE("redirect: a channel already hung up is left alone; ending one drops its redirect") {
    Pair p;
    test::on_loop(*p.b, [&] { p.b->on_hangup(cause::normal_clearing); });
    p.t.core->redirect(p.b, Channel::Redirect{"ctx", "200", 1, nullptr});
    test::on_loop(*p.b, [] {});
    test::on_loop(*p.b, [&] { CHECK_FALSE(p.b->redirect_pending()); });
    test::on_loop(*p.a, [&] {
        p.a->set_redirect(Channel::Redirect{{}, {}, 1, p.b});
        p.t.core->end_channel(p.a);
        CHECK_FALSE(p.a->redirect_pending());
    });
}
