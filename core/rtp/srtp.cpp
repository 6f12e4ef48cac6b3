#include "rtp/srtp.hpp"

#include <srtp2/srtp.h>
#include <sys/random.h>

#include <cstring>
#include <mutex>
#include <string>

namespace tandem {

namespace {

constexpr std::string_view suite80 = "AES_CM_128_HMAC_SHA1_80";
constexpr std::string_view suite32 = "AES_CM_128_HMAC_SHA1_32";
constexpr char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const std::uint8_t* p, std::size_t n) {
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (std::size_t i = 0; i < n; i += 3) {
        std::uint32_t v = std::uint32_t(p[i]) << 16;
        if (i + 1 < n) v |= std::uint32_t(p[i + 1]) << 8;
        if (i + 2 < n) v |= p[i + 2];
        out += b64chars[(v >> 18) & 63];
        out += b64chars[(v >> 12) & 63];
        out += i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out += i + 2 < n ? b64chars[v & 63] : '=';
    }
    return out;
}

int b64value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Decodes into `out`; returns the byte count or -1 on a bad character.
int unbase64(std::string_view in, std::uint8_t* out, std::size_t cap) {
    std::uint32_t acc = 0;
    int bits = 0;
    std::size_t n = 0;
    for (char c : in) {
        if (c == '=') break;
        int v = b64value(c);
        if (v < 0) return -1;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap) return -1;
            out[n++] = static_cast<std::uint8_t>(acc >> bits);
        }
    }
    return static_cast<int>(n);
}

bool ieq(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::toupper(static_cast<unsigned char>(a[i])) != std::toupper(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string_view next_word(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    auto end = s.find_first_of(" \t");
    auto w = s.substr(0, end);
    s.remove_prefix(end == std::string_view::npos ? s.size() : end);
    return w;
}

}  // namespace

std::string_view srtp_suite_name(SrtpSuite s) {
    return s == SrtpSuite::aes_cm_128_hmac_sha1_32 ? suite32 : suite80;
}

SrtpCrypto SrtpCrypto::generate(SrtpSuite suite, int tag) {
    SrtpCrypto c;
    c.suite = suite;
    c.tag = tag;
    std::size_t got = 0;
    while (got < c.key.size()) {
        auto n = ::getrandom(c.key.data() + got, c.key.size() - got, 0);
        if (n > 0) got += static_cast<std::size_t>(n);
    }
    return c;
}

std::optional<SrtpCrypto> SrtpCrypto::parse(std::string_view a) {
    if (a.starts_with("a=")) a.remove_prefix(2);
    if (a.size() >= 7 && ieq(a.substr(0, 7), "crypto:")) a.remove_prefix(7);
    while (!a.empty() && (a.back() == '\r' || a.back() == '\n' || a.back() == ' ')) a.remove_suffix(1);
    SrtpCrypto c;
    auto tag = next_word(a);
    if (tag.empty() || tag.size() > 9) return std::nullopt;
    int t = 0;
    for (char ch : tag) {
        if (ch < '0' || ch > '9') return std::nullopt;
        t = t * 10 + (ch - '0');
    }
    c.tag = t;
    auto suite = next_word(a);
    if (ieq(suite, suite80))
        c.suite = SrtpSuite::aes_cm_128_hmac_sha1_80;
    else if (ieq(suite, suite32))
        c.suite = SrtpSuite::aes_cm_128_hmac_sha1_32;
    else
        return std::nullopt;
    auto params = next_word(a);
    if (params.size() < 7 || !ieq(params.substr(0, 7), "inline:")) return std::nullopt;
    params.remove_prefix(7);
    // Only the first key of a list; lifetime and MKI after '|'.
    params = params.substr(0, params.find(';'));
    auto bar = params.find('|');
    auto key = params.substr(0, bar);
    if (bar != std::string_view::npos) {
        // A lifetime ("2^31") is fine; an MKI ("1:4") would put an index in
        // every packet, which we do not handle: refuse it so the offer
        // falls back to another crypto line.
        if (params.substr(bar + 1).find(':') != std::string_view::npos) return std::nullopt;
    }
    std::uint8_t buf[48];
    if (unbase64(key, buf, sizeof buf) != static_cast<int>(c.key.size())) return std::nullopt;
    std::memcpy(c.key.data(), buf, c.key.size());
    return c;
}

std::string SrtpCrypto::to_sdp() const {
    return std::to_string(tag) + " " + std::string(srtp_suite_name(suite)) +
           " inline:" + base64(key.data(), key.size());
}

namespace rtp {

namespace {
bool ensure_srtp_init() {
    // libsrtp keeps process-wide tables (crypto kernel); it must be set up
    // exactly once, whichever core or thread first needs it.
    static std::once_flag once;
    static bool ok = false;
    std::call_once(once, [] { ok = srtp_init() == srtp_err_status_ok; });
    return ok;
}
}  // namespace

std::unique_ptr<SrtpContext> SrtpContext::create(const SrtpCrypto& crypto, Direction dir) {
    static_assert(SRTP_MAX_TRAILER_LEN <= srtp_max_trailer);
    if (!ensure_srtp_init()) return nullptr;
    srtp_policy_t policy;
    std::memset(&policy, 0, sizeof policy);
    if (crypto.suite == SrtpSuite::aes_cm_128_hmac_sha1_32)
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp);
    else
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
    // RFC 4568: SRTCP always carries an 80-bit tag, for both suites.
    srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
    policy.ssrc.type = dir == Direction::outbound ? ssrc_any_outbound : ssrc_any_inbound;
    std::array<std::uint8_t, 30> key = crypto.key;
    policy.key = key.data();
    policy.window_size = 128;
    policy.allow_repeat_tx = 0;
    srtp_t ctx = nullptr;
    if (srtp_create(&ctx, &policy) != srtp_err_status_ok) return nullptr;
    std::unique_ptr<SrtpContext> c(new SrtpContext);
    c->ctx_ = ctx;
    return c;
}

SrtpContext::~SrtpContext() {
    if (ctx_) srtp_dealloc(static_cast<srtp_t>(ctx_));
}

bool SrtpContext::protect_rtp(std::uint8_t* data, int& len) {
    return srtp_protect(static_cast<srtp_t>(ctx_), data, &len) == srtp_err_status_ok;
}
bool SrtpContext::unprotect_rtp(std::uint8_t* data, int& len) {
    return srtp_unprotect(static_cast<srtp_t>(ctx_), data, &len) == srtp_err_status_ok;
}
bool SrtpContext::protect_rtcp(std::uint8_t* data, int& len) {
    return srtp_protect_rtcp(static_cast<srtp_t>(ctx_), data, &len) == srtp_err_status_ok;
}
bool SrtpContext::unprotect_rtcp(std::uint8_t* data, int& len) {
    return srtp_unprotect_rtcp(static_cast<srtp_t>(ctx_), data, &len) == srtp_err_status_ok;
}

}  // namespace rtp
}  // namespace tandem
