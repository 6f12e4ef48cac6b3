// DTMF carried in SIP INFO bodies, for phones and gateways that send digits
// in signalling rather than in RTP: application/dtmf-relay
// ("Signal=5\r\nDuration=160", Cisco's format that most devices use) and
// application/dtmf ("5").
//
// Threading: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace tandem::sip {

// The digit (0-9, *, #, A-D), or 0 when the body holds none. `duration_ms`
// receives the Duration when the body has one.
char parse_info_digit(std::string_view content_type, std::string_view body, std::uint32_t* duration_ms = nullptr);

}  // namespace tandem::sip
