// SDES keys (RFC 4568) as SDP carries them: generation, formatting, parsing,
// and the lines that must be refused.
#include <tandem/rtp.hpp>

#include <doctest/doctest.h>

using namespace tandem;

TEST_CASE("srtp: generated keys format and parse back") {
    for (auto suite : {SrtpSuite::aes_cm_128_hmac_sha1_80, SrtpSuite::aes_cm_128_hmac_sha1_32}) {
        auto k = SrtpCrypto::generate(suite, 2);
        auto text = k.to_sdp();
        CHECK(text.starts_with("2 " + std::string(srtp_suite_name(suite)) + " inline:"));
        CHECK(text.size() == std::string("2 ").size() + srtp_suite_name(suite).size() + 8 + 40);
        auto back = SrtpCrypto::parse("a=crypto:" + text + "\r\n");
        REQUIRE(back);
        CHECK(back->tag == 2);
        CHECK(back->suite == suite);
        CHECK(back->key == k.key);
    }
    CHECK(SrtpCrypto::generate().key != SrtpCrypto::generate().key);
}

TEST_CASE("srtp: a=crypto lines from the field") {
    // RFC 4568's example key, with a lifetime: accepted.
    auto c = SrtpCrypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20");
    REQUIRE(c);
    CHECK(c->tag == 1);
    CHECK(c->key[0] == 0x3d);
    CHECK(
        SrtpCrypto::parse("crypto:3 aes_cm_128_hmac_sha1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR "
                          "UNENCRYPTED_SRTCP"));
    // Refused: MKI, unknown suite, short or bad key, missing inline:, bad tag.
    CHECK_FALSE(
        SrtpCrypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4"));
    CHECK_FALSE(SrtpCrypto::parse("1 AES_256_CM_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"));
    CHECK_FALSE(SrtpCrypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkp"));
    CHECK_FALSE(SrtpCrypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVB!"));
    CHECK_FALSE(SrtpCrypto::parse("1 AES_CM_128_HMAC_SHA1_80 PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"));
    CHECK_FALSE(SrtpCrypto::parse("x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"));
    CHECK_FALSE(SrtpCrypto::parse(""));
    CHECK_FALSE(SrtpCrypto::parse("1"));
}
