// Whether Tandem can take the body of an incoming INVITE and answer it.
//
// RFC 3261 8.2.3: a UAS refuses a body whose type or encoding it does not
// understand with 415 (listing what it accepts), and RFC 3261 20.1: when the
// caller's Accept rules out SDP, no answer Tandem could send is acceptable
// (406). Both need nothing but the request, so the Sofia thread applies them
// before authentication, as the stack itself refuses unknown methods (405)
// and extensions (420). RFC 4475 3.3.6 and 3.3.15 are the torture tests.
//
// Threading: pure functions on values.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace tandem::sip {

struct InviteContent {
    bool has_body = false;
    std::string_view type;                                // Content-Type "type/subtype"; empty when absent
    bool multipart_has_sdp = false;                       // a multipart/* body with an application/sdp part
    std::vector<std::string_view> encodings;              // Content-Encoding values
    std::optional<std::vector<std::string_view>> accept;  // Accept media ranges; none when the header is absent
};

// 0 when the INVITE is acceptable, else 415 or 406.
int invite_content_status(const InviteContent& c);

}  // namespace tandem::sip
