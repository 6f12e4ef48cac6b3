// SIP requests and responses as plain C++ values.
//
// The Sofia thread turns what it receives into a SipRequest (strings and
// numbers only, no Sofia object) before handing it to a Tandem loop, and the
// loop answers with a SipResponse that the Sofia thread turns back into a
// message. So the registrar, the authenticator and everything after them never
// see a Sofia type, run on any loop, and are tested without a network.
//
// Threading: values.
#pragma once

#include "net.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::sip {

enum class Transport : std::uint8_t { udp, tcp, tls };

std::string_view to_string(Transport t);
std::optional<Transport> parse_transport(std::string_view name);

struct ContactHeader {
    std::string uri;                   // the URI inside <...>, with its own parameters
    std::optional<long long> expires;  // the ;expires= header parameter
    std::string q;                     // the ;q= parameter, as written
    std::string instance;              // the ;+sip.instance= parameter, unquoted
};

struct SipRequest {
    std::string method;
    std::string request_uri;
    std::string from_uri, to_uri;
    std::string to_user;  // user part of the To URI (the address of record)
    std::string call_id;
    std::uint32_t cseq = 0;
    std::optional<long long> expires;  // the Expires header
    bool contact_star = false;         // "Contact: *"
    std::vector<ContactHeader> contacts;
    std::vector<std::string> authorization;  // values of Authorization headers
    std::vector<std::string> path;           // values of Path headers, in order
    std::vector<std::string> supported;      // option tags of Supported
    std::string user_agent;
    SocketAddress source;  // where the request came from (after NAT)
    Transport transport = Transport::udp;

    bool supports(std::string_view option_tag) const;
};

struct SipResponse {
    int status = 500;
    std::string phrase;
    std::vector<std::pair<std::string, std::string>> headers;

    SipResponse() = default;
    SipResponse(int s, std::string p) : status(s), phrase(std::move(p)) {}
    SipResponse& add(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    // The value of the first header called `name` (case-insensitive), or "".
    std::string header(std::string_view name) const;
    // "Name: value\r\n..." with line breaks removed from values.
    std::string header_block() const;
};

// RFC 1123 date for the Date header.
std::string http_date(std::int64_t unix_seconds);

}  // namespace tandem::sip
