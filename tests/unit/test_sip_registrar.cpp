// chan_sip: authentication and the REGISTER rules, without a network; the
// registry in the key/value store; the Sofia log assembler.
#include <doctest/doctest.h>

#include "chan_sip/auth.hpp"
#include "chan_sip/registrar.hpp"
#include "chan_sip/settings.hpp"
#include "chan_sip/sofia_log.hpp"

#include "core_fixture.hpp"

#include <tandem/config.hpp>
#include <tandem/kvstore.hpp>

#include <filesystem>

using namespace tandem;
using namespace tandem::sip;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t t0 = 1'700'000'000;

struct NullSink : LogSink {
    void write(LogLevel, std::string_view, std::string_view) override {}
    LogLevel threshold() const override { return LogLevel::off; }
};

std::shared_ptr<const Settings> settings(const std::string& extra = {}) {
    auto r = config::parse_text(
        "[general]\nrealm = tandem\nminexpiry = 60\nmaxexpiry = 3600\ndefaultexpiry = 120\n"
        "[1001]\nsecret = secret-of-1001\nmaxcontacts = 3\npermit = 0.0.0.0/0\n"
        "[1002]\nsecret = secret-of-1002\ndeny = 0.0.0.0/0\npermit = 10.0.0.0/8\n"
        "[gw]\ntype = peer\nhost = 192.0.2.50\nsecret = secret-of-gw-1\n"
        "[u]\ntype = user\nsecret = secret-of-user1\n" +
            extra,
        "sip.conf", std::filesystem::temp_directory_path());
    REQUIRE(r.ok());
    auto p = parse_settings(r.file, "Tandem/test");
    REQUIRE(p.errors.empty());
    return p.settings;
}

SipRequest register_request(const std::string& user, const std::string& contact = "sip:1001@192.0.2.10:5062",
                            const char* source = "192.0.2.10:5062") {
    SipRequest r;
    r.method = "REGISTER";
    r.request_uri = "sip:127.0.0.1:5060";
    r.to_uri = "sip:" + user + "@127.0.0.1";
    r.from_uri = r.to_uri;
    r.to_user = user;
    r.call_id = "call-" + contact;
    r.cseq = 1;
    if (!contact.empty()) r.contacts.push_back(ContactHeader{contact, std::nullopt, "", ""});
    r.source = *SocketAddress::parse(source);
    r.user_agent = "unit-phone";
    return r;
}

// What a phone does with a 401: answer the first challenge with its password.
void answer_challenge(SipRequest& rq, const SipResponse& challenge, const std::string& username,
                      const std::string& password) {
    auto www = challenge.header("WWW-Authenticate");
    REQUIRE_FALSE(www.empty());
    auto offered = parse_digest_credentials(www);  // same grammar: realm and nonce
    REQUIRE(offered);
    DigestCredentials c;
    c.username = username;
    c.realm = offered->realm;
    c.nonce = offered->nonce;
    c.uri = rq.request_uri;
    c.qop = "auth";
    c.nc = "00000001";
    c.cnonce = "0a4f113b";
    c.response = digest_response(DigestAlgorithm::md5, password, rq.method, c);
    rq.authorization = {
        fmt::format("Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm=MD5, "
                    "cnonce=\"{}\", qop=auth, nc={}",
                    c.username, c.realm, c.nonce, c.uri, c.response, c.cnonce, c.nc)};
    ++rq.cseq;
}

struct Fixture {
    NullSink sink;
    Log log{sink, "chan_sip"};
    Authenticator auth{NonceFactory::with_random_secret()};
    std::shared_ptr<const Settings> s = settings();
    Registrar registrar{log};

    // Challenge, then answer: the outcome of the authenticated request.
    AuthOutcome authenticate(SipRequest& rq, const std::string& user, const std::string& password,
                             std::int64_t now = t0) {
        auto first = auth.authenticate(rq, *s, now);
        CHECK(first.kind == AuthOutcome::Kind::challenged);
        CHECK(first.response.status == 401);
        CHECK_FALSE(first.failure);
        answer_challenge(rq, first.response, user, password);
        return auth.authenticate(rq, *s, now);
    }
    SipResponse register_ok(SipRequest rq, std::int64_t now = t0) {
        auto out = authenticate(rq, rq.to_user, "secret-of-" + rq.to_user, now);
        REQUIRE(out.kind == AuthOutcome::Kind::authenticated);
        return registrar.apply(rq, *out.endpoint, s->general, now);
    }
};

std::vector<std::string> contacts_of(const SipResponse& r) {
    std::vector<std::string> out;
    for (auto& [n, v] : r.headers)
        if (n == "Contact") out.push_back(v);
    return out;
}

}  // namespace

TEST_CASE("sip auth: challenge, then the right password authenticates") {
    Fixture f;
    auto rq = register_request("1001");
    auto out = f.authenticate(rq, "1001", "secret-of-1001");
    CHECK(out.kind == AuthOutcome::Kind::authenticated);
    REQUIRE(out.endpoint);
    CHECK(out.endpoint->name == "1001");
    // The challenge names our realm, MD5 and qop=auth.
    auto ch = f.auth.challenge(rq, *f.s, t0, false, false);
    CHECK(ch.header("WWW-Authenticate").find("realm=\"tandem\"") != std::string::npos);
    CHECK(ch.header("WWW-Authenticate").find("qop=\"auth\"") != std::string::npos);
    CHECK(f.auth.challenge(rq, *f.s, t0, false, true).status == 407);
}

TEST_CASE("sip auth: a wrong password and an unknown user look the same from outside") {
    Fixture f;
    auto wrong = register_request("1001");
    auto w = f.authenticate(wrong, "1001", "not-the-password");
    auto unknown = register_request("9999");
    auto u = f.authenticate(unknown, "9999", "whatever-password");
    CHECK(w.kind == AuthOutcome::Kind::rejected);
    CHECK(u.kind == AuthOutcome::Kind::rejected);
    CHECK(w.failure);
    CHECK(u.failure);
    CHECK(w.response.status == 403);
    CHECK(u.response.status == 403);
    CHECK(w.response.phrase == u.response.phrase);
    CHECK(w.response.headers == u.response.headers);
    CHECK(w.reason == "wrong password");
    CHECK(u.reason == "unknown user");

    // With alwaysauthreject=no an unknown user is told so.
    f.s = settings("[general]\nalwaysauthreject = no\n");
    auto again = register_request("9999");
    CHECK(f.authenticate(again, "9999", "whatever-password").response.status == 404);
}

TEST_CASE("sip auth: ACL, stale and foreign nonces, other realms") {
    Fixture f;
    // 1002 only from 10.0.0.0/8: the right password from elsewhere is still a failure.
    auto rq = register_request("1002", "sip:1002@192.0.2.10", "192.0.2.10:5060");
    auto out = f.authenticate(rq, "1002", "secret-of-1002");
    CHECK(out.kind == AuthOutcome::Kind::rejected);
    CHECK(out.failure);
    CHECK(out.response.status == 403);
    auto inside = register_request("1002", "sip:1002@10.1.1.1", "10.1.1.1:5060");
    CHECK(f.authenticate(inside, "1002", "secret-of-1002").kind == AuthOutcome::Kind::authenticated);

    // An expired nonce: challenged again with stale=TRUE, not counted.
    auto old = register_request("1001");
    f.authenticate(old, "1001", "secret-of-1001", t0);
    auto later = f.auth.authenticate(old, *f.s, t0 + 301);
    CHECK(later.kind == AuthOutcome::Kind::challenged);
    CHECK_FALSE(later.failure);
    CHECK(later.response.header("WWW-Authenticate").find("stale=TRUE") != std::string::npos);

    // A nonce issued to another address is not accepted (and not counted).
    auto moved = old;
    moved.source = *SocketAddress::parse("192.0.2.77:5060");
    auto m = f.auth.authenticate(moved, *f.s, t0);
    CHECK(m.kind == AuthOutcome::Kind::challenged);
    CHECK_FALSE(m.failure);

    // Credentials for another realm are ignored: challenged.
    auto other = register_request("1001");
    other.authorization = {
        "Digest username=\"1001\", realm=\"elsewhere\", nonce=\"x\", uri=\"sip:a\", "
        "response=\"y\""};
    CHECK(f.auth.authenticate(other, *f.s, t0).kind == AuthOutcome::Kind::challenged);
}

TEST_CASE("sip registrar: register, refresh, several contacts, unregister") {
    Fixture f;
    auto r1 = f.register_ok(register_request("1001", "sip:1001@192.0.2.10:5062"));
    CHECK(r1.status == 200);
    CHECK(contacts_of(r1) == std::vector<std::string>{"<sip:1001@192.0.2.10:5062>;expires=120"});
    CHECK_FALSE(r1.header("Date").empty());

    // A second device: both are kept and listed.
    auto second = register_request("1001", "sip:1001@192.0.2.11:5070", "192.0.2.11:5070");
    second.expires = 600;
    auto r2 = f.register_ok(second);
    CHECK(contacts_of(r2).size() == 2);
    auto all = f.registrar.bindings("1001");
    REQUIRE(all.size() == 2);
    CHECK(all[1].source.str() == "192.0.2.11:5070");
    CHECK(all[1].expires_at == t0 + 600);
    CHECK(all[1].user_agent == "unit-phone");

    // Refresh with a per-contact expires beyond maxexpiry: clamped.
    auto refresh = register_request("1001", "sip:1001@192.0.2.10:5062");
    refresh.contacts[0].expires = 99999;
    refresh.cseq = 5;  // same Call-ID as the first registration: a newer CSeq
    f.register_ok(refresh, t0 + 10);
    CHECK(f.registrar.bindings("1001")[0].expires_at == t0 + 10 + 3600);

    // A query (no Contact) lists without changing anything.
    auto query = register_request("1001", "");
    auto rq = f.register_ok(query, t0 + 20);
    CHECK(contacts_of(rq).size() == 2);

    // Expires: 0 removes one contact.
    auto bye = register_request("1001", "sip:1001@192.0.2.11:5070", "192.0.2.11:5070");
    bye.expires = 0;
    bye.call_id = "another-call-id";
    auto rb = f.register_ok(bye, t0 + 30);
    CHECK(rb.status == 200);
    CHECK(contacts_of(rb).size() == 1);

    // Contact: * with Expires: 0 removes them all.
    auto star = register_request("1001", "");
    star.contact_star = true;
    star.expires = 0;
    auto rs = f.register_ok(star, t0 + 40);
    CHECK(rs.status == 200);
    CHECK(contacts_of(rs).empty());
    CHECK(f.registrar.count() == 0);
}

TEST_CASE("sip registrar: 423, bad star, out of order, other AOR, types that do not register") {
    Fixture f;
    auto brief = register_request("1001");
    brief.expires = 30;
    auto r = f.register_ok(brief);
    CHECK(r.status == 423);
    CHECK(r.header("Min-Expires") == "60");
    CHECK(f.registrar.count() == 0);

    auto star = register_request("1001");
    star.contact_star = true;
    star.expires = 0;
    CHECK(f.register_ok(star).status == 400);  // * with another contact

    auto first = register_request("1001");
    first.cseq = 10;
    CHECK(f.register_ok(first).status == 200);  // authenticated at cseq 11
    auto stale = register_request("1001");
    stale.cseq = 5;  // same Call-ID, older CSeq
    CHECK(f.register_ok(stale).status == 500);

    // Authenticated as 1001 but registering 1002's address of record.
    auto rq = register_request("1002");
    auto out = f.authenticate(rq, "1001", "secret-of-1001");
    REQUIRE(out.kind == AuthOutcome::Kind::authenticated);
    CHECK(f.registrar.apply(rq, *out.endpoint, f.s->general, t0).status == 403);

    for (auto who : {"gw", "u"}) {
        auto req = register_request(who);
        auto o = f.authenticate(req, who, std::string("secret-of-") + (who == std::string("gw") ? "gw-1" : "user1"));
        REQUIRE(o.kind == AuthOutcome::Kind::authenticated);
        CHECK(f.registrar.apply(req, *o.endpoint, f.s->general, t0).status == 403);
    }
}

TEST_CASE("sip registrar: maxcontacts drops the bindings closest to expiry; +sip.instance replaces") {
    Fixture f;  // 1001 has maxcontacts = 3
    for (int i = 0; i < 4; ++i) {
        auto rq = register_request("1001", fmt::format("sip:1001@192.0.2.{}:5060", 20 + i));
        rq.expires = 100 + i * 100;
        CHECK(f.register_ok(rq).status == 200);
    }
    auto list = f.registrar.bindings("1001");
    REQUIRE(list.size() == 3);
    for (auto& b : list) CHECK(b.contact != "sip:1001@192.0.2.20:5060");  // expired soonest: dropped

    auto a = register_request("1001", "sip:1001@192.0.2.30:1111");
    a.contacts[0].instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
    CHECK(f.register_ok(a).status == 200);
    auto b = register_request("1001", "sip:1001@192.0.2.30:2222");
    b.contacts[0].instance = "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";
    b.call_id = "new-call-id";
    auto r = f.register_ok(b);
    CHECK(r.status == 200);
    auto now = f.registrar.bindings("1001");
    CHECK(std::count_if(now.begin(), now.end(),
                        [](const Binding& x) { return x.contact.find("192.0.2.30") != std::string::npos; }) == 1);
    CHECK(
        std::any_of(now.begin(), now.end(), [](const Binding& x) { return x.contact == "sip:1001@192.0.2.30:2222"; }));
}

TEST_CASE("sip registrar: Path is stored and echoed when supported; expiry") {
    Fixture f;
    auto rq = register_request("1001");
    rq.path = {"<sip:edge.example.com;lr>"};
    rq.supported = {"path"};
    auto r = f.register_ok(rq);
    CHECK(r.header("Path") == "<sip:edge.example.com;lr>");
    CHECK(f.registrar.bindings("1001").at(0).path == rq.path);

    CHECK(f.registrar.expire(t0 + 119).empty());
    auto gone = f.registrar.expire(t0 + 121);
    REQUIRE(gone.size() == 1);
    CHECK(gone[0].endpoint == "1001");
    CHECK(f.registrar.count() == 0);
}

TEST_CASE("sip registrar: bindings survive in the key/value store, expired ones are dropped") {
    Binding b;
    b.endpoint = "1001";
    b.contact = "sip:1001@192.0.2.10:5062;transport=tcp;ob";
    b.instance = "<urn:uuid:1234>";
    b.call_id = "tab\there|and%percent";
    b.cseq = 7;
    b.expires_at = t0 + 100;
    b.registered_at = t0;
    b.source = *SocketAddress::parse("[2001:db8::5]:5062");
    b.transport = Transport::tcp;
    b.user_agent = "Phone 1.0";
    b.path = {"<sip:a;lr>", "<sip:b|c;lr>"};
    auto text = serialize_binding(b);
    CHECK(text.find('\n') == std::string::npos);
    auto back = parse_binding(text);
    REQUIRE(back);
    CHECK(back->contact == b.contact);
    CHECK(back->call_id == b.call_id);
    CHECK(back->source.str() == "[2001:db8::5]:5062");
    CHECK(back->transport == Transport::tcp);
    CHECK(back->path == b.path);
    CHECK(back->expires_at == b.expires_at);
    CHECK_FALSE(parse_binding("").has_value());
    CHECK_FALSE(parse_binding("2\tsomething").has_value());
    CHECK_FALSE(parse_binding(text.substr(0, text.size() / 2)).has_value());

    auto dir = tandem::test::temp_dir("tandem-sip-reg-");
    {
        std::string error;
        auto kv = KvStore::open(dir / "kv.db", error);
        REQUIRE(kv);
        Fixture f;
        f.registrar.set_store(kv.get());
        auto a = register_request("1001", "sip:1001@192.0.2.10:5062");
        a.expires = 3600;
        CHECK(f.register_ok(a).status == 200);
        auto c = register_request("1001", "sip:1001@192.0.2.11:5062", "192.0.2.11:5062");
        c.expires = 60;
        CHECK(f.register_ok(c).status == 200);
        CHECK(kv->list("SIP/Registry").size() == 2);
        kv->put("SIP/Registry/9999", "deadbeef", serialize_binding(b));  // an endpoint that is gone
        kv->put("SIP/Registry/1001", "garbage", "not a binding");
        kv->flush();
    }
    {
        std::string error;
        auto kv = KvStore::open(dir / "kv.db", error);
        REQUIRE(kv);
        Fixture f;
        f.registrar.set_store(kv.get());
        // 120 s later the 60 s contact has expired.
        CHECK(f.registrar.restore(*f.s, t0 + 120) == 1);
        auto list = f.registrar.bindings("1001");
        REQUIRE(list.size() == 1);
        CHECK(list[0].contact == "sip:1001@192.0.2.10:5062");
        CHECK(list[0].source.str() == "192.0.2.10:5062");
        CHECK(kv->list("SIP/Registry").size() == 1);  // the rest was deleted
    }
    std::filesystem::remove_all(dir);
}

TEST_CASE("sip log: Sofia's fragments become whole messages and lines") {
    SofiaLogAssembler a;
    std::vector<SofiaLogAssembler::Item> items;
    auto feed = [&](std::string_view s) {
        for (auto& i : a.feed(s)) items.push_back(i);
    };
    std::string sep(72, '-');
    feed("recv 261 bytes from udp/[127.0.0.1]:44863 at 06:15:11.537562:\n   " + sep + "\n");
    feed("   REGISTER sip:127.0.0.1:5099 SIP/2.0");
    feed("\n");
    feed("   Via: SIP/2.0/UDP 127.0.0.1:44863;branch=z9hG4bK1");
    feed("\n");
    feed("   ");
    feed("\n");
    feed("   " + sep + "\n");
    feed("nta: some diagnostic\n");
    feed("tport: two ");
    feed("fragments\n");
    REQUIRE(items.size() == 3);
    CHECK(items[0].message);
    CHECK(items[0].text ==
          "recv 261 bytes from udp/[127.0.0.1]:44863\nREGISTER sip:127.0.0.1:5099 SIP/2.0\n"
          "Via: SIP/2.0/UDP 127.0.0.1:44863;branch=z9hG4bK1");
    CHECK_FALSE(items[1].message);
    CHECK(items[1].text == "nta: some diagnostic");
    CHECK(items[2].text == "tport: two fragments");

    // A message cut short by the next one is still reported.
    items.clear();
    feed("send 10 bytes to tcp/[::1]:5060 at 01:02:03.000000:\n   " + sep + "\n");
    feed("   OPTIONS sip:x SIP/2.0\n");
    feed("recv 5 bytes from tcp/[::1]:5060 at 01:02:03.000001:\n   " + sep + "\n");
    feed("   SIP/2.0 200 OK\n");
    for (auto& i : a.flush()) items.push_back(i);
    REQUIRE(items.size() == 2);
    CHECK(items[0].text == "send 10 bytes to tcp/[::1]:5060\nOPTIONS sip:x SIP/2.0");
    CHECK(items[1].text == "recv 5 bytes from tcp/[::1]:5060\nSIP/2.0 200 OK");
}
