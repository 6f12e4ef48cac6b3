// Dial() on a real core with Local channels: first answer wins and the others
// get cause 26, BUSY, NOANSWER on timeout, CANCEL when the caller leaves,
// CHANUNAVAIL for an unknown technology, ringing with `r`, `g` continuing,
// inheritance of variables and caller id, and media across the bridge.
#include "core_fixture.hpp"

#include <boost/asio/post.hpp>

#include <doctest/doctest.h>

#include <future>
#include <map>
#include <mutex>

using namespace tandem;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

struct Seen {
    std::mutex mu;
    std::vector<Indication> indications;
    std::vector<Frame> written;
    std::map<std::string, int> left, joined;  // loop moves, by channel name
};

struct CallerDriver final : ChannelDriver {
    explicit CallerDriver(std::shared_ptr<Seen> s, bool movable = true) : seen(std::move(s)), movable(movable) {}
    bool can_move(const Channel&) const override { return movable; }
    void leave_loop(Channel& c, boost::asio::io_context&) override {
        CHECK(c.loop().get_executor().running_in_this_thread());
        std::lock_guard lock(seen->mu);
        ++seen->left[c.name()];
    }
    void join_loop(Channel& c) override {
        CHECK(c.loop().get_executor().running_in_this_thread());
        std::lock_guard lock(seen->mu);
        ++seen->joined[c.name()];
    }
    void indicate(Channel&, Indication i) override {
        std::lock_guard lock(seen->mu);
        seen->indications.push_back(i);
    }
    void write(Channel&, const Frame& f) override {
        std::lock_guard lock(seen->mu);
        seen->written.push_back(f);
    }
    std::shared_ptr<Seen> seen;
    bool movable;
};

const char* plan = R"(
[globals]
[caller]
exten => s,1,Set(__INHERITED=deep)
 same => n,Set(_ONCE=one)
 same => n,Dial(${DEST},${TIMEOUT},${OPTS})
 same => n,Set(AFTER=${DIALSTATUS})
exten => h,1,Set(HSTATUS=${DIALSTATUS})

[fast]
exten => s,1,Set(GLOBAL(FAST_INH)=${INHERITED}/${ONCE}/${CALLERID(num)})
 same => n,Answer()
 same => n,Wait(0.3)
 same => n,Hangup()

[slow]
exten => s,1,Ringing()
 same => n,Wait(5)
 same => n,Answer()
 same => n,Wait(5)
exten => h,1,Set(GLOBAL(SLOW_CAUSE)=${HANGUPCAUSE})

[busy]
exten => s,1,Busy(10)

[long]
exten => s,1,Answer()
 same => n,Wait(30)

[ring]
exten => s,1,Ringing()
 same => n,Wait(30)
exten => h,1,Set(GLOBAL(RING_H)=ran)

[hops]
exten => s,1,Set(GLOBAL(HOPS_SEEN)=${MAX_FORWARDS()})
 same => n,Set(MAX_FORWARDS()=256)
 same => n,Set(MAX_FORWARDS()=ten)
 same => n,Set(GLOBAL(HOPS_BAD)=${MAX_FORWARDS()})
 same => n,Set(MAX_FORWARDS()=12)
 same => n,Set(GLOBAL(HOPS_SET)=${MAX_FORWARDS()})
 same => n,Answer()
 same => n,Wait(0.2)
 same => n,Hangup()
)";

struct Result {
    std::map<std::string, std::string> vars;
    int cause = 0;
    std::chrono::milliseconds took{0};
};

struct DialFixture {
    test::TestCore t{plan};
    Registration tech;
    std::shared_ptr<Seen> seen = std::make_shared<Seen>();
    DialFixture() { tech = t.core->technologies().add("DialTest", ChannelTechnology{"Dial tests", nullptr}, nullptr); }

    std::shared_ptr<Channel> start(const std::string& dest, const std::string& timeout, const std::string& opts,
                                   std::shared_ptr<Result> out, int hops = default_max_forwards) {
        auto chan = t.core->create_channel("DialTest", "DialTest/caller", std::make_unique<CallerDriver>(seen),
                                           t.core->pick_loop());
        REQUIRE(chan);
        chan->set_max_forwards(hops);
        chan->caller().number = "5551234";
        chan->set_variable("DEST", dest);
        chan->set_variable("TIMEOUT", timeout);
        chan->set_variable("OPTS", opts);
        chan->set_position("caller", "s", 1);
        auto uid = chan->uniqueid();
        auto mu = std::make_shared<std::mutex>();
        sub = t.core->events().subscribe([out, mu, uid](const Event& e) {
            if (auto* v = std::get_if<event::VariableSet>(&e); v && v->uniqueid == uid) {
                std::lock_guard lock(*mu);
                out->vars[v->name] = v->value;
            }
        });
        started = std::chrono::steady_clock::now();
        t.core->start_pbx(chan);
        return chan;
    }

    void finish(const std::shared_ptr<Channel>& chan, std::shared_ptr<Result> out, std::chrono::seconds limit = 15s) {
        REQUIRE(t.wait_for([&] { return chan->finished(); }, limit));
        out->took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
        out->cause = chan->hangup_cause();
        // Every leg, Local halves included, is gone at the end.
        CHECK(t.wait_for([&] { return t.core->channel_count() == 0; }, 15s));
        sub = {};
    }

    Result run(const std::string& dest, const std::string& timeout = "", const std::string& opts = "",
               int hops = default_max_forwards) {
        auto out = std::make_shared<Result>();
        auto chan = start(dest, timeout, opts, out, hops);
        finish(chan, out);
        return *out;
    }

    std::string global(const std::string& name) { return t.core->global_variable(name).value_or(""); }

    Registration sub;
    std::chrono::steady_clock::time_point started;
};

}  // namespace

TEST_CASE("Dial: the first to answer wins, the other leg is hung up with cause 26") {
    DialFixture fx;
    auto r = fx.run("Local/s@slow&Local/s@fast", "20", "g");
    CHECK(r.vars["DIALSTATUS"] == "ANSWER");
    CHECK(r.vars["AFTER"] == "ANSWER");  // g: the caller continued after the callee hung up
    CHECK(r.vars["DIALEDPEERNAME"].find("Local/s@fast") == 0);
    CHECK(r.vars["ANSWEREDTIME"] == "0");
    CHECK(r.vars.count("DIALEDTIME"));
    CHECK(fx.t.wait_for([&] { return fx.global("SLOW_CAUSE") == "26"; }));
    // Outgoing channels inherited __ and _ variables (one generation) and the caller id.
    CHECK(fx.global("FAST_INH") == "deep/one/5551234");
    CHECK(r.took < 3s);
}

TEST_CASE("Dial: without g the call ends with the bridge; with r the caller hears ringing from us") {
    DialFixture fx;
    auto r = fx.run("Local/s@fast", "10", "r");
    CHECK(r.vars["DIALSTATUS"] == "ANSWER");
    CHECK(r.vars.count("AFTER") == 0);
    CHECK(r.vars["HSTATUS"] == "ANSWER");
    std::lock_guard lock(fx.seen->mu);
    REQUIRE_FALSE(fx.seen->indications.empty());
    CHECK(fx.seen->indications.front() == Indication::ringing);
}

TEST_CASE("Dial: a busy callee gives BUSY and cause 17") {
    DialFixture fx;
    auto r = fx.run("Local/s@busy", "10");
    CHECK(r.vars["DIALSTATUS"] == "BUSY");
    CHECK(r.vars["HANGUPCAUSE"] == "17");
    CHECK(r.vars["AFTER"] == "BUSY");
    CHECK(r.took < 3s);
}

TEST_CASE("Dial: nobody answers before the timeout gives NOANSWER; ringing reaches the caller") {
    DialFixture fx;
    auto r = fx.run("Local/s@ring", "1");
    CHECK(r.vars["DIALSTATUS"] == "NOANSWER");
    CHECK(r.vars["AFTER"] == "NOANSWER");
    CHECK(r.took >= 1s);
    CHECK(r.took < 4s);
    CHECK(fx.t.wait_for([&] { return fx.global("RING_H") == "ran"; }));
    std::lock_guard lock(fx.seen->mu);
    CHECK(std::find(fx.seen->indications.begin(), fx.seen->indications.end(), Indication::ringing) !=
          fx.seen->indications.end());
}

TEST_CASE("Dial: the caller hanging up while it rings cancels every leg") {
    DialFixture fx;
    auto out = std::make_shared<Result>();
    auto chan = fx.start("Local/s@ring&Local/s@slow", "30", "", out);
    CHECK(fx.t.wait_for([&] { return fx.t.core->channel_count() == 5; }));
    std::this_thread::sleep_for(100ms);
    chan->request_hangup(cause::normal_clearing);
    fx.finish(chan, out, 5s);
    CHECK(out->vars["DIALSTATUS"] == "CANCEL");
    CHECK(out->vars["HSTATUS"] == "CANCEL");
    CHECK(out->vars.count("AFTER") == 0);
    CHECK(out->took < 3s);
    CHECK(fx.t.wait_for([&] { return fx.global("RING_H") == "ran"; }));
}

TEST_CASE("Dial: an unknown technology gives CHANUNAVAIL; one good leg among bad ones still rings") {
    DialFixture fx;
    auto r = fx.run("Nope/1234", "5");
    CHECK(r.vars["DIALSTATUS"] == "CHANUNAVAIL");
    CHECK(r.vars["HANGUPCAUSE"] == std::to_string(cause::requested_chan_unavail));
    CHECK(r.vars["AFTER"] == "CHANUNAVAIL");

    auto r2 = fx.run("Nope/1&Local/s@fast", "5", "g");
    CHECK(r2.vars["DIALSTATUS"] == "ANSWER");
}

TEST_CASE("Dial: the callee gets one hop less; with none left Dial refuses, CHANUNAVAIL and cause 25") {
    DialFixture fx;
    auto r = fx.run("Local/s@hops", "5", "", 7);
    CHECK(r.vars["DIALSTATUS"] == "ANSWER");
    CHECK(fx.global("HOPS_SEEN") == "6");
    // Out-of-range and non-numeric values are refused; the budget stays.
    CHECK(fx.global("HOPS_BAD") == "6");
    CHECK(fx.global("HOPS_SET") == "12");

    auto r0 = fx.run("Local/s@hops", "5", "", 0);
    CHECK(r0.vars["DIALSTATUS"] == "CHANUNAVAIL");
    CHECK(r0.vars["HANGUPCAUSE"] == std::to_string(cause::exchange_routing_error));
    CHECK(r0.cause == cause::exchange_routing_error);
}

TEST_CASE("Dial: voice crosses the bridge through Local channels") {
    DialFixture fx;
    // What the dialplan half of the Local pair writes reaches the caller
    // through the other half and the bridge.
    std::ofstream(fx.t.dir / "etc" / "extensions.conf") << plan << R"(
[talk]
exten => s,1,Answer()
 same => n,Wait(3)
)";
    std::vector<std::string> problems;
    REQUIRE(fx.t.core->reload_dialplan(problems));
    auto out = std::make_shared<Result>();
    auto chan = fx.start("Local/s@talk", "5", "", out);
    std::shared_ptr<Channel> two;
    REQUIRE(fx.t.wait_for([&] {
        for (auto& c : fx.t.core->channels())
            if (c->name().find("Local/s@talk") == 0 && c->last_app() == "Wait") two = c;
        return two && chan->state() == ChannelState::up;
    }));
    std::this_thread::sleep_for(50ms);
    std::promise<void> done;
    asio::post(two->loop(), [&] {
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::slin8);
        f.samples = 160;
        std::vector<std::uint8_t> pcm(320, 7);
        f.set_payload(pcm);
        two->write(f);
        done.set_value();
    });
    done.get_future().get();
    CHECK(fx.t.wait_for(
        [&] {
            std::lock_guard lock(fx.seen->mu);
            return !fx.seen->written.empty();
        },
        2s));
    chan->request_hangup();
    fx.finish(chan, out);
}

TEST_CASE("Dial: progress and early media reach the caller while it rings; ringing once") {
    DialFixture fx;
    auto out = std::make_shared<Result>();
    auto chan = fx.start("Local/s@ring&Local/s@slow", "10", "", out);
    std::vector<std::shared_ptr<Channel>> dialplan_halves;
    REQUIRE(fx.t.wait_for([&] {
        dialplan_halves.clear();
        for (auto& c : fx.t.core->channels())
            if (c->name().find("Local/") == 0 && c->last_app() == "Wait") dialplan_halves.push_back(c);
        return dialplan_halves.size() == 2;
    }));
    std::promise<void> done;
    asio::post(chan->loop(), [&] {
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::slin8);
        f.samples = 160;
        std::vector<std::uint8_t> pcm(320, 3);
        f.set_payload(pcm);
        for (auto& two : dialplan_halves) {
            two->indicate(Indication::progress);
            two->write(f);  // only the first leg's early media is passed on
        }
        done.set_value();
    });
    done.get_future().get();
    CHECK(fx.t.wait_for([&] {
        std::lock_guard lock(fx.seen->mu);
        return fx.seen->written.size() == 1;
    }));
    chan->request_hangup();
    fx.finish(chan, out);
    CHECK(out->vars["DIALSTATUS"] == "CANCEL");
    std::lock_guard lock(fx.seen->mu);
    CHECK(fx.seen->written.size() == 1);
    CHECK(std::count(fx.seen->indications.begin(), fx.seen->indications.end(), Indication::ringing) == 1);
    CHECK(std::count(fx.seen->indications.begin(), fx.seen->indications.end(), Indication::progress) == 2);
}

TEST_CASE("Dial: a caller let go by a transfer is handed over: its dialplan stops, the other caller's Dial owns it") {
    // The call-waiting transfer: B and C both called someone who connects
    // them. C's Dial is redirected without a destination, B's to bridge
    // with C.
    DialFixture fx;
    auto& core = *fx.t.core;
    auto caller = [&](const char* name) {
        auto c = core.create_channel("DialTest", name, std::make_unique<CallerDriver>(fx.seen), core.loop(0));
        REQUIRE(c);
        c->set_variable("DEST", "Local/s@long");
        c->set_variable("TIMEOUT", "10");
        c->set_position("caller", "s", 1);
        core.start_pbx(c);
        return c;
    };
    auto b = caller("DialTest/b");
    auto c = caller("DialTest/c");
    auto bridged_to = [&](const std::shared_ptr<Channel>& x) {
        return test::on_loop(*x, [&] { return x->peer_name(); });
    };
    REQUIRE(
        fx.t.wait_for([&] { return core.channel_count() == 6 && !bridged_to(b).empty() && !bridged_to(c).empty(); }));

    core.redirect(c, Channel::Redirect{});
    core.redirect(b, Channel::Redirect{{}, {}, 1, c});
    // The two Local legs end; B's Dial bridges B with C.
    CHECK(fx.t.wait_for([&] { return core.channel_count() == 2 && bridged_to(b) == c->name(); }));
    CHECK(bridged_to(c) == b->name());
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(c->finished());  // handed over, not hung up
    auto h_of = [&](const std::shared_ptr<Channel>& x) {
        return test::on_loop(*x, [&] { return x->variable("HSTATUS").value_or(""); });
    };
    CHECK(h_of(c).empty());  // its dialplan stopped without running h
    CHECK(test::on_loop(*c, [&] { return c->variable("AFTER").has_value(); }) == false);

    // B hangs up: its Dial ends C, the channel it owns now.
    b->request_hangup(cause::normal_clearing);
    CHECK(fx.t.wait_for([&] { return b->finished() && c->finished(); }, 5s));
    CHECK(fx.t.wait_for([&] { return core.channel_count() == 0; }, 5s));
    CHECK(h_of(c).empty());
    CHECK(h_of(b) == "ANSWER");
}

TEST_CASE("Dial: a caller let go on another loop moves to the loop of the Dial that takes it") {
    // The call-waiting transfer again, with B and C on different loops: C is
    // moved to B's loop (driver leaves, then joins) before B's Dial bridges them.
    DialFixture fx;
    auto& core = *fx.t.core;
    REQUIRE(fx.t.core->loop_count() >= 2);
    auto caller = [&](const char* name, std::size_t loop, bool movable) {
        auto c =
            core.create_channel("DialTest", name, std::make_unique<CallerDriver>(fx.seen, movable), core.loop(loop));
        REQUIRE(c);
        c->set_variable("DEST", "Local/s@long");
        c->set_variable("TIMEOUT", "10");
        c->set_position("caller", "s", 1);
        core.start_pbx(c);
        return c;
    };
    auto bridged_to = [&](const std::shared_ptr<Channel>& x) {
        return test::on_loop(*x, [&] { return x->peer_name(); });
    };
    auto moves = [&](std::map<std::string, int> Seen::*which, const std::shared_ptr<Channel>& x) {
        std::lock_guard lock(fx.seen->mu);
        return ((*fx.seen).*which)[x->name()];
    };

    SUBCASE("moved, bridged, and ended with its new owner") {
        auto b = caller("DialTest/b", 0, true);
        auto c = caller("DialTest/c", 1, true);
        REQUIRE(fx.t.wait_for(
            [&] { return core.channel_count() == 6 && !bridged_to(b).empty() && !bridged_to(c).empty(); }));
        CHECK(&c->loop() == &core.loop(1));
        core.redirect(c, Channel::Redirect{});
        core.redirect(b, Channel::Redirect{{}, {}, 1, c});
        CHECK(fx.t.wait_for([&] { return core.channel_count() == 2 && bridged_to(b) == c->name(); }));
        CHECK(&c->loop() == &core.loop(0));
        CHECK(bridged_to(c) == b->name());
        CHECK(moves(&Seen::left, c) == 1);
        CHECK(moves(&Seen::joined, c) == 1);
        CHECK(moves(&Seen::left, b) == 0);
        std::this_thread::sleep_for(200ms);
        CHECK_FALSE(c->finished());
        // A hangup asked from any thread reaches C on its new loop (and not
        // the finished dialplan that let it go); B's Dial then ends B.
        c->request_hangup(cause::normal_clearing);
        CHECK(fx.t.wait_for([&] { return b->finished() && c->finished(); }, 5s));
        CHECK(fx.t.wait_for([&] { return core.channel_count() == 0; }, 5s));
    }
    SUBCASE("a driver that cannot move: C is hung up where it is, and so is B") {
        auto b = caller("DialTest/b", 0, true);
        auto c = caller("DialTest/c", 1, false);
        REQUIRE(fx.t.wait_for(
            [&] { return core.channel_count() == 6 && !bridged_to(b).empty() && !bridged_to(c).empty(); }));
        core.redirect(c, Channel::Redirect{});
        core.redirect(b, Channel::Redirect{{}, {}, 1, c});
        CHECK(fx.t.wait_for([&] { return b->finished() && c->finished(); }, 10s));
        CHECK(&c->loop() == &core.loop(1));
        CHECK(c->hangup_cause() == cause::temporary_failure);
        CHECK(moves(&Seen::left, c) == 0);
        CHECK(fx.t.wait_for([&] { return core.channel_count() == 0; }, 5s));
    }
}
