// chan_sip: sip.conf binding — the sample, templates, secrets, ACLs, gateways.
#include <doctest/doctest.h>

#include "chan_sip/settings.hpp"

#include <tandem/config.hpp>

#include <algorithm>
#include <filesystem>

using namespace tandem;
using namespace tandem::sip;

namespace {

ParsedSettings parse(const std::string& text) {
    auto r = config::parse_text(text, "sip.conf", std::filesystem::temp_directory_path());
    REQUIRE(r.ok());
    return parse_settings(r.file, "Tandem/test");
}

bool has_error(const ParsedSettings& p, int line, const std::string& fragment) {
    return std::any_of(p.errors.begin(), p.errors.end(), [&](const config::Diagnostic& d) {
        return d.where.line == line && d.str().find(fragment) != std::string::npos;
    });
}

std::string all_errors(const ParsedSettings& p) {
    std::string out;
    for (auto& d : p.errors) out += d.str() + "\n";
    return out;
}

}  // namespace

TEST_CASE("sip config: the sample sip.conf is valid and defines 1001 and 1002") {
    auto r = config::parse_file(std::filesystem::path(TANDEM_SOURCE_DIR) / "configs" / "sip.conf");
    REQUIRE(r.ok());
    auto p = parse_settings(r.file, "Tandem/test");
    INFO(all_errors(p));
    CHECK(p.errors.empty());
    auto& s = *p.settings;
    CHECK(s.general.bindaddr == "127.0.0.1");
    CHECK(s.general.bindport == 5060);
    CHECK(s.general.transports == std::vector<Transport>{Transport::udp, Transport::tcp});
    CHECK(s.endpoints.size() == 2);
    for (auto name : {"1001", "1002"}) {
        const Endpoint* e = s.find(name);
        REQUIRE(e);
        CHECK(e->dynamic);
        CHECK(e->can_register());
        CHECK(e->secret.size() >= min_secret_length);
        CHECK(e->qualify.enabled);
        CHECK(e->acl.allows(*IpAddress::parse("127.0.0.1")));
        CHECK_FALSE(e->acl.allows(*IpAddress::parse("203.0.113.1")));
        CHECK(e->codecs == std::vector<std::string>{"ulaw", "alaw", "g722"});
    }
    CHECK(s.find("1001")->callerid_name == "Alice");
    CHECK(s.find("1001")->callerid_number == "1001");
    CHECK_FALSE(s.find("office-phone"));  // a template is not an endpoint
}

TEST_CASE("sip config: defaults") {
    auto p = parse("[general]\n[1001]\nsecret = long-enough-secret\n");
    CHECK(p.errors.empty());
    auto& g = p.settings->general;
    CHECK(g.bindaddr == "0.0.0.0");
    CHECK(g.bindport == 5060);
    CHECK(g.realm == "tandem");
    CHECK(g.useragent == "Tandem/test");
    CHECK(g.minexpiry.count() == 60);
    CHECK(g.maxexpiry.count() == 3600);
    CHECK(g.defaultexpiry.count() == 120);
    CHECK(g.alwaysauthreject);
    CHECK(g.bans.enabled);
    CHECK(g.bans.failures == 5);
    CHECK(g.bans.window.count() == 60);
    CHECK(g.bans.duration.count() == 600);
    CHECK(g.overload_queue == 50);
    CHECK(g.overload_retry_after.count() == 5);
    auto* e = p.settings->find("1001");
    REQUIRE(e);
    CHECK(e->type == EndpointType::friend_);
    CHECK(e->context == "default");
    CHECK(e->nat.force_rport);
    CHECK(e->max_contacts == 10);
    CHECK(e->transports == std::vector<Transport>{Transport::udp});
}

TEST_CASE("sip config: a short secret is an error at its own line, and the endpoint is left out") {
    auto p = parse("[general]\n\n[1001]\ntype = friend\nsecret = short\n[1002]\nsecret = twelve-chars\n");
    CHECK(has_error(p, 5, "secret of [1001] is too short: 5 characters, at least 12 required"));
    CHECK(p.errors.front().str().rfind("sip.conf:5: ", 0) == 0);
    CHECK_FALSE(p.settings->find("1001"));
    CHECK(p.settings->find("1002"));
    // Eleven characters are not enough, twelve are.
    CHECK_FALSE(parse("[a]\nsecret = 12345678901\n").errors.empty());
    CHECK(parse("[a]\nsecret = 123456789012\n").errors.empty());
}

TEST_CASE("sip config: a secret is required to register or call in") {
    auto p = parse("[1001]\nhost = dynamic\n");
    CHECK(has_error(p, 1, "[1001] needs a secret"));
    CHECK(has_error(parse("[u]\ntype = user\n"), 1, "needs a secret"));
    // A gateway recognised by its address needs none.
    auto gw = parse("[gw]\ntype = peer\nhost = 192.0.2.20\ninsecure = invite,port\ncontext = from-gw\n");
    INFO(all_errors(gw));
    CHECK(gw.errors.empty());
}

TEST_CASE("sip config: templates carry options, a template's weak secret is reported at its line") {
    auto p = parse(
        "[phone](!)\n"        // 1
        "type = friend\n"     // 2
        "secret = weak\n"     // 3
        "context = office\n"  // 4
        "[1001](phone)\n"     // 5
        "[1002](phone)\n"     // 6
        "secret = strong-enough-1002\n");
    CHECK(has_error(p, 3, "secret of [1001] is too short"));
    CHECK_FALSE(p.settings->find("1001"));
    REQUIRE(p.settings->find("1002"));
    CHECK(p.settings->find("1002")->context == "office");
}

TEST_CASE("sip config: unknown options and bad values name file and line") {
    auto p = parse("[general]\nbindport = 99999\nbindaddr = example.com\nfoo = 1\n[1001]\nsecert = long-secret-xyz\n");
    CHECK(has_error(p, 2, "bindport"));
    CHECK(has_error(p, 3, "bindaddr must be an IP address"));
    CHECK(has_error(p, 4, "unknown option 'foo'"));
    CHECK(has_error(p, 6, "unknown option 'secert'"));
    auto q = parse("[general]\nminexpiry = 600\nmaxexpiry = 300\ntransport = sctp\n");
    CHECK(has_error(q, 2, "minexpiry must not exceed maxexpiry"));
    CHECK(has_error(q, 4, "transport must list udp and/or tcp"));
    auto o = parse("[general]\noverloadqueue = 101\noverloadretryafter = 0s\n");
    CHECK(has_error(o, 2, "overloadqueue"));
    CHECK(has_error(o, 3, "overloadretryafter"));
    auto ok = parse("[general]\noverloadqueue = 0\noverloadretryafter = 30s\n");
    CHECK(ok.errors.empty());
    CHECK(ok.settings->general.overload_queue == 0);
    CHECK(ok.settings->general.overload_retry_after.count() == 30);
}

TEST_CASE("sip config: ACL lines in order, CIDR and netmask forms, errors") {
    auto p = parse(
        "[1001]\nsecret = long-enough-secret\ndeny = 0.0.0.0/0.0.0.0\npermit = 192.168.1.0/255.255.255.0\n"
        "permit = 2001:db8::/32\n");
    INFO(all_errors(p));
    REQUIRE(p.settings->find("1001"));
    auto& acl = p.settings->find("1001")->acl;
    CHECK(acl.rules().size() == 3);
    CHECK(acl.allows(*IpAddress::parse("192.168.1.9")));
    CHECK_FALSE(acl.allows(*IpAddress::parse("192.168.7.9")));
    CHECK(acl.allows(*IpAddress::parse("2001:db8::5")));
    auto bad = parse("[1001]\nsecret = long-enough-secret\npermit = 192.168.1.0/40\n");
    CHECK(has_error(bad, 3, "permit: '192.168.1.0/40' is not an address or CIDR range"));
    CHECK_FALSE(bad.settings->find("1001"));
}

TEST_CASE("sip config: codecs, nat, qualify, insecure, call-limit") {
    auto p = parse(
        "[general]\nallow = gsm\n"
        "[a]\nsecret = long-enough-secret\ndisallow = all\nallow = alaw,ulaw\nallow = alaw\n"
        "nat = yes\nqualify = 500\ncall-limit = 2\ndtmfmode = rfc2833\n"
        "[b]\nsecret = long-enough-secret\nnat = no\nqualify = no\n");
    INFO(all_errors(p));
    auto* a = p.settings->find("a");
    REQUIRE(a);
    CHECK(a->codecs == std::vector<std::string>{"alaw", "ulaw"});
    CHECK(a->nat.force_rport);
    CHECK(a->nat.comedia);
    CHECK(a->qualify.enabled);
    CHECK(a->qualify.max.count() == 500);
    CHECK(a->call_limit == 2);
    CHECK(a->dtmfmode == "rfc4733");
    auto* b = p.settings->find("b");
    REQUIRE(b);
    CHECK(b->codecs == std::vector<std::string>{"ulaw", "alaw", "gsm"});  // [general] adds gsm to the default
    CHECK_FALSE(b->nat.force_rport);
    CHECK_FALSE(b->qualify.enabled);

    CHECK(has_error(parse("[a]\nsecret = long-enough-secret\nallow = ulaw,bogus\n"), 3, "unknown codec 'bogus'"));
    CHECK(has_error(parse("[a]\nsecret = long-enough-secret\nnat = sometimes\n"), 3, "nat: unknown value"));
    CHECK(has_error(parse("[a]\nsecret = long-enough-secret\nqualify = maybe\n"), 3, "qualify must be"));
    CHECK(
        has_error(parse("[a]\nsecret = long-enough-secret\ninsecure = invite\n"), 3, "insecure= needs a static host"));
    CHECK(has_error(parse("[bad name]\nsecret = long-enough-secret\n"), 1, "may only use"));
}

TEST_CASE("sip config: gateways are found by address, insecure=port ignores the port") {
    auto p = parse(
        "[gw1]\ntype = peer\nhost = 192.0.2.20\nport = 5070\n"
        "[gw2]\ntype = peer\nhost = 192.0.2.21\ninsecure = port,invite\n"
        "[trunk]\ntype = peer\nhost = sip.example.com\n");
    INFO(all_errors(p));
    auto& s = *p.settings;
    CHECK(s.find_by_address(*SocketAddress::parse("192.0.2.20:5070")) == s.find("gw1"));
    CHECK(s.find_by_address(*SocketAddress::parse("192.0.2.20:5060")) == nullptr);
    CHECK(s.find_by_address(*SocketAddress::parse("192.0.2.21:40000")) == s.find("gw2"));
    CHECK(s.find("gw2")->insecure_invite);
    CHECK(s.find_by_address(*SocketAddress::parse("192.0.2.99:5060")) == nullptr);
    CHECK(s.find("trunk")->has_static_host());
    CHECK_FALSE(s.find("trunk")->host_ip.has_value());
    CHECK_FALSE(s.find("gw1")->can_register());
}
