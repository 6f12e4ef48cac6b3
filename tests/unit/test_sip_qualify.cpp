// chan_sip: qualify bookkeeping — targets, NAT routing, states and changes.
#include <doctest/doctest.h>

#include "chan_sip/qualify.hpp"
#include "chan_sip/settings.hpp"

#include <tandem/config.hpp>

#include <filesystem>

using namespace tandem;
using namespace tandem::sip;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const Settings> settings(const std::string& text) {
    auto r = config::parse_text(text, "sip.conf", std::filesystem::temp_directory_path());
    REQUIRE(r.ok());
    auto p = parse_settings(r.file, "Tandem/test");
    REQUIRE(p.errors.empty());
    return p.settings;
}

Binding binding(const std::string& endpoint, const std::string& contact, const char* source) {
    Binding b;
    b.endpoint = endpoint;
    b.contact = contact;
    b.source = *SocketAddress::parse(source);
    return b;
}

const QualifyTarget* find(const std::vector<QualifyTarget>& ts, const std::string& endpoint) {
    for (auto& t : ts)
        if (t.endpoint == endpoint) return &t;
    return nullptr;
}

}  // namespace

TEST_CASE("sip qualify: targets follow nat=, Path and static hosts") {
    auto s = settings(
        "[general]\nqualify = yes\nqualifyfreq = 30\ntransport = udp,tcp\n"
        "[rport]\nsecret = long-enough-secret\n"
        "[plain]\nsecret = long-enough-secret\nnat = no\n"
        "[auto-natted]\nsecret = long-enough-secret\nnat = auto_force_rport\n"
        "[auto-direct]\nsecret = long-enough-secret\nnat = auto_force_rport\n"
        "[pathed]\nsecret = long-enough-secret\n"
        "[quiet]\nsecret = long-enough-secret\nqualify = no\n"
        "[gw]\ntype = peer\nhost = 192.0.2.20\nport = 5070\nqualify = 500\ntransport = tcp\n");
    std::vector<Binding> b = {
        binding("rport", "sip:rport@10.0.0.5:5060", "198.51.100.1:40000"),
        binding("plain", "sip:plain@10.0.0.6:5060", "198.51.100.2:40000"),
        binding("auto-natted", "sip:a@10.0.0.7:5060;ob", "198.51.100.3:40000"),
        binding("auto-direct", "sip:a@198.51.100.4:5060", "198.51.100.4:5060"),
        binding("pathed", "sip:p@10.0.0.8", "198.51.100.5:5060"),
        binding("quiet", "sip:q@10.0.0.9", "198.51.100.6:5060"),
    };
    b[4].path = {"<sip:edge.example.com;lr>"};
    QualifyTable table;
    auto t0 = QualifyTable::Clock::time_point{} + 100s;
    auto due = table.due(*s, b, t0);
    CHECK(due.size() == 6);  // everyone but "quiet"
    REQUIRE(find(due, "rport"));
    CHECK(find(due, "rport")->send_to->str() == "198.51.100.1:40000");
    CHECK(find(due, "rport")->uri == "sip:rport@10.0.0.5:5060");
    CHECK_FALSE(find(due, "plain")->send_to.has_value());
    CHECK(find(due, "auto-natted")->send_to.has_value());
    CHECK_FALSE(find(due, "auto-direct")->send_to.has_value());
    CHECK_FALSE(find(due, "pathed")->send_to.has_value());
    CHECK(find(due, "pathed")->route == b[4].path);
    CHECK_FALSE(find(due, "quiet"));
    REQUIRE(find(due, "gw"));
    CHECK(find(due, "gw")->uri == "sip:192.0.2.20:5070;transport=tcp");
    CHECK(find(due, "gw")->limit == 500ms);

    // In flight until reported; due again after qualifyfreq.
    CHECK(table.due(*s, b, t0 + 1s).empty());
    for (auto& t : due) table.report(t.key, 5ms, t0 + 1s);
    CHECK(table.due(*s, b, t0 + 29s).empty());
    CHECK(table.due(*s, b, t0 + 30s).size() == 6);

    // A one-off request covers an endpoint with qualify=no.
    table.request("quiet");
    auto once = table.due(*s, b, t0 + 31s);
    REQUIRE(once.size() == 1);
    CHECK(once[0].endpoint == "quiet");
    table.report(once[0].key, 3ms, t0 + 32s);
    CHECK(table.status("quiet").at(0).state == Reachability::reachable);
    CHECK(table.due(*s, b, t0 + 40s).empty());  // not probed again by itself
}

TEST_CASE("sip qualify: states, lag, changes worth a log line, summaries") {
    auto s = settings("[general]\nqualifyfreq = 10\n[1001]\nsecret = long-enough-secret\nqualify = 100\n");
    std::vector<Binding> b = {binding("1001", "sip:1001@192.0.2.1:5060", "192.0.2.1:5060")};
    QualifyTable table;
    auto t0 = QualifyTable::Clock::time_point{} + 100s;
    CHECK(table.summary("1001") == "Unmonitored");
    auto due = table.due(*s, b, t0);
    REQUIRE(due.size() == 1);
    CHECK(table.summary("1001") == "Unknown");
    auto key = due[0].key;
    auto line = table.report(key, 12ms, t0);
    REQUIRE(line);
    CHECK(*line == "1001 (sip:1001@192.0.2.1:5060) is reachable (12 ms)");
    CHECK(table.summary("1001") == "OK (12 ms)");
    table.due(*s, b, t0 + 10s);
    CHECK_FALSE(table.report(key, 20ms, t0 + 10s));  // still reachable: nothing to log
    table.due(*s, b, t0 + 20s);
    CHECK(table.report(key, 250ms, t0 + 20s) == "1001 (sip:1001@192.0.2.1:5060) is LAGGED (250 ms)");
    CHECK(table.summary("1001") == "LAGGED (250 ms)");
    table.due(*s, b, t0 + 30s);
    CHECK(table.report(key, std::nullopt, t0 + 30s) == "1001 (sip:1001@192.0.2.1:5060) is UNREACHABLE");
    CHECK(table.summary("1001") == "UNREACHABLE");
    CHECK(table.status("1001").at(0).reports == 4);
    CHECK_FALSE(table.report("no such key", 1ms, t0));

    // Once the contact is gone, so is its entry.
    table.due(*s, {}, t0 + 40s);
    CHECK(table.status("1001").empty());
}
