#include "digest.hpp"
#include "text.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace tandem::sip {

namespace {

std::string to_hex(const unsigned char* p, std::size_t n) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 0x0f];
    }
    return out;
}

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool is_sess(DigestAlgorithm a) {
    return a == DigestAlgorithm::md5_sess || a == DigestAlgorithm::sha256_sess;
}

}  // namespace

std::optional<DigestAlgorithm> parse_digest_algorithm(std::string_view name) {
    if (name.empty() || iequals(name, "MD5")) return DigestAlgorithm::md5;
    if (iequals(name, "MD5-sess")) return DigestAlgorithm::md5_sess;
    if (iequals(name, "SHA-256")) return DigestAlgorithm::sha256;
    if (iequals(name, "SHA-256-sess")) return DigestAlgorithm::sha256_sess;
    return std::nullopt;
}

std::string_view to_string(DigestAlgorithm a) {
    switch (a) {
        case DigestAlgorithm::md5:
            return "MD5";
        case DigestAlgorithm::md5_sess:
            return "MD5-sess";
        case DigestAlgorithm::sha256:
            return "SHA-256";
        case DigestAlgorithm::sha256_sess:
            return "SHA-256-sess";
    }
    return "MD5";
}

std::string digest_hash(DigestAlgorithm a, std::string_view data) {
    const EVP_MD* md = a == DigestAlgorithm::md5 || a == DigestAlgorithm::md5_sess ? EVP_md5() : EVP_sha256();
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
        throw std::runtime_error("digest: hash function unavailable");
    return to_hex(out, len);
}

std::optional<DigestCredentials> parse_digest_credentials(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t scheme_start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (!iequals(s.substr(scheme_start, i - scheme_start), "Digest")) return std::nullopt;

    DigestCredentials c;
    for (;;) {
        while (i < s.size() && (is_space(s[i]) || s[i] == ',')) ++i;
        if (i >= s.size()) break;
        std::size_t name_start = i;
        while (i < s.size() && s[i] != '=' && s[i] != ',' && !is_space(s[i])) ++i;
        auto name = s.substr(name_start, i - name_start);
        while (i < s.size() && is_space(s[i])) ++i;
        if (i >= s.size() || s[i] != '=') return std::nullopt;
        ++i;
        while (i < s.size() && is_space(s[i])) ++i;
        std::string value;
        if (i < s.size() && s[i] == '"') {
            ++i;
            bool closed = false;
            while (i < s.size()) {
                char ch = s[i++];
                if (ch == '\\' && i < s.size()) {
                    value += s[i++];
                } else if (ch == '"') {
                    closed = true;
                    break;
                } else {
                    value += ch;
                }
            }
            if (!closed) return std::nullopt;
        } else {
            std::size_t v = i;
            while (i < s.size() && s[i] != ',' && !is_space(s[i])) ++i;
            value = std::string(s.substr(v, i - v));
        }
        if (name.empty()) return std::nullopt;
        if (iequals(name, "username"))
            c.username = std::move(value);
        else if (iequals(name, "realm"))
            c.realm = std::move(value);
        else if (iequals(name, "nonce"))
            c.nonce = std::move(value);
        else if (iequals(name, "uri"))
            c.uri = std::move(value);
        else if (iequals(name, "response"))
            c.response = std::move(value);
        else if (iequals(name, "algorithm"))
            c.algorithm = std::move(value);
        else if (iequals(name, "cnonce"))
            c.cnonce = std::move(value);
        else if (iequals(name, "qop"))
            c.qop = std::move(value);
        else if (iequals(name, "nc"))
            c.nc = std::move(value);
        else if (iequals(name, "opaque"))
            c.opaque = std::move(value);
    }
    return c;
}

std::string digest_ha1(DigestAlgorithm a, std::string_view username, std::string_view realm, std::string_view password,
                       std::string_view nonce, std::string_view cnonce) {
    std::string text;
    text.reserve(username.size() + realm.size() + password.size() + 2);
    text.append(username).append(":").append(realm).append(":").append(password);
    auto ha1 = digest_hash(a, text);
    if (is_sess(a)) ha1 = digest_hash(a, ha1 + ":" + std::string(nonce) + ":" + std::string(cnonce));
    return ha1;
}

std::string digest_response(DigestAlgorithm a, std::string_view password, std::string_view method,
                            const DigestCredentials& c) {
    auto ha1 = digest_ha1(a, c.username, c.realm, password, c.nonce, c.cnonce);
    auto ha2 = digest_hash(a, std::string(method) + ":" + c.uri);
    if (c.qop.empty()) return digest_hash(a, ha1 + ":" + c.nonce + ":" + ha2);
    return digest_hash(a, ha1 + ":" + c.nonce + ":" + c.nc + ":" + c.cnonce + ":" + c.qop + ":" + ha2);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    std::size_t n = a.size() < b.size() ? a.size() : b.size();
    for (std::size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

std::string digest_challenge(std::string_view realm, std::string_view nonce, DigestAlgorithm a, bool stale) {
    std::string out = "Digest realm=\"";
    for (char c : realm) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    out += "\", nonce=\"";
    out += nonce;
    out += "\", algorithm=";
    out += to_string(a);
    out += ", qop=\"auth\"";
    if (stale) out += ", stale=TRUE";
    return out;
}

NonceFactory NonceFactory::with_random_secret() {
    Secret s{};
    if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1)
        throw std::runtime_error("cannot read random bytes for the nonce secret");
    return NonceFactory(s);
}

std::string NonceFactory::mac(std::uint64_t issued, std::string_view bound_to, std::string_view realm) const {
    std::string msg;
    for (int shift = 56; shift >= 0; shift -= 8) msg += static_cast<char>((issued >> shift) & 0xff);
    msg += '|';
    msg.append(bound_to);
    msg += '|';
    msg.append(realm);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
              reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len))
        throw std::runtime_error("nonce: HMAC unavailable");
    return to_hex(out, 16);
}

std::string NonceFactory::issue(std::int64_t now, std::string_view bound_to, std::string_view realm) const {
    auto t = static_cast<std::uint64_t>(now);
    unsigned char stamp[8];
    for (int i = 0; i < 8; ++i) stamp[i] = static_cast<unsigned char>(t >> (56 - 8 * i));
    return to_hex(stamp, 8) + mac(t, bound_to, realm);
}

NonceFactory::Verdict NonceFactory::check(std::string_view nonce, std::int64_t now, std::string_view bound_to,
                                          std::string_view realm, std::chrono::seconds lifetime) const {
    if (nonce.size() != 48) return Verdict::invalid;
    std::uint64_t issued = 0;
    for (std::size_t i = 0; i < 16; ++i) {
        char c = nonce[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0) return Verdict::invalid;
        issued = issued << 4 | static_cast<std::uint64_t>(v);
    }
    if (!constant_time_equal(nonce.substr(16), mac(issued, bound_to, realm))) return Verdict::invalid;
    auto age = now - static_cast<std::int64_t>(issued);
    if (age < -60) return Verdict::invalid;
    if (age > lifetime.count()) return Verdict::stale;
    return Verdict::valid;
}

}  // namespace tandem::sip
