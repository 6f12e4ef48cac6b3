// chan_sip: which INVITE bodies and Accept headers Tandem can answer
// (RFC 3261 8.2.3 and 20.1; RFC 4475 3.3.6 and 3.3.15).
#include <doctest/doctest.h>

#include "chan_sip/content.hpp"

using namespace tandem::sip;

TEST_CASE("sip content: SDP, no body, and a body without Content-Type are taken") {
    CHECK(invite_content_status({}) == 0);
    CHECK(invite_content_status({.has_body = true, .type = "application/sdp"}) == 0);
    CHECK(invite_content_status({.has_body = true, .type = "Application/SDP"}) == 0);
    CHECK(invite_content_status({.has_body = true}) == 0);
    CHECK(invite_content_status({.has_body = true, .type = "application/sdp", .encodings = {"identity"}}) == 0);
}

TEST_CASE("sip content: a body Tandem cannot read is 415") {
    CHECK(invite_content_status({.has_body = true, .type = "application/unknownformat"}) == 415);
    CHECK(invite_content_status({.has_body = true, .type = "text/plain"}) == 415);
    CHECK(invite_content_status({.has_body = true, .type = "application/sdp", .encodings = {"gzip"}}) == 415);
    // Multipart (SDP beside ISUP, or PIDF-LO) is taken when a part is SDP.
    CHECK(invite_content_status({.has_body = true, .type = "multipart/mixed", .multipart_has_sdp = true}) == 0);
    CHECK(invite_content_status({.has_body = true, .type = "multipart/mixed"}) == 415);
    // The type of an empty body does not matter.
    CHECK(invite_content_status({.has_body = false, .type = "application/unknownformat"}) == 0);
}

TEST_CASE("sip content: an Accept without SDP is 406") {
    using V = std::vector<std::string_view>;
    CHECK(invite_content_status({.accept = V{"text/nobodyKnowsThis"}}) == 406);
    CHECK(invite_content_status({.accept = V{"text/plain", "application/sdp"}}) == 0);
    CHECK(invite_content_status({.accept = V{"application/*"}}) == 0);
    CHECK(invite_content_status({.accept = V{"*/*"}}) == 0);
    // An empty Accept is no preference.
    CHECK(invite_content_status({.accept = V{}}) == 0);
    CHECK(invite_content_status({.accept = V{""}}) == 0);
    // 415 before 406: the body is examined first.
    CHECK(invite_content_status({.has_body = true, .type = "text/plain", .accept = V{"text/plain"}}) == 415);
}
