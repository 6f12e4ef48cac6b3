// chan_sip: digest computation (RFC 2617, RFC 7616 vectors), credentials,
// challenges, and stateless nonces.
#include <doctest/doctest.h>

#include "chan_sip/digest.hpp"

using namespace tandem::sip;
using namespace std::chrono_literals;

TEST_CASE("sip digest: RFC 2617 section 3.5 example") {
    DigestCredentials c;
    c.username = "Mufasa";
    c.realm = "testrealm@host.com";
    c.nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
    c.uri = "/dir/index.html";
    c.qop = "auth";
    c.nc = "00000001";
    c.cnonce = "0a4f113b";
    CHECK(digest_response(DigestAlgorithm::md5, "Circle Of Life", "GET", c) == "6629fae49393a05397450978507c4ef1");
}

TEST_CASE("sip digest: RFC 7616 section 3.9.1 examples, MD5 and SHA-256") {
    DigestCredentials c;
    c.username = "Mufasa";
    c.realm = "http-auth@example.org";
    c.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    c.uri = "/dir/index.html";
    c.qop = "auth";
    c.nc = "00000001";
    c.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    CHECK(digest_response(DigestAlgorithm::md5, "Circle of Life", "GET", c) == "8ca523f5e9506fed4657c9700eebdbec");
    CHECK(digest_response(DigestAlgorithm::sha256, "Circle of Life", "GET", c) ==
          "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

TEST_CASE("sip digest: without qop (RFC 2069) and -sess session keys") {
    DigestCredentials c;
    c.username = "1001";
    c.realm = "tandem";
    c.nonce = "abc";
    c.uri = "sip:127.0.0.1";
    // H(H(1001:tandem:secret):abc:H(REGISTER:sip:127.0.0.1)), computed independently.
    CHECK(digest_response(DigestAlgorithm::md5, "secret", "REGISTER", c) == "e92b689a0f73db78b9bd7853e00bdd8b");
    auto plain = digest_ha1(DigestAlgorithm::md5, "1001", "tandem", "secret");
    CHECK(plain == digest_hash(DigestAlgorithm::md5, "1001:tandem:secret"));
    CHECK(digest_ha1(DigestAlgorithm::md5_sess, "1001", "tandem", "secret", "n", "c") ==
          digest_hash(DigestAlgorithm::md5, plain + ":n:c"));
    CHECK(digest_hash(DigestAlgorithm::sha256, "").size() == 64);
    CHECK(digest_hash(DigestAlgorithm::md5, "") == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("sip digest: algorithm names") {
    CHECK(parse_digest_algorithm("") == DigestAlgorithm::md5);
    CHECK(parse_digest_algorithm("md5") == DigestAlgorithm::md5);
    CHECK(parse_digest_algorithm("SHA-256") == DigestAlgorithm::sha256);
    CHECK(parse_digest_algorithm("sha-256-SESS") == DigestAlgorithm::sha256_sess);
    CHECK_FALSE(parse_digest_algorithm("SHA-512-256").has_value());
    CHECK(to_string(DigestAlgorithm::md5_sess) == "MD5-sess");
}

TEST_CASE("sip digest: parsing credentials") {
    auto c = parse_digest_credentials(
        "Digest username=\"1001\", realm=\"tandem\",nonce=\"n1\", uri=\"sip:127.0.0.1:5060\", "
        "response=\"0123abcd\", algorithm=MD5, cnonce=\"c,1\", qop=auth, nc=00000001, opaque=\"o\"");
    REQUIRE(c);
    CHECK(c->username == "1001");
    CHECK(c->realm == "tandem");
    CHECK(c->nonce == "n1");
    CHECK(c->uri == "sip:127.0.0.1:5060");
    CHECK(c->response == "0123abcd");
    CHECK(c->algorithm == "MD5");
    CHECK(c->cnonce == "c,1");
    CHECK(c->qop == "auth");
    CHECK(c->nc == "00000001");
    CHECK(c->opaque == "o");

    auto escaped = parse_digest_credentials(R"(digest USERNAME="a\"b", realm = "r")");
    REQUIRE(escaped);
    CHECK(escaped->username == "a\"b");
    CHECK(escaped->realm == "r");

    CHECK_FALSE(parse_digest_credentials("Basic dXNlcjpwYXNz").has_value());
    CHECK_FALSE(parse_digest_credentials("Digest username=\"unterminated").has_value());
    CHECK_FALSE(parse_digest_credentials("Digest username").has_value());
    CHECK_FALSE(parse_digest_credentials("").has_value());
    CHECK(parse_digest_credentials("Digest")->username.empty());
}

TEST_CASE("sip digest: challenges") {
    CHECK(digest_challenge("tandem", "abc", DigestAlgorithm::md5, false) ==
          "Digest realm=\"tandem\", nonce=\"abc\", algorithm=MD5, qop=\"auth\"");
    CHECK(digest_challenge("tandem", "abc", DigestAlgorithm::sha256, true) ==
          "Digest realm=\"tandem\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\", stale=TRUE");
}

TEST_CASE("sip digest: constant-time comparison") {
    CHECK(constant_time_equal("abc", "abc"));
    CHECK_FALSE(constant_time_equal("abc", "abd"));
    CHECK_FALSE(constant_time_equal("abc", "ab"));
    CHECK(constant_time_equal("", ""));
}

TEST_CASE("sip nonce: issued, checked, stale and forged") {
    NonceFactory::Secret secret{};
    secret[0] = 42;
    NonceFactory f(secret);
    std::int64_t t0 = 1'700'000'000;
    auto n = f.issue(t0, "192.0.2.1", "tandem");
    CHECK(n.size() == 48);
    CHECK(f.check(n, t0, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::valid);
    CHECK(f.check(n, t0 + 300, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::valid);
    CHECK(f.check(n, t0 + 301, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::stale);
    // Bound to the client's address and the realm.
    CHECK(f.check(n, t0, "192.0.2.2", "tandem", 300s) == NonceFactory::Verdict::invalid);
    CHECK(f.check(n, t0, "192.0.2.1", "other", 300s) == NonceFactory::Verdict::invalid);
    // Another secret (a restart) does not recognise it.
    secret[0] = 43;
    CHECK(NonceFactory(secret).check(n, t0, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::invalid);
    // Tampering with the time stamp breaks the MAC.
    auto forged = n;
    forged[15] = forged[15] == '0' ? '1' : '0';
    CHECK(f.check(forged, t0, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::invalid);
    // Garbage and issue times far in the future.
    CHECK(f.check("", t0, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::invalid);
    CHECK(f.check(std::string(48, 'z'), t0, "192.0.2.1", "tandem", 300s) == NonceFactory::Verdict::invalid);
    CHECK(f.check(f.issue(t0 + 3600, "192.0.2.1", "tandem"), t0, "192.0.2.1", "tandem", 300s) ==
          NonceFactory::Verdict::invalid);
    // Two factories with random secrets disagree.
    auto a = NonceFactory::with_random_secret(), b = NonceFactory::with_random_secret();
    CHECK(b.check(a.issue(t0, "x", "r"), t0, "x", "r", 300s) == NonceFactory::Verdict::invalid);
    CHECK(a.check(a.issue(t0, "x", "r"), t0, "x", "r", 300s) == NonceFactory::Verdict::valid);
}
