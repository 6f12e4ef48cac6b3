// chan_sip: video negotiation (videosupport=, m=video offer/answer, fmtp
// pass-through, refusal with port 0).
#include <doctest/doctest.h>

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

// A video phone: audio then video, H.264 with its fmtp, VP8.
const std::string video_offer = crlf(R"(v=0
o=phone 1 1 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
m=video 40002 RTP/AVP 96 97
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=42e01f;packetization-mode=1
a=rtpmap:97 VP8/90000
)");

MediaPolicy video_policy(bool video, std::vector<Format> vcodecs = {Format::h264, Format::vp8}) {
    MediaPolicy p;
    p.codecs = {Format::ulaw};
    p.video = video;
    p.video_codecs = std::move(vcodecs);
    return p;
}

LocalMedia local_media() {
    LocalMedia l;
    l.address = "127.0.0.1";
    l.port = 20000;
    l.video_port = 20002;
    return l;
}

}  // namespace

TEST_CASE("sip video: an audio+video offer is answered in order, fmtp verbatim") {
    auto offer = parse_sdp(video_offer);
    REQUIRE(offer);
    auto out = answer_offer(*offer, video_policy(true), local_media());
    REQUIRE(out.status == 200);
    REQUIRE(out.answer.media.size() == 2);
    CHECK(out.answer.media[0].type == "audio");
    CHECK(out.answer.media[0].port == 20000);
    auto& v = out.answer.media[1];
    CHECK(v.type == "video");
    CHECK(v.port == 20002);
    CHECK(v.formats == std::vector<std::string>{"96", "97"});
    REQUIRE(out.plan.video);
    CHECK(out.plan.video->format == Format::h264);
    CHECK(out.plan.video->pt == 96);
    CHECK(out.plan.video->remote_port == 40002);
    CHECK(out.plan.video->remote_address == "192.0.2.20");
    auto text = format_sdp(out.answer);
    CHECK(text.find("a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n") != std::string::npos);
    CHECK(text.find("m=audio") < text.find("m=video"));
    // The answer reads back as the same thing.
    auto again = parse_sdp(text);
    REQUIRE(again);
    CHECK(again->media[1].rtpmap(96)->fmtp == "profile-level-id=42e01f;packetization-mode=1");
}

TEST_CASE("sip video: videosupport=no refuses video with port 0, audio goes on") {
    auto offer = parse_sdp(video_offer);
    REQUIRE(offer);
    auto out = answer_offer(*offer, video_policy(false), local_media());
    REQUIRE(out.status == 200);
    REQUIRE(out.answer.media.size() == 2);
    CHECK(out.answer.media[0].port == 20000);
    CHECK(out.answer.media[1].type == "video");
    CHECK(out.answer.media[1].port == 0);
    CHECK_FALSE(out.plan.video);
    CHECK(format_sdp(out.answer).find("m=video 0 RTP/AVP 96 97\r\n") != std::string::npos);

    // No video session (no port) is a refusal too.
    auto l = local_media();
    l.video_port = 0;
    auto no_port = answer_offer(*offer, video_policy(true), l);
    CHECK(no_port.answer.media[1].port == 0);
    CHECK_FALSE(no_port.plan.video);
}

TEST_CASE("sip video: no common video codec is port 0") {
    auto offer = parse_sdp(video_offer);
    REQUIRE(offer);
    auto out = answer_offer(*offer, video_policy(true, {Format::h263}), local_media());
    REQUIRE(out.status == 200);
    CHECK(out.answer.media[1].port == 0);
    CHECK_FALSE(out.plan.video);

    // Only VP8 allowed: the answer keeps the offer's numbering for it.
    auto vp8 = answer_offer(*offer, video_policy(true, {Format::vp8}), local_media());
    REQUIRE(vp8.plan.video);
    CHECK(vp8.plan.video->pt == 97);
    CHECK(vp8.answer.media[1].formats == std::vector<std::string>{"97"});
}

TEST_CASE("sip video: our offer carries the caller's video codecs; the answer is accepted") {
    auto offer = parse_sdp(video_offer);
    REQUIRE(offer);
    auto in = answer_offer(*offer, video_policy(true), local_media());
    REQUIRE(in.plan.video);

    auto l = local_media();
    l.video_codecs = in.plan.video->codecs;
    auto ours = make_offer(video_policy(true), l);
    REQUIRE(ours.media.size() == 2);
    CHECK(ours.media[1].type == "video");
    CHECK(ours.media[1].port == 20002);
    auto text = format_sdp(ours);
    CHECK(text.find("a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n") != std::string::npos);

    // Without video codecs from a caller, or with videosupport=no: audio only.
    CHECK(make_offer(video_policy(true), local_media()).media.size() == 1);
    CHECK(make_offer(video_policy(false), l).media.size() == 1);

    // The callee answers H.264 under another payload type.
    auto answer = parse_sdp(crlf(R"(v=0
o=callee 1 1 IN IP4 192.0.2.30
s=-
c=IN IP4 192.0.2.30
t=0 0
m=audio 50000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 50002 RTP/AVP 99
a=rtpmap:99 H264/90000
a=fmtp:99 profile-level-id=42e01f;packetization-mode=1
)"));
    REQUIRE(answer);
    auto plan = accept_answer(ours, *answer, video_policy(true));
    REQUIRE(plan);
    REQUIRE(plan->video);
    CHECK(plan->video->format == Format::h264);
    CHECK(plan->video->pt == 99);
    CHECK(plan->video->remote_port == 50002);

    // A refused video stream leaves the call audio only.
    answer->media[1].port = 0;
    auto audio_only = accept_answer(ours, *answer, video_policy(true));
    REQUIRE(audio_only);
    CHECK_FALSE(audio_only->video);
}
