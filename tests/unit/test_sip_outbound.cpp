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
