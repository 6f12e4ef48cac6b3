// chan_sip: SDP parsing, formatting and offer/answer negotiation.
#include <doctest/doctest.h>

#include "chan_sip/dtmf_info.hpp"
#include "chan_sip/sdp.hpp"

#include <string>

using namespace tandem;
using namespace tandem::sip;

namespace {

std::string crlf(std::string s) {
    std::string out;
    for (char c : s) {
        if (c == '\n') out += '\r';
        out += c;
    }
    return out;
}

// What Asterisk's chan_sip offers.
const std::string asterisk_offer = crlf(R"(v=0
o=root 1790491420 1790491420 IN IP4 192.0.2.10
s=Asterisk PBX 18.0.0
c=IN IP4 192.0.2.10
t=0 0
m=audio 17442 RTP/AVP 8 0 9 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
)");

// What baresip offers: opus first, dynamic types, rtcp attribute.
const std::string baresip_offer = crlf(R"(v=0
o=- 1234 5678 IN IP4 198.51.100.7
s=-
c=IN IP4 198.51.100.7
t=0 0
m=audio 10004 RTP/AVP 96 0 8 97
b=AS:64
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:97 telephone-event/8000
a=fmtp:97 0-15
a=rtcp:10005
a=sendrecv
a=label:1
m=video 10006 RTP/AVP 100
a=rtpmap:100 H264/90000
)");

// SIPp's uac_pcap style: static type without rtpmap.
const std::string sipp_offer = crlf(R"(v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
)");

MediaPolicy policy(std::vector<Format> codecs) {
    MediaPolicy p;
    p.codecs = std::move(codecs);
    return p;
}

LocalMedia local(std::uint16_t port = 20000) {
    LocalMedia l;
    l.address = "127.0.0.1";
    l.port = port;
    return l;
}

}  // namespace

TEST_CASE("sdp: parse an Asterisk offer") {
    auto s = parse_sdp(asterisk_offer);
    REQUIRE(s);
    CHECK(s->origin_user == "root");
    CHECK(s->connection == "192.0.2.10");
    REQUIRE(s->media.size() == 1);
    auto& m = s->media[0];
    CHECK(m.type == "audio");
    CHECK(m.port == 17442);
    CHECK(m.formats == std::vector<std::string>{"8", "0", "9", "101"});
    CHECK(m.ptime == 20);
    CHECK(m.maxptime == 150);
    CHECK(s->direction_of(m) == Direction::sendrecv);
    auto ev = m.rtpmap(101);
    REQUIRE(ev);
    CHECK(ev->encoding == "telephone-event");
    CHECK(ev->fmtp == "0-16");
    // A static type without rtpmap still resolves.
    auto s2 = parse_sdp(sipp_offer);
    REQUIRE(s2);
    auto pcmu = s2->media[0].rtpmap(0);
    REQUIRE(pcmu);
    CHECK(pcmu->encoding == "PCMU");
    CHECK(pcmu->clock == 8000);
}

TEST_CASE("sdp: garbage is refused, not crashed on") {
    std::string error;
    CHECK_FALSE(parse_sdp("", &error));
    CHECK_FALSE(parse_sdp("hello world", &error));
    CHECK_FALSE(parse_sdp("v=1\r\n", &error));
    CHECK_FALSE(parse_sdp("v=0\r\nm=audio notaport RTP/AVP 0\r\n", &error));
    CHECK_FALSE(parse_sdp("v=0\r\nm=audio 4000 RTP/AVP 300\r\n", &error));
    CHECK_FALSE(parse_sdp("v=0\r\nc=IN IP4\r\n", &error));
    CHECK_FALSE(parse_sdp("v=0\r\nm=audio 70000 RTP/AVP 0\r\n", &error));
    std::string many = "v=0\r\n";
    for (int i = 0; i < 1000; ++i) many += "a=x\r\n";
    CHECK_FALSE(parse_sdp(many, &error));
    CHECK(error == "too many lines");
    std::string binary("v=0\r\n\0\x01\xff=\r\n", 11);
    CHECK_FALSE(parse_sdp(binary, &error));
}

TEST_CASE("sdp: answer by the endpoint's allow= order, with telephone-event") {
    auto offer = parse_sdp(asterisk_offer);
    REQUIRE(offer);
    auto out = answer_offer(*offer, policy({Format::ulaw, Format::alaw}), local());
    REQUIRE(out.status == 200);
    CHECK(out.plan.format == Format::ulaw);
    CHECK(out.plan.pt == 0);
    CHECK(out.plan.telephone_event_pt == 101);
    CHECK(out.plan.remote_address == "192.0.2.10");
    CHECK(out.plan.remote_port == 17442);
    CHECK(out.plan.local == Direction::sendrecv);
    CHECK_FALSE(out.plan.on_hold());
    auto text = format_sdp(out.answer);
    CHECK(text.find("m=audio 20000 RTP/AVP 0 101\r\n") != std::string::npos);
    CHECK(text.find("c=IN IP4 127.0.0.1\r\n") != std::string::npos);
    CHECK(text.find("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n") != std::string::npos);
    CHECK(text.find("a=sendrecv") != std::string::npos);
    // What we write parses back to the same thing.
    auto again = parse_sdp(text);
    REQUIRE(again);
    CHECK(again->media[0].formats == std::vector<std::string>{"0", "101"});
}

TEST_CASE("sdp: dynamic payload types, and video refused with port 0") {
    auto offer = parse_sdp(baresip_offer);
    REQUIRE(offer);
    CHECK(offer->media[0].rtcp_port == 10005);
    auto out = answer_offer(*offer, policy({Format::opus, Format::ulaw}), local());
    REQUIRE(out.status == 200);
    CHECK(out.plan.format == Format::opus);
    CHECK(out.plan.pt == 96);
    CHECK(out.plan.fmtp == "stereo=1;sprop-stereo=1");
    // telephone-event/8000 does not match opus' 48 kHz clock.
    CHECK(out.plan.telephone_event_pt == -1);
    CHECK(out.plan.remote_rtcp_port == 10005);
    REQUIRE(out.answer.media.size() == 2);
    CHECK(out.answer.media[1].port == 0);
    CHECK(out.answer.media[1].type == "video");
    // With ulaw preferred, the static type and events at 8 kHz.
    out = answer_offer(*offer, policy({Format::ulaw, Format::opus}), local());
    CHECK(out.plan.format == Format::ulaw);
    CHECK(out.plan.pt == 0);
    CHECK(out.plan.telephone_event_pt == 97);
}

TEST_CASE("sdp: no common codec is 488") {
    auto offer = parse_sdp(sipp_offer);
    REQUIRE(offer);
    auto out = answer_offer(*offer, policy({Format::g722, Format::alaw}), local());
    CHECK(out.status == 488);
    CHECK(out.reason == "no codec in common");
    auto video_only = parse_sdp("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n");
    REQUIRE(video_only);
    CHECK(answer_offer(*video_only, policy({Format::ulaw}), local()).status == 488);
}

TEST_CASE("sdp: hold and resume directions") {
    auto held = parse_sdp(crlf(R"(v=0
o=- 1 2 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 4000 RTP/AVP 0
a=sendonly
)"));
    REQUIRE(held);
    auto out = answer_offer(*held, policy({Format::ulaw}), local());
    CHECK(out.plan.on_hold());
    CHECK(out.plan.local == Direction::recvonly);
    CHECK(format_sdp(out.answer).find("a=recvonly") != std::string::npos);

    auto inactive = parse_sdp("v=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n");
    REQUIRE(inactive);
    out = answer_offer(*inactive, policy({Format::ulaw}), local());
    CHECK(out.plan.on_hold());
    CHECK(out.plan.local == Direction::inactive);

    // RFC 2543 style hold: connection address 0.0.0.0.
    auto zero = parse_sdp("v=0\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
    REQUIRE(zero);
    CHECK(answer_offer(*zero, policy({Format::ulaw}), local()).plan.on_hold());

    auto resume = parse_sdp("v=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n");
    REQUIRE(resume);
    out = answer_offer(*resume, policy({Format::ulaw}), local());
    CHECK_FALSE(out.plan.on_hold());
    CHECK(out.plan.local == Direction::sendrecv);
    CHECK(reverse(Direction::recvonly) == Direction::sendonly);
}

TEST_CASE("sdp: SRTP with a=crypto") {
    const std::string key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
    auto savp = parse_sdp(crlf(R"(v=0
o=- 1 2 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 4000 RTP/SAVP 0 101
a=rtpmap:101 telephone-event/8000
a=crypto:1 AES_CM_256_HMAC_SHA1_80 inline:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB|2^20|1:32
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20
)"));
    REQUIRE(savp);
    CHECK(savp->media[0].crypto.size() == 3);
    auto l = local();
    l.srtp_key = key;
    auto pol = policy({Format::ulaw});
    pol.require_srtp = true;
    auto out = answer_offer(*savp, pol, l);
    REQUIRE(out.status == 200);
    CHECK(out.plan.srtp);
    CHECK(out.plan.crypto_suite == "AES_CM_128_HMAC_SHA1_80");
    // An unknown suite and a key with an MKI are passed over.
    CHECK(out.plan.remote_crypto.starts_with("3 AES_CM_128_HMAC_SHA1_80 inline:PS1u"));
    auto text = format_sdp(out.answer);
    CHECK(text.find("m=audio 20000 RTP/SAVP 0 101") != std::string::npos);
    CHECK(text.find("a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:" + key) != std::string::npos);

    // Plain RTP to an endpoint that requires SRTP: 488.
    auto plain = parse_sdp(sipp_offer);
    REQUIRE(plain);
    CHECK(answer_offer(*plain, pol, l).status == 488);

    // Our SRTP offer, and an answer without crypto refused.
    auto offer = make_offer(pol, l);
    auto offer_text = format_sdp(offer);
    CHECK(offer_text.find("RTP/SAVP") != std::string::npos);
    CHECK(offer_text.find("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + key) != std::string::npos);
    auto bad = parse_sdp("v=0\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n");
    REQUIRE(bad);
    std::string error;
    CHECK_FALSE(accept_answer(offer, *bad, pol, &error));
    CHECK(error.find("SRTP") != std::string::npos);
    auto good = parse_sdp(crlf(R"(v=0
c=IN IP4 10.0.0.2
t=0 0
m=audio 5000 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR
)"));
    REQUIRE(good);
    auto plan = accept_answer(offer, *good, pol, &error);
    REQUIRE(plan);
    CHECK(plan->srtp);
}

TEST_CASE("sdp: our offer and the answer to it") {
    auto pol = policy({Format::opus, Format::ulaw, Format::g722});
    auto offer = make_offer(pol, local(30000));
    auto text = format_sdp(offer);
    CHECK(text.find("m=audio 30000 RTP/AVP 96 0 9 101\r\n") != std::string::npos);
    CHECK(text.find("a=rtpmap:96 opus/48000/2\r\n") != std::string::npos);
    CHECK(text.find("a=rtpmap:9 G722/8000\r\n") != std::string::npos);
    CHECK(text.find("a=fmtp:101 0-16\r\n") != std::string::npos);
    auto answer = parse_sdp(crlf(R"(v=0
o=- 5 5 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 7000 RTP/AVP 9 101
a=rtpmap:101 telephone-event/8000
a=ptime:30
)"));
    REQUIRE(answer);
    auto plan = accept_answer(offer, *answer, pol);
    REQUIRE(plan);
    CHECK(plan->format == Format::g722);
    CHECK(plan->pt == 9);
    CHECK(plan->telephone_event_pt == 101);
    CHECK(plan->ptime == 30);
    CHECK(plan->remote_address == "10.1.1.1");
    CHECK(plan->remote_port == 7000);
    auto wrong = parse_sdp("v=0\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 18\r\n");
    REQUIRE(wrong);
    CHECK_FALSE(accept_answer(offer, *wrong, pol));
}

TEST_CASE("sip info: DTMF in application/dtmf-relay and application/dtmf bodies") {
    std::uint32_t ms = 0;
    CHECK(parse_info_digit("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", &ms) == '5');
    CHECK(ms == 160);
    CHECK(parse_info_digit("Application/DTMF-Relay", "Signal= #\nDuration= 250", &ms) == '#');
    CHECK(ms == 250);
    CHECK(parse_info_digit("application/dtmf-relay", "Signal=11\r\n") == '#');
    CHECK(parse_info_digit("application/dtmf-relay", "Signal=10\r\n") == '*');
    CHECK(parse_info_digit("application/dtmf-relay", "Signal=a\r\n") == 'A');
    CHECK(parse_info_digit("application/dtmf", "7\r\n") == '7');
    CHECK(parse_info_digit("application/dtmf; charset=x", "9") == '9');
    CHECK(parse_info_digit("application/dtmf-relay", "Signal=Z\r\n") == 0);
    CHECK(parse_info_digit("application/dtmf-relay", "Duration=100\r\n") == 0);
    CHECK(parse_info_digit("text/plain", "Signal=5") == 0);
    CHECK(parse_info_digit("application/dtmf", "") == 0);
    CHECK(parse_info_digit("application/dtmf-relay", std::string(5000, '=')) == 0);
}

TEST_CASE("sdp: random mutations of real offers never crash the parser or the negotiation") {
    // A fixed seed keeps failures reproducible.
    std::uint32_t state = 12345;
    auto next = [&] {
        state = state * 1664525u + 1013904223u;
        return state >> 8;
    };
    const std::string seeds[] = {asterisk_offer, baresip_offer, sipp_offer};
    int parsed = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string text = seeds[i % 3];
        int edits = 1 + static_cast<int>(next() % 8);
        for (int e = 0; e < edits && !text.empty(); ++e) {
            auto pos = next() % text.size();
            switch (next() % 4) {
                case 0:
                    text[pos] = static_cast<char>(next() & 0xff);
                    break;
                case 1:
                    text.erase(pos, 1 + next() % 10);
                    break;
                case 2:
                    text.insert(pos, std::string(1 + next() % 5, static_cast<char>(next() & 0xff)));
                    break;
                default:
                    text.insert(pos, "\r\nm=audio 1 RTP/AVP 96\r\na=rtpmap:96 x/0/0\r\n");
                    break;
            }
        }
        auto s = parse_sdp(text);
        if (!s) continue;
        ++parsed;
        auto out = answer_offer(*s, policy({Format::opus, Format::ulaw, Format::g722}), local());
        CHECK((out.status == 200 || out.status == 488));
        (void)format_sdp(out.answer);
        (void)accept_answer(make_offer(policy({Format::ulaw}), local()), *s, policy({Format::ulaw}));
    }
    CHECK(parsed > 100);  // the mutations still exercise the negotiation, not only the refusals
}
