// Digest authentication of SIP requests against the configured endpoints.
//
// One rule for every method: a request without valid credentials for our
// realm is challenged (401, or 407 for methods a proxy would challenge); a
// request with credentials that do not match is rejected with 403 and counts
// as an authentication failure for the auto-ban. An unknown user, a wrong
// password and a source refused by the endpoint's ACL look exactly the same
// from outside (same status, same headers, and the same hashing work), unless
// alwaysauthreject=no, where an unknown user gets 404.
//
// Threading: const and stateless apart from the immutable NonceFactory; call
// from any loop.
#pragma once

#include "digest.hpp"
#include "message.hpp"
#include "settings.hpp"

#include <cstdint>
#include <string>

namespace tandem::sip {

struct AuthOutcome {
    enum class Kind { authenticated, challenged, rejected };
    Kind kind = Kind::challenged;
    const Endpoint* endpoint = nullptr;  // when authenticated
    bool failure = false;                // counts towards the auto-ban
    std::string reason;                  // for the log: "wrong password", "unknown user", ...
    std::string username;                // as the client sent it (may be empty)
    SipResponse response;                // to send when not authenticated
};

class Authenticator {
public:
    explicit Authenticator(NonceFactory nonces) : nonces_(std::move(nonces)) {}

    // `now` in seconds since the epoch. With `proxy`, challenges are 407 with
    // Proxy-Authenticate and credentials are read from Proxy-Authorization
    // (the caller passes those header values in rq.authorization).
    AuthOutcome authenticate(const SipRequest& rq, const Settings& s, std::int64_t now, bool proxy = false) const;
    SipResponse challenge(const SipRequest& rq, const Settings& s, std::int64_t now, bool stale, bool proxy) const;

private:
    NonceFactory nonces_;
};

}  // namespace tandem::sip
