// Call transfer (RFC 3515 REFER, RFC 3891 Replaces, RFC 5589): the pure
// parts, as plain values.
//
// A phone transfers with a REFER in the dialog of the call being
// transferred. Its Refer-To names the target: a plain URI for a blind
// transfer (sip:1003@pbx), or one that carries a Replaces header for an
// attended transfer (sip:1003@pbx?Replaces=<call-id>%3Bto-tag%3D..%3Bfrom-tag%3D..),
// naming the transferer's other call, the one to join to the transferee.
// These helpers take such text apart; they never trust it: anything
// malformed is std::nullopt, never an exception or a crash. The Sofia
// thread and the loops (call.cpp) use them.
//
// Threading: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tandem::sip {

// The Replaces header value (RFC 3891): call-id;to-tag=..;from-tag=..[;early-only].
struct ReplacesParam {
    std::string call_id, to_tag, from_tag;
    bool early_only = false;
};

struct ReferTarget {
    std::string user;  // percent-decoded: the extension for a blind transfer
    std::string host;  // as written (with its port, if any)
    std::optional<ReplacesParam> replaces;
};

// "%3B" -> ";"; nullopt when an escape is malformed.
std::optional<std::string> percent_decode(std::string_view text);

// Parses a Replaces value; nullopt when the call-id or either tag is missing.
std::optional<ReplacesParam> parse_replaces(std::string_view value);

// Parses a Refer-To URI (with or without <...>, sip: or sips:). nullopt when
// it is not a SIP URI, has no host, a user with control characters, or a
// Replaces header that does not parse.
std::optional<ReferTarget> parse_refer_to(std::string_view uri);

// A message/sipfrag body line for a NOTIFY: "SIP/2.0 200 OK".
std::string sipfrag(int status, std::string_view phrase);

// What event::Transfer calls a REFER: "attended" when its Refer-To carries a
// Replaces that parses, else "blind".
std::string_view transfer_kind(std::string_view refer_to);

}  // namespace tandem::sip
