// chan_sip: the REFER and Replaces parsers behind call transfer (RFC 3515,
// RFC 3891), fed what real phones send and what a hostile peer might.
#include <doctest/doctest.h>

#include "chan_sip/transfer.hpp"

#include <string>

using namespace tandem::sip;

TEST_CASE("transfer: percent-decoding of URI headers") {
    CHECK(percent_decode("abc") == "abc");
    CHECK(percent_decode("a%3Bb%3db") == "a;b=b");
    CHECK(percent_decode("call%40host") == "call@host");
    CHECK_FALSE(percent_decode("bad%3").has_value());
    CHECK_FALSE(percent_decode("bad%").has_value());
    CHECK_FALSE(percent_decode("bad%zz").has_value());
}

TEST_CASE("transfer: Replaces values") {
    auto r = parse_replaces("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff");
    REQUIRE(r);
    CHECK(r->call_id == "98732@sip.example.com");
    CHECK(r->from_tag == "r33th4x0r");
    CHECK(r->to_tag == "ff87ff");
    CHECK_FALSE(r->early_only);

    auto e = parse_replaces(" x ; To-Tag=a ; FROM-TAG=b ; early-only");
    REQUIRE(e);
    CHECK(e->call_id == "x");
    CHECK(e->to_tag == "a");
    CHECK(e->from_tag == "b");
    CHECK(e->early_only);

    CHECK_FALSE(parse_replaces("").has_value());
    CHECK_FALSE(parse_replaces(";to-tag=a;from-tag=b").has_value());
    CHECK_FALSE(parse_replaces("id;to-tag=a").has_value());
    CHECK_FALSE(parse_replaces("id;from-tag=b").has_value());
    CHECK_FALSE(parse_replaces("id;to-tag=;from-tag=b").has_value());
}

TEST_CASE("transfer: Refer-To of a blind transfer") {
    auto t = parse_refer_to("<sip:1003@192.0.2.1:5060;user=phone>");
    REQUIRE(t);
    CHECK(t->user == "1003");
    CHECK(t->host == "192.0.2.1:5060");
    CHECK_FALSE(t->replaces.has_value());

    auto bare = parse_refer_to("sip:2000@pbx.example.com");
    REQUIRE(bare);
    CHECK(bare->user == "2000");
    CHECK(bare->host == "pbx.example.com");

    auto secure = parse_refer_to("\"Sales\" <SIPS:%2A72@pbx>");
    REQUIRE(secure);
    CHECK(secure->user == "*72");

    auto hostonly = parse_refer_to("sip:pbx.example.com");
    REQUIRE(hostonly);
    CHECK(hostonly->user.empty());
}

TEST_CASE("transfer: Refer-To of an attended transfer, as a Yealink sends it") {
    auto t = parse_refer_to(
        "<sip:1111@a.domain1.com?Replaces=1995681538%40192.168.1.6%3Bto-tag%3DZrBmv78K9vyjH%3Bfrom-tag%3D1368305041>");
    REQUIRE(t);
    CHECK(t->user == "1111");
    CHECK(t->host == "a.domain1.com");
    REQUIRE(t->replaces);
    CHECK(t->replaces->call_id == "1995681538@192.168.1.6");
    CHECK(t->replaces->to_tag == "ZrBmv78K9vyjH");
    CHECK(t->replaces->from_tag == "1368305041");

    // Other URI headers around it are skipped.
    auto many = parse_refer_to("sip:c@h?X-Foo=1&replaces=id%3Bfrom-tag%3Df%3Bto-tag%3Dt&Y=2");
    REQUIRE(many);
    REQUIRE(many->replaces);
    CHECK(many->replaces->call_id == "id");
    CHECK(many->replaces->to_tag == "t");
    CHECK(many->replaces->from_tag == "f");
}

TEST_CASE("transfer: malformed Refer-To is refused, never trusted") {
    CHECK_FALSE(parse_refer_to("").has_value());
    CHECK_FALSE(parse_refer_to("tel:+15551234").has_value());
    CHECK_FALSE(parse_refer_to("<sip:1003@host").has_value());
    CHECK_FALSE(parse_refer_to("sip:1003@").has_value());
    CHECK_FALSE(parse_refer_to("sip:10%0d03@host").has_value());
    CHECK_FALSE(parse_refer_to("sip:10%@host").has_value());
    CHECK_FALSE(parse_refer_to("sip:c@h?Replaces=id%3Bto-tag%3Dt").has_value());
    CHECK_FALSE(parse_refer_to("sip:c@h?Replaces=%ZZ").has_value());
    std::string huge(100000, '%');
    CHECK_FALSE(parse_refer_to("sip:" + huge + "@h").has_value());
}

TEST_CASE("transfer: sipfrag status lines") {
    CHECK(sipfrag(100, "Trying") == "SIP/2.0 100 Trying");
    CHECK(sipfrag(404, "Not Found") == "SIP/2.0 404 Not Found");
}
