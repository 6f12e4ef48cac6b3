// HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616,
// RFC 8760): hashing, challenges, credentials, and stateless nonces.
//
// Nonces carry their own issue time and an HMAC over it, the realm and the
// client's address, made with a secret that lives only in memory. Checking
// one needs no table: a forged or foreign nonce fails the HMAC, an old one is
// reported stale so the client retries with a fresh challenge without asking
// its user again. A restart changes the secret, which makes every nonce stale
// in the same way.
//
// Threading: free functions are pure; a NonceFactory is immutable after
// construction and safe to share.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::sip {

enum class DigestAlgorithm : std::uint8_t { md5, md5_sess, sha256, sha256_sess };

// "MD5", "MD5-sess", "SHA-256", "SHA-256-sess" (any case). An absent
// algorithm parameter means MD5.
std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view name);
std::string_view to_string(DigestAlgorithm a);

// Lower-case hex of the algorithm's hash of `data`.
std::string digest_hash(DigestAlgorithm a, std::string_view data);

// What a client sent in an Authorization (or Proxy-Authorization) header.
// Values are unquoted; absent parameters are empty.
struct DigestCredentials {
    std::string username, realm, nonce, uri, response, algorithm, cnonce, qop, nc, opaque;
};

// Parses `Digest username="a", realm="b", ...`. nullopt when the scheme is not
// Digest or the text is malformed (unterminated quote, missing '=').
std::optional<DigestCredentials> parse_digest_credentials(std::string_view header_value);

// HA1 from the password (for -sess, the session key with nonce and cnonce).
std::string digest_ha1(DigestAlgorithm a, std::string_view username, std::string_view realm, std::string_view password,
                       std::string_view nonce = {}, std::string_view cnonce = {});

// The response a client with `password` computes for `method` with the nonce,
// uri, qop, nc and cnonce of `c` (RFC 2617 §3.2.2.1; without qop, RFC 2069).
std::string digest_response(DigestAlgorithm a, std::string_view password, std::string_view method,
                            const DigestCredentials& c);

// Compares in time that does not depend on where the strings differ.
bool constant_time_equal(std::string_view a, std::string_view b);

// `Digest realm="r", nonce="n", algorithm=MD5, qop="auth"[, stale=TRUE]`
std::string digest_challenge(std::string_view realm, std::string_view nonce, DigestAlgorithm a, bool stale);

class NonceFactory {
public:
    enum class Verdict { valid, stale, invalid };
    using Secret = std::array<std::uint8_t, 32>;

    explicit NonceFactory(const Secret& secret) : secret_(secret) {}
    // A factory with a secret from the system's random generator.
    static NonceFactory with_random_secret();

    // A nonce issued at `now` (seconds since the epoch) for a client known by
    // `bound_to` (its address) in `realm`.
    std::string issue(std::int64_t now, std::string_view bound_to, std::string_view realm) const;
    // `invalid` for anything this factory did not issue for that client and
    // realm (or issued more than a minute in the future); `stale` once older
    // than `lifetime`.
    Verdict check(std::string_view nonce, std::int64_t now, std::string_view bound_to, std::string_view realm,
                  std::chrono::seconds lifetime) const;

private:
    std::string mac(std::uint64_t issued, std::string_view bound_to, std::string_view realm) const;
    Secret secret_;
};

}  // namespace tandem::sip
