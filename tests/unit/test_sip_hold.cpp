// chan_sip: holding the phone ourselves (mohinterpret=passthrough): the
// re-INVITE offer made from our last SDP, the answer we make while holding,
// and how the phone's answer to our re-INVITE is read (no hold of its own).
#include <doctest/doctest.h>

#include "chan_sip/sdp.hpp"
#include "chan_sip/settings.hpp"

#include <tandem/config.hpp>

#include <filesystem>
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

// A phone's offer with audio and a video line we refuse.
const std::string phone_offer = crlf(R"(v=0
o=phone 100 200 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 40000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
m=video 40002 RTP/AVP 96
a=rtpmap:96 H264/90000
)");

MediaPolicy ulaw_policy() {
    MediaPolicy p;
    p.codecs = {Format::ulaw, Format::alaw};
    return p;
}

LocalMedia ours(std::string version = "1") {
    LocalMedia l;
    l.address = "127.0.0.1";
    l.port = 20000;
    l.session_id = "777";
    l.session_version = std::move(version);
    return l;
}

// Our answer to the phone's offer (what an incoming call sent last).
SdpSession answer_to(const std::string& offer_text) {
    auto offer = parse_sdp(offer_text);
    REQUIRE(offer);
    auto out = answer_offer(*offer, ulaw_policy(), ours());
    REQUIRE(out.status == 200);
    return out.answer;
}

// The phone answering `offer` with its own direction.
SdpSession phone_answer(Direction d) {
    auto text = crlf(R"(v=0
o=phone 100 201 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=)") + std::string(to_string(d)) +
                "\r\nm=video 0 RTP/AVP 96\r\n";
    auto s = parse_sdp(text);
    REQUIRE(s);
    return *s;
}

}  // namespace

TEST_CASE("sip hold: directions lose or regain their receiving half") {
    CHECK(holding(Direction::sendrecv) == Direction::sendonly);
    CHECK(holding(Direction::recvonly) == Direction::inactive);
    CHECK(holding(Direction::sendonly) == Direction::sendonly);
    CHECK(holding(Direction::inactive) == Direction::inactive);
    CHECK(resuming(Direction::sendonly) == Direction::sendrecv);
    CHECK(resuming(Direction::inactive) == Direction::recvonly);
    CHECK(resuming(Direction::sendrecv) == Direction::sendrecv);
    CHECK(resuming(Direction::recvonly) == Direction::recvonly);
}

TEST_CASE("sip hold: the hold re-INVITE is our last SDP, sendonly, with the version bumped") {
    auto last = answer_to(phone_offer);
    REQUIRE(last.media.size() == 2);
    auto hold = hold_reoffer(last, true, "2");
    auto text = format_sdp(hold);
    CHECK(text.find("o=tandem 777 2 IN IP4 127.0.0.1\r\n") != std::string::npos);
    CHECK(text.find("a=sendonly\r\n") != std::string::npos);
    CHECK(text.find("a=sendrecv") == std::string::npos);
    // Same media lines, same order, same ports and codecs (RFC 3264 section 8).
    auto again = parse_sdp(text);
    REQUIRE(again);
    REQUIRE(again->media.size() == 2);
    CHECK(again->media[0].port == 20000);
    CHECK(again->media[0].formats == last.media[0].formats);
    CHECK(again->direction_of(again->media[0]) == Direction::sendonly);
    CHECK(again->media[1].port == 0);  // the refused video stays refused
    CHECK_FALSE(again->media[1].direction);
    CHECK(audio_direction(*again) == Direction::sendonly);

    // Resuming: sendrecv again, a newer version still.
    auto resume = hold_reoffer(hold, false, "3");
    auto rtext = format_sdp(resume);
    CHECK(rtext.find("o=tandem 777 3 IN IP4 127.0.0.1\r\n") != std::string::npos);
    CHECK(rtext.find("a=sendrecv\r\n") != std::string::npos);
    CHECK(rtext.find("a=sendonly") == std::string::npos);
}

TEST_CASE("sip hold: inactive when the phone holds us already, and back to recvonly") {
    auto offer = phone_offer;
    offer.replace(offer.find("a=sendrecv"), 10, "a=sendonly");
    auto last = answer_to(offer);  // we answered recvonly: the phone holds us
    CHECK(audio_direction(last) == Direction::recvonly);
    auto hold = hold_reoffer(last, true, "2");
    CHECK(audio_direction(hold) == Direction::inactive);
    CHECK(audio_direction(hold_reoffer(hold, false, "3")) == Direction::recvonly);
}

TEST_CASE("sip hold: a session-level direction moves onto the media lines") {
    auto last = answer_to(phone_offer);
    last.direction = Direction::sendrecv;
    for (auto& m : last.media) m.direction.reset();
    auto hold = hold_reoffer(last, true, "5");
    CHECK_FALSE(hold.direction);
    CHECK(hold.media[0].direction == Direction::sendonly);
    auto text = format_sdp(hold);
    CHECK(text.find("a=sendrecv") == std::string::npos);
}

TEST_CASE("sip hold: the phone's answer to our hold is no hold of its own") {
    auto last = answer_to(phone_offer);
    auto hold = hold_reoffer(last, true, "2");
    std::string error;

    // recvonly to our sendonly: the phone is not holding us.
    auto p = accept_answer(hold, phone_answer(Direction::recvonly), ulaw_policy(), &error);
    REQUIRE_MESSAGE(p, error);
    CHECK(p->local == Direction::sendonly);
    CHECK_FALSE(peer_holds_after(hold, *p, false));

    // inactive to our sendonly says nothing new either: the state stays.
    auto q = accept_answer(hold, phone_answer(Direction::inactive), ulaw_policy(), &error);
    REQUIRE_MESSAGE(q, error);
    CHECK(q->on_hold());  // read alone, it would look like a hold
    CHECK_FALSE(peer_holds_after(hold, *q, false));
    CHECK(peer_holds_after(hold, *q, true));

    // Our sendrecv resume: the answer tells. sendonly: the phone holds us now.
    auto resume = hold_reoffer(hold, false, "3");
    auto r = accept_answer(resume, phone_answer(Direction::sendonly), ulaw_policy(), &error);
    REQUIRE_MESSAGE(r, error);
    CHECK(peer_holds_after(resume, *r, false));
    auto s = accept_answer(resume, phone_answer(Direction::sendrecv), ulaw_policy(), &error);
    REQUIRE_MESSAGE(s, error);
    CHECK_FALSE(peer_holds_after(resume, *s, true));
}

TEST_CASE("sip hold: while we hold, the phone's re-INVITE is answered without receiving") {
    auto offer = parse_sdp(phone_offer);
    REQUIRE(offer);
    auto out = answer_offer(*offer, ulaw_policy(), ours("4"));
    REQUIRE(out.status == 200);
    keep_holding(out.answer, out.plan);
    CHECK(out.plan.local == Direction::sendonly);
    CHECK_FALSE(out.plan.on_hold());  // the phone itself does not hold us
    auto text = format_sdp(out.answer);
    CHECK(text.find("a=sendonly\r\n") != std::string::npos);
    CHECK(text.find("a=sendrecv") == std::string::npos);

    // The phone holds too (sendonly): we answer inactive.
    auto held = phone_offer;
    held.replace(held.find("a=sendrecv"), 10, "a=sendonly");
    auto o2 = parse_sdp(held);
    REQUIRE(o2);
    auto out2 = answer_offer(*o2, ulaw_policy(), ours("5"));
    keep_holding(out2.answer, out2.plan);
    CHECK(out2.plan.local == Direction::inactive);
    CHECK(out2.plan.on_hold());
    CHECK(audio_direction(out2.answer) == Direction::inactive);
}

TEST_CASE("sip hold: garbage in the last SDP does not break the re-offer") {
    SdpSession empty;
    auto hold = hold_reoffer(empty, true, "9");
    CHECK(hold.media.empty());
    CHECK(audio_direction(hold) == Direction::sendrecv);
    CHECK(format_sdp(hold).find("o=- 0 9 ") != std::string::npos);
}

TEST_CASE("sip config: mohinterpret=passthrough") {
    auto r = config::parse_text(
        "[general]\n"
        "[phones](!)\ntype=friend\nhost=dynamic\nsecret=Long-Enough-Secret-1\nmohinterpret=passthrough\n"
        "[2001](phones)\n"
        "[2002](phones)\nmohinterpret=jazz\n",
        "sip.conf", std::filesystem::temp_directory_path());
    REQUIRE(r.ok());
    auto p = parse_settings(r.file, "Tandem/test");
    REQUIRE(p.settings);
    CHECK(p.errors.empty());
    auto* a = p.settings->find("2001");
    REQUIRE(a);
    CHECK(a->moh_passthrough());
    CHECK(a->music_class().empty());  // "passthrough" is no class to play
    auto* b = p.settings->find("2002");
    REQUIRE(b);
    CHECK_FALSE(b->moh_passthrough());
    CHECK(b->music_class() == "jazz");
}
