#include "auth.hpp"

#include <algorithm>

namespace tandem::sip {

namespace {

// Stands in for the password of a user that does not exist, so a lookup miss
// costs the same hashing as a wrong password.
constexpr std::string_view decoy_secret = "decoy-secret-for-unknown-users";

bool offered(const GeneralSettings& g, DigestAlgorithm a) {
    return std::find(g.auth_algorithms.begin(), g.auth_algorithms.end(), a) != g.auth_algorithms.end();
}

}  // namespace

SipResponse Authenticator::challenge(const SipRequest& rq, const Settings& s, std::int64_t now, bool stale,
                                     bool proxy) const {
    SipResponse r = proxy ? SipResponse(407, "Proxy Authentication Required") : SipResponse(401, "Unauthorized");
    auto nonce = nonces_.issue(now, rq.source.ip.str(), s.general.realm);
    for (auto a : s.general.auth_algorithms)
        r.add(proxy ? "Proxy-Authenticate" : "WWW-Authenticate", digest_challenge(s.general.realm, nonce, a, stale));
    return r;
}

AuthOutcome Authenticator::authenticate(const SipRequest& rq, const Settings& s, std::int64_t now, bool proxy) const {
    AuthOutcome out;
    const auto& g = s.general;

    std::optional<DigestCredentials> creds;
    for (auto& h : rq.authorization) {
        auto c = parse_digest_credentials(h);
        if (c && c->realm == g.realm) {
            creds = std::move(c);
            break;
        }
    }
    auto challenge_with = [&](std::string reason, bool stale) {
        out.kind = AuthOutcome::Kind::challenged;
        out.reason = std::move(reason);
        out.response = challenge(rq, s, now, stale, proxy);
        return out;
    };
    if (!creds) return challenge_with("no credentials", false);
    out.username = creds->username;

    auto alg = parse_digest_algorithm(creds->algorithm);
    if (!alg || !offered(g, *alg)) return challenge_with("algorithm not offered", false);
    if (!creds->qop.empty() && (creds->qop != "auth" || creds->nc.empty() || creds->cnonce.empty()))
        return challenge_with("unsupported qop", false);
    if (creds->username.empty() || creds->response.empty() || creds->uri.empty())
        return challenge_with("incomplete credentials", false);

    switch (nonces_.check(creds->nonce, now, rq.source.ip.str(), g.realm, g.nonce_lifetime)) {
        case NonceFactory::Verdict::invalid:
            return challenge_with("unknown nonce", false);
        case NonceFactory::Verdict::stale:
            return challenge_with("stale nonce", true);
        case NonceFactory::Verdict::valid:
            break;
    }

    const Endpoint* ep = s.find(creds->username);
    bool known = ep && !ep->secret.empty();
    auto expected = digest_response(*alg, known ? std::string_view(ep->secret) : decoy_secret, rq.method, *creds);
    bool match = constant_time_equal(expected, creds->response);

    auto reject = [&](std::string reason) {
        out.kind = AuthOutcome::Kind::rejected;
        out.failure = true;
        out.reason = std::move(reason);
        out.response = !known && !g.alwaysauthreject ? SipResponse(404, "Not Found") : SipResponse(403, "Forbidden");
        return out;
    };
    if (!known) return reject("unknown user");
    if (!match) return reject("wrong password");
    if (!ep->acl.allows(rq.source.ip)) return reject("address not permitted by the endpoint's ACL");
    out.kind = AuthOutcome::Kind::authenticated;
    out.endpoint = ep;
    return out;
}

}  // namespace tandem::sip
