// chan_sip: register => lines, register=yes peers and the TLS options of sip.conf.
#include <doctest/doctest.h>

#include "chan_sip/outbound.hpp"
#include "chan_sip/settings.hpp"

#include <tandem/config.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

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

}  // namespace

TEST_CASE("sip outbound: register => lines in Asterisk's syntax") {
    std::string error;
    auto r = parse_register_line("acct42:s3cret:authname@sip.example.com:5080/5550100", error);
    REQUIRE(r);
    CHECK(r->user == "acct42");
    CHECK(r->secret == "s3cret");
    CHECK(r->auth_user == "authname");
    CHECK(r->host == "sip.example.com");
    CHECK(r->port == 5080);
    CHECK(r->contact_user == "5550100");
    CHECK(r->key() == "acct42@sip.example.com:5080");

    r = parse_register_line("bob:p@ss@10.0.0.1", error);  // '@' in the secret: the last one splits
    REQUIRE(r);
    CHECK(r->secret == "p@ss");
    CHECK(r->host == "10.0.0.1");
    CHECK(r->port == 5060);
    CHECK(r->auth_user == "bob");
    CHECK(r->contact_user == "bob");

    r = parse_register_line("bob@[2001:db8::1]:5062", error);
    REQUIRE(r);
    CHECK(r->host == "[2001:db8::1]");
    CHECK(r->port == 5062);

    CHECK_FALSE(parse_register_line("no-host-here", error));
    CHECK_FALSE(parse_register_line("@host", error));
    CHECK_FALSE(parse_register_line("bob@host:99999", error));
    CHECK_FALSE(parse_register_line("bob@host:50x", error));
    CHECK_FALSE(parse_register_line("b<b@host", error));
    CHECK(to_string(RegistryState::registered) == "Registered");
    CHECK(to_string(RegistryState::request_sent) == "Request Sent");
}

TEST_CASE("sip outbound: sip.conf registrations, with their line on errors") {
    auto p = parse(
        "[general]\n"
        "register => acct42:Trunk-Secret-1234@127.0.0.1:5099/5550100\n"
        "register => garbage\n"
        "registertimeout = 30s\n"
        "registerattempts = 5\n"
        "defaultexpiry = 300\n"
        "[provider]\n"
        "type = peer\n"
        "host = 192.0.2.7\n"
        "secret = Provider-Secret-99\n"
        "defaultuser = 4471234567\n"
        "register = yes\n"
        "[nohost]\n"
        "type = friend\n"
        "host = dynamic\n"
        "secret = Dynamic-Secret-99\n"
        "register = yes\n");
    CHECK(has_error(p, 3, "register"));
    CHECK(has_error(p, 17, "static host"));
    REQUIRE(p.settings->registrations.size() == 2);
    auto& a = p.settings->registrations[0];
    CHECK(a.user == "acct42");
    CHECK(a.contact_user == "5550100");
    CHECK(a.retry == std::chrono::seconds(30));
    CHECK(a.attempts == 5);
    CHECK(a.expiry == std::chrono::seconds(300));
    auto& b = p.settings->registrations[1];
    CHECK(b.endpoint == "provider");
    CHECK(b.user == "4471234567");
    CHECK(b.host == "192.0.2.7");
    CHECK(b.secret == "Provider-Secret-99");
}

TEST_CASE("sip outbound: TLS options are checked with their line") {
    auto dir = std::filesystem::temp_directory_path();
    auto cert = (dir / "tandem-unit-tls-cert.pem").string();
    std::ofstream(cert) << "not really a certificate\n";
    auto p = parse(
        "[general]\n"
        "tlsenable = yes\n"
        "tlsbindport = 5071\n"
        "tlscertfile = " +
        cert +
        "\n"
        "tlsprivatekey = /nonexistent/key.pem\n"
        "[1001]\n"
        "type = friend\n"
        "secret = Tandem-1001-Loopback!\n"
        "transport = tls\n");
    CHECK(has_error(p, 5, "/nonexistent/key.pem"));
    CHECK(p.settings->general.tls.enabled);
    CHECK(p.settings->general.tls.port == 5071);
    REQUIRE(p.settings->find("1001"));
    CHECK(p.settings->find("1001")->transports == std::vector<Transport>{Transport::tls});

    p = parse(
        "[general]\n"
        "[1001]\n"
        "type = friend\n"
        "secret = Tandem-1001-Loopback!\n"
        "transport = udp,tls\n");
    CHECK(has_error(p, 5, "tlsenable"));
    p = parse("[general]\ntlsenable = yes\n");
    CHECK(has_error(p, 2, "tlscertfile"));
    p = parse("[general]\ntransport = udp,tls\n");
    CHECK(has_error(p, 2, "transport"));
    std::filesystem::remove(cert);
}

TEST_CASE("sip outbound: transports of register => lines and outboundproxy values") {
    std::string error;
    auto r = parse_register_line("tcp://acct42:Trunk-Secret-1234@sip.example.com/5550100", error);
    REQUIRE(r);
    CHECK(r->transport == Transport::tcp);
    CHECK(r->user == "acct42");
    CHECK(r->port == 5060);
    r = parse_register_line("tls://acct42:Trunk-Secret-1234@sip.example.com", error);
    REQUIRE(r);
    CHECK(r->transport == Transport::tls);
    CHECK(r->port == 5061);                                                  // TLS's own port when none is written
    r = parse_register_line("acct42:with://inside@sip.example.com", error);  // not a transport: credentials
    REQUIRE(r);
    CHECK(r->user == "acct42");
    CHECK(r->transport == Transport::udp);
    CHECK_FALSE(parse_register_line("sctp://acct42:Trunk-Secret-1234@sip.example.com", error));
    CHECK(error.find("transport") != std::string::npos);

    CHECK(sip_uri("sip.example.com:5060", Transport::udp) == "sip:sip.example.com:5060");
    CHECK(sip_uri("sip.example.com:5061", Transport::tls) == "sip:sip.example.com:5061;transport=tls");

    auto route = [&](std::string_view text) {
        auto p = parse_outbound_proxy(text, error);
        return p ? p->route : std::string("(refused: " + error + ")");
    };
    auto transport = [&](std::string_view text) { return parse_outbound_proxy(text, error)->transport; };
    CHECK(route("proxy.example.com") == "<sip:proxy.example.com;lr>");
    CHECK(route(" 192.0.2.7:5070 ") == "<sip:192.0.2.7:5070;lr>");
    CHECK(route("tcp://proxy.example.com:5080") == "<sip:proxy.example.com:5080;transport=tcp;lr>");
    CHECK(transport("tcp://proxy.example.com:5080") == Transport::tcp);
    CHECK(route("tls://[2001:db8::7]") == "<sip:[2001:db8::7];transport=tls;lr>");
    CHECK(transport("tls://[2001:db8::7]") == Transport::tls);
    CHECK(transport("proxy.example.com") == Transport::udp);
    CHECK(route("sip:edge.example.com;transport=tcp") == "<sip:edge.example.com;transport=tcp;lr>");
    CHECK(transport("sip:edge.example.com;transport=TCP") == Transport::tcp);
    CHECK(transport("sips:edge.example.com") == Transport::tls);
    CHECK(route("sip:edge.example.com;lr") == "<sip:edge.example.com;lr>");
    CHECK(route("sip:edge.example.com;lrx=1") == "<sip:edge.example.com;lrx=1;lr>");  // not the lr parameter
    CHECK_FALSE(parse_outbound_proxy("sip:edge.example.com;transport=sctp", error));
    CHECK_FALSE(parse_outbound_proxy("", error));
    CHECK_FALSE(parse_outbound_proxy("proxy.example.com:0", error));
    CHECK_FALSE(parse_outbound_proxy("proxy example.com", error));
    CHECK_FALSE(parse_outbound_proxy("ftp://proxy.example.com", error));
    CHECK_FALSE(parse_outbound_proxy("sip:edge.example.com>, <sip:evil", error));
    CHECK_FALSE(parse_outbound_proxy("[2001:db8::7", error));
}

TEST_CASE("sip outbound: outboundproxy and transport= reach peers and their registrations") {
    auto p = parse(
        "[general]\n"
        "transport = udp,tcp\n"
        "outboundproxy = tcp://edge.example.com:5080\n"
        "register => acct1:Trunk-Secret-1234@sip.example.com\n"
        "[trunk]\n"
        "type = peer\n"
        "host = sip.provider.example\n"
        "transport = tcp\n"
        "secret = Trunk-Secret-5678\n"
        "register = yes\n"
        "[direct]\n"
        "type = peer\n"
        "host = 192.0.2.9\n"
        "outboundproxy =\n"
        "[own]\n"
        "type = peer\n"
        "host = 192.0.2.10\n"
        "outboundproxy = 192.0.2.1\n");
    CHECK(p.errors.empty());
    REQUIRE(p.settings->registrations.size() == 2);
    CHECK(p.settings->registrations[0].proxy == "<sip:edge.example.com:5080;transport=tcp;lr>");
    CHECK(p.settings->registrations[0].transport == Transport::udp);
    CHECK(p.settings->registrations[1].endpoint == "trunk");
    CHECK(p.settings->registrations[1].transport == Transport::tcp);
    CHECK(p.settings->registrations[1].proxy == "<sip:edge.example.com:5080;transport=tcp;lr>");
    REQUIRE(p.settings->find("trunk"));
    CHECK(p.settings->find("trunk")->transport() == Transport::tcp);
    CHECK(p.settings->find("direct")->outboundproxy.empty());  // empty: reached directly
    CHECK(p.settings->find("own")->outboundproxy == "<sip:192.0.2.1;lr>");

    // A transport Tandem does not listen on cannot carry its requests either.
    p = parse(
        "[general]\n"
        "outboundproxy = tcp://edge.example.com\n"
        "register => tls://acct1:Trunk-Secret-1234@sip.example.com\n"
        "[trunk]\n"
        "type = peer\n"
        "host = sip.provider.example\n"
        "transport = tcp\n"
        "[gw]\n"
        "type = peer\n"
        "host = 192.0.2.9\n"
        "outboundproxy = here and there\n");
    CHECK(has_error(p, 2, "tcp in [general] transport="));
    CHECK(has_error(p, 3, "tlsenable=yes"));
    CHECK(has_error(p, 7, "reached over tcp"));
    CHECK(has_error(p, 11, "outboundproxy"));
}
