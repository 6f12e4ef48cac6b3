// The core's event log (`core show events`) and the SIP events it shows:
// the ring's bounds, the line format, per-call events left out; qualify,
// registrar and outbound registrations publishing once per change.
#include <doctest/doctest.h>

#include "chan_sip/outbound.hpp"
#include "chan_sip/qualify.hpp"
#include "chan_sip/registrar.hpp"
#include "chan_sip/settings.hpp"
#include "cli/server.hpp"
#include "core_fixture.hpp"
#include "runtime/event_log.hpp"

#include <tandem/config.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <filesystem>
#include <memory>
#include <mutex>

using namespace tandem;
using namespace std::chrono_literals;

namespace {

// 2026-12-07T05:25:07.123Z
const EventLog::Clock::time_point t_ref = EventLog::Clock::time_point(std::chrono::seconds(1796621107)) + 123ms;

event::Reloaded numbered(int i) {
    return event::Reloaded{"step " + std::to_string(i)};
}

std::string what_of(const EventLog::Entry& e) {
    auto* r = std::get_if<event::Reloaded>(&e.event);
    return r ? r->what : "";
}

// Collects what a bus publishes.
struct Recorder {
    EventBus bus;
    std::mutex mu;
    std::vector<Event> seen;
    Registration sub = bus.subscribe([this](const Event& e) {
        std::lock_guard lock(mu);
        seen.push_back(e);
    });

    template <class T>
    std::vector<T> all() {
        std::lock_guard lock(mu);
        std::vector<T> out;
        for (auto& e : seen)
            if (auto* v = std::get_if<T>(&e)) out.push_back(*v);
        return out;
    }
};

struct NullSink : LogSink {
    void write(LogLevel, std::string_view, std::string_view) override {}
    LogLevel threshold() const override { return LogLevel::off; }
};

std::shared_ptr<const sip::Settings> sip_settings(const std::string& text) {
    auto r = config::parse_text(text, "sip.conf", std::filesystem::temp_directory_path());
    REQUIRE(r.ok());
    auto p = sip::parse_settings(r.file, "Tandem/test");
    REQUIRE(p.errors.empty());
    return p.settings;
}

sip::SipRequest register_request(const std::string& contact, const char* source, long long expires) {
    sip::SipRequest r;
    r.method = "REGISTER";
    r.request_uri = "sip:127.0.0.1:5060";
    r.to_uri = "sip:1001@127.0.0.1";
    r.from_uri = r.to_uri;
    r.to_user = "1001";
    r.call_id = "call-" + contact;
    r.cseq = 1;
    r.expires = expires;
    r.contacts.push_back(sip::ContactHeader{contact, std::nullopt, "", ""});
    r.source = *sip::SocketAddress::parse(source);
    return r;
}

struct StringOutput final : CliOutput {
    std::string text;
    void write(std::string_view t) override { text += t; }
};

std::pair<int, std::string> cli(CoreImpl& core, const std::string& line) {
    auto out = std::make_shared<StringOutput>();
    auto f = boost::asio::co_spawn(core.pick_loop(), run_cli_line(core, line, *out), boost::asio::use_future);
    int status = f.get();
    return {status, out->text};
}

}  // namespace

TEST_CASE("event log: keeps system events and ignores per-call ones") {
    CHECK(EventLog::keeps(event::PeerStatus{}));
    CHECK(EventLog::keeps(event::Registry{}));
    CHECK(EventLog::keeps(event::Transfer{}));
    CHECK(EventLog::keeps(event::ModuleChanged{}));
    CHECK(EventLog::keeps(event::Reloaded{}));
    CHECK(EventLog::keeps(event::FaxDetect{}));
    CHECK_FALSE(EventLog::keeps(event::ChannelCreated{}));
    CHECK_FALSE(EventLog::keeps(event::ChannelStateChanged{"SIP/1", "1", ChannelState::up}));
    CHECK_FALSE(EventLog::keeps(event::DialplanStep{"SIP/1", "1", "default", "100", 1, "Answer", ""}));
    CHECK_FALSE(EventLog::keeps(event::VariableSet{}));
    CHECK_FALSE(EventLog::keeps(event::ChannelHangup{"SIP/1", "1", 16}));

    EventLog log(8);
    log.record(event::ChannelCreated{"SIP/1001-1", "1"});
    log.record(event::ChannelHangup{"SIP/1001-1", "1", 16});
    log.record(event::VariableSet{"SIP/1001-1", "1", "X", "y"});
    CHECK(log.last(50).empty());
    CHECK(log.recorded() == 0);
    log.record(event::ModuleChanged{"chan_sip", true});
    REQUIRE(log.last(50).size() == 1);
    CHECK(std::holds_alternative<event::ModuleChanged>(log.last(50)[0].event));
}

TEST_CASE("event log: the ring keeps the newest, oldest first") {
    EventLog log(4);
    CHECK(log.capacity() == 4);
    for (int i = 0; i < 3; ++i) log.record(numbered(i), t_ref + std::chrono::seconds(i));
    auto some = log.last(50);
    REQUIRE(some.size() == 3);
    CHECK(what_of(some[0]) == "step 0");
    CHECK(what_of(some[2]) == "step 2");
    CHECK(some[1].at == t_ref + 1s);

    for (int i = 3; i < 10; ++i) log.record(numbered(i), t_ref + std::chrono::seconds(i));
    auto full = log.last(50);
    REQUIRE(full.size() == 4);
    CHECK(what_of(full[0]) == "step 6");
    CHECK(what_of(full[1]) == "step 7");
    CHECK(what_of(full[2]) == "step 8");
    CHECK(what_of(full[3]) == "step 9");
    CHECK(log.recorded() == 10);

    auto two = log.last(2);
    REQUIRE(two.size() == 2);
    CHECK(what_of(two[0]) == "step 8");
    CHECK(what_of(two[1]) == "step 9");
    CHECK(log.last(0).empty());

    EventLog tiny(0);  // at least one slot
    tiny.record(numbered(1));
    tiny.record(numbered(2));
    REQUIRE(tiny.last(5).size() == 1);
    CHECK(what_of(tiny.last(5)[0]) == "step 2");
}

TEST_CASE("event log: one line per event, UTC time and key=value fields") {
    using E = EventLog::Entry;
    CHECK(EventLog::format(E{t_ref, event::PeerStatus{"SIP", "1001", "Reachable", "sip:1001@192.0.2.1:5062", 12}}) ==
          "2026-12-07T05:25:07.123Z PeerStatus tech=SIP peer=1001 status=Reachable "
          "address=sip:1001@192.0.2.1:5062 latency_ms=12");
    CHECK(
        EventLog::format(E{t_ref, event::Registry{"SIP", "trunk", "192.0.2.9", "4420", "Rejected", "403 Forbidden"}}) ==
        "2026-12-07T05:25:07.123Z Registry tech=SIP peer=trunk domain=192.0.2.9 username=4420 status=Rejected "
        "cause=\"403 Forbidden\"");
    CHECK(EventLog::format(E{t_ref, event::Transfer{"blind", "SIP/1001-00000001", "1796621107.1", "", "default", "1003",
                                                    true, "200"}}) ==
          "2026-12-07T05:25:07.123Z Transfer kind=blind channel=SIP/1001-00000001 uniqueid=1796621107.1 "
          "target_channel=\"\" context=default exten=1003 ok=yes result=200");
    CHECK(EventLog::format(E{t_ref, event::ModuleChanged{"codec_g722", false}}) ==
          "2026-12-07T05:25:07.123Z ModuleChanged module=codec_g722 loaded=no");
    // Whatever a peer put in a field, the line stays one line and readable.
    CHECK(EventLog::format(E{t_ref, event::Reloaded{"a \"b\"\nc=d\\"}}) ==
          "2026-12-07T05:25:07.123Z Reloaded what=\"a \\\"b\\\"\\nc=d\\\\\"");
    CHECK(
        EventLog::format(E{EventLog::Clock::time_point{}, event::FaxDetect{"SIP/x", "1", std::string("c\x01g", 3)}}) ==
        "1970-01-01T00:00:00.000Z FaxDetect channel=SIP/x uniqueid=1 tone=\"c\\x01g\"");
}

TEST_CASE("event log: `core show events` in a running core") {
    test::TestCore t;
    auto& bus = t.core->events();
    bus.publish(event::ChannelCreated{"Local/x-1", "9"});
    for (int i = 0; i < 60; ++i) bus.publish(event::Reloaded{"r" + std::to_string(i)});
    bus.publish(event::PeerStatus{"SIP", "1001", "Registered", "127.0.0.1:5062", -1});

    auto [status, text] = cli(*t.core, "core show events");
    CHECK(status == cli_status::ok);
    CHECK(text.find("PeerStatus tech=SIP peer=1001 status=Registered address=127.0.0.1:5062 latency_ms=-1\n") !=
          std::string::npos);
    CHECK(text.find("Local/x-1") == std::string::npos);
    CHECK(text.find("what=r59") != std::string::npos);
    CHECK(text.find("what=r11\n") != std::string::npos);  // the default shows the last 50
    CHECK(text.find("what=r10\n") == std::string::npos);
    CHECK(text.find("50 events shown") != std::string::npos);

    auto [s2, two] = cli(*t.core, "core show events 2");
    CHECK(s2 == cli_status::ok);
    CHECK(two.find("Reloaded what=r59\n") != std::string::npos);
    CHECK(two.find("what=r58") == std::string::npos);
    CHECK(two.find("2 events shown") != std::string::npos);

    CHECK(cli(*t.core, "core show events lots").first == cli_status::usage);
    CHECK(cli(*t.core, "core show events 0").first == cli_status::usage);
}

TEST_CASE("SIP events: qualify publishes a PeerStatus once per change") {
    Recorder r;
    auto s = sip_settings("[general]\nqualifyfreq = 60\n[gw]\ntype = peer\nhost = 192.0.2.1\nqualify = yes\n");
    sip::QualifyTable table;
    table.set_events(&r.bus);
    auto t0 = sip::QualifyTable::Clock::now();
    auto due = table.due(*s, {}, t0);
    REQUIRE(due.size() == 1);
    auto key = due[0].key;
    table.report(key, 12ms, t0);
    table.report(key, 15ms, t0 + 60s);  // still reachable: nothing new
    table.report(key, std::nullopt, t0 + 120s);
    table.report(key, std::nullopt, t0 + 180s);
    table.report(key, 9ms, t0 + 240s);
    auto seen = r.all<event::PeerStatus>();
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].tech == "SIP");
    CHECK(seen[0].peer == "gw");
    CHECK(seen[0].status == "Reachable");
    CHECK(seen[0].address == "sip:192.0.2.1:5060");
    CHECK(seen[0].latency_ms == 12);
    CHECK(seen[1].status == "Unreachable");
    CHECK(seen[1].latency_ms == -1);
    CHECK(seen[2].status == "Reachable");
    CHECK(seen[2].latency_ms == 9);
}

TEST_CASE("SIP events: the registrar publishes new devices and the contacts that go") {
    Recorder r;
    NullSink sink;
    sip::Registrar registrar{Log{sink, "chan_sip"}};
    registrar.set_events(&r.bus);
    auto s = sip_settings("[general]\nminexpiry = 60\n[1001]\nsecret = secret-of-1001\n");
    auto* ep = s->find("1001");
    REQUIRE(ep);
    constexpr std::int64_t now = 1'700'000'000;
    CHECK(registrar.apply(register_request("sip:1001@192.0.2.10:5062", "192.0.2.10:5062", 120), *ep, s->general, now)
              .status == 200);
    auto refresh = register_request("sip:1001@192.0.2.10:5062", "192.0.2.10:5062", 120);
    refresh.cseq = 2;
    CHECK(registrar.apply(refresh, *ep, s->general, now + 60).status == 200);  // a refresh: nothing new
    CHECK(registrar.apply(register_request("sip:1001@192.0.2.11:5070", "192.0.2.11:5070", 300), *ep, s->general, now)
              .status == 200);
    auto gone = register_request("sip:1001@192.0.2.11:5070", "192.0.2.11:5070", 0);
    gone.cseq = 2;
    CHECK(registrar.apply(gone, *ep, s->general, now + 10).status == 200);
    CHECK(registrar.expire(now + 200).size() == 1);

    auto seen = r.all<event::PeerStatus>();
    REQUIRE(seen.size() == 4);
    CHECK(seen[0].status == "Registered");
    CHECK(seen[0].peer == "1001");
    CHECK(seen[0].address == "192.0.2.10:5062");
    CHECK(seen[0].latency_ms == -1);
    CHECK(seen[1].status == "Registered");
    CHECK(seen[1].address == "192.0.2.11:5070");
    CHECK(seen[2].status == "Unregistered");
    CHECK(seen[2].address == "192.0.2.11:5070");
    CHECK(seen[3].status == "Unregistered");
    CHECK(seen[3].address == "192.0.2.10:5062");
}

TEST_CASE("SIP events: outbound registrations publish each change of status once") {
    using sip::RegistryState;
    sip::RegistryEvents events;
    sip::RegistryEntry e;
    e.key = "4420@192.0.2.9:5060";
    e.host = "192.0.2.9";
    e.user = "4420";
    e.endpoint = "trunk";

    e.state = RegistryState::unregistered;
    CHECK_FALSE(events.change(e));  // never published anything: nothing ends
    e.state = RegistryState::request_sent;
    CHECK_FALSE(events.change(e));

    e.state = RegistryState::rejected;
    e.status = 403;
    e.reason = "Forbidden";
    auto first = events.change(e);
    REQUIRE(first);
    CHECK(first->tech == "SIP");
    CHECK(first->peer == "trunk");
    CHECK(first->domain == "192.0.2.9");
    CHECK(first->username == "4420");
    CHECK(first->status == "Rejected");
    CHECK(first->cause == "403 Forbidden");
    CHECK_FALSE(events.change(e));  // the retry failed the same way

    e.state = RegistryState::timeout;
    e.status = 408;
    e.reason = "Request Timeout";
    auto failed = events.change(e);
    REQUIRE(failed);
    CHECK(failed->status == "Failed");
    CHECK(failed->cause == "408 Request Timeout");
    e.state = RegistryState::failed;  // given up: still "Failed"
    CHECK_FALSE(events.change(e));

    e.state = RegistryState::registered;
    e.status = 200;
    e.reason.clear();
    auto up = events.change(e);
    REQUIRE(up);
    CHECK(up->status == "Registered");
    CHECK(up->cause.empty());
    CHECK_FALSE(events.change(e));

    e.state = RegistryState::unregistered;
    auto down = events.change(e);
    REQUIRE(down);
    CHECK(down->status == "Unregistered");
    CHECK_FALSE(events.change(e));
}
