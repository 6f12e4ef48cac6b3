// SDP (RFC 4566) and the offer/answer model (RFC 3264) for SIP calls.
//
// Pure code, no Sofia and no sockets: parse_sdp() turns a body into an
// SdpSession, format_sdp() writes one back, and the negotiation functions
// decide what a call sends and receives:
//
// - answer_offer(): an offer from the peer, answered with the first codec of
//   the endpoint's allow= list the offer carries (static or dynamic payload
//   types, rtpmap/fmtp), plus telephone-event (RFC 4733) when both have it;
//   the answer mirrors the offer's direction (sendonly → recvonly, ...),
//   rejects other media lines with port 0, and carries a=crypto when the
//   offer is RTP/SAVP. No common codec, or plain RTP offered to an endpoint
//   that requires SRTP, is 488.
// - make_offer() / accept_answer(): our offer for an outgoing call or a
//   re-INVITE, and the peer's answer to it.
// - Video (videosupport=yes): the first m=video of an offer is answered with
//   the offered payload types whose codec is among the policy's video codecs
//   (rtpmap and fmtp copied verbatim: H.264 profile-level-id and
//   packetization-mode pass through), or with port 0 when video is off, has
//   no RTP session, or has no codec in common. Video never makes a call fail.
//   Our offers carry m=video only with the codecs LocalMedia::video_codecs
//   lists (the caller's, for the callee leg of a bridged call).
//
// The result of a negotiation is a MediaPlan: what the RTP session needs
// (remote address, payload types, format, ptime, keys) and whether the peer
// put us on hold (sendonly, inactive, or the old c=0.0.0.0 form).
//
// Threading: values and pure functions.
#pragma once

#include <tandem/media.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::sip {

enum class Direction : std::uint8_t { sendrecv, sendonly, recvonly, inactive };
std::string_view to_string(Direction d);
// The direction an answer gives to an offer's (sendonly → recvonly).
Direction reverse(Direction d);

struct RtpMap {
    int pt = -1;
    std::string encoding;  // "PCMU", "opus", "telephone-event"
    std::uint32_t clock = 8000;
    std::uint32_t channels = 1;
    std::string fmtp;  // the a=fmtp parameters, as written
};

struct SdpMedia {
    std::string type = "audio";  // audio, video, image, application
    std::uint16_t port = 0;
    std::string proto = "RTP/AVP";
    std::vector<std::string> formats;  // the m= line's format list, as written
    std::vector<RtpMap> rtpmaps;       // explicit a=rtpmap lines, with their fmtp
    std::string connection;            // c= address at media level, "" when absent
    std::optional<Direction> direction;
    std::uint32_t ptime = 0, maxptime = 0;
    std::vector<std::string> crypto;         // a=crypto values, as written
    std::optional<std::uint16_t> rtcp_port;  // a=rtcp
    bool rtcp_mux = false;
    std::vector<std::string> attributes;  // other a= lines (without "a="), kept for pass-through

    bool is_rtp() const { return proto.starts_with("RTP/"); }
    bool secure() const { return proto.find("SAVP") != std::string::npos; }
    // The mapping of a payload type: the a=rtpmap line, or RFC 3551's static one.
    std::optional<RtpMap> rtpmap(int pt) const;
};

struct SdpSession {
    std::string origin_user = "-";
    std::string session_id = "0", session_version = "0";
    std::string origin_address = "0.0.0.0";
    std::string name = "-";
    std::string connection;  // session-level c= address
    std::optional<Direction> direction;
    std::vector<SdpMedia> media;

    // The media's address: its own c= line, or the session's.
    const std::string& address_of(const SdpMedia& m) const;
    // The media's direction: its own attribute, the session's, or sendrecv.
    Direction direction_of(const SdpMedia& m) const;
};

// Parses a body; nullopt (with a reason in `error`) for anything that is not
// SDP we can trust: no v=0, a malformed m= or c= line, too many lines.
std::optional<SdpSession> parse_sdp(std::string_view text, std::string* error = nullptr);
std::string format_sdp(const SdpSession& s);

// What our side puts in an offer or an answer.
struct LocalMedia {
    std::string address = "127.0.0.1";  // where our RTP listens
    std::uint16_t port = 0;
    std::string session_id = "1", session_version = "1";
    std::string srtp_key;              // base64 SDES key (30 bytes of key and salt) when SRTP is offered or answered
    std::uint16_t video_port = 0;      // our video RTP port; 0: video is refused (port 0)
    std::vector<RtpMap> video_codecs;  // what our offers carry in m=video (empty: no m=video)
};

// The endpoint's media policy.
struct MediaPolicy {
    std::vector<Format> codecs;   // preference order (allow=)
    bool telephone_event = true;  // offer/accept RFC 4733 events
    bool require_srtp = false;    // media_encryption=sdes
    std::uint32_t ptime = 20;
    int telephone_event_pt = 101;      // the payload type we offer for events
    bool video = false;                // videosupport=yes
    std::vector<Format> video_codecs;  // the video formats of allow=, in preference order
};

// The negotiated video stream: relayed, never decoded.
struct VideoPlan {
    Format format = Format::none;
    int pt = -1;       // as the peer numbers it
    std::string fmtp;  // the peer's fmtp, verbatim
    std::string remote_address;
    std::uint16_t remote_port = 0;
    std::vector<RtpMap> codecs;  // every common codec, the peer's numbering and fmtp (first: `format`)
};

// What the RTP session does after a negotiation.
struct MediaPlan {
    Format format = Format::none;
    int pt = -1;                  // payload type of `format`, as the peer numbers it
    std::string fmtp;             // the peer's fmtp for it
    int telephone_event_pt = -1;  // -1: no RFC 4733 events
    std::uint32_t ptime = 20;     // the peer's preference (ours when it gives none)
    std::string remote_address;   // where to send RTP ("0.0.0.0": on hold, old style)
    std::uint16_t remote_port = 0;
    std::optional<std::uint16_t> remote_rtcp_port;
    Direction local = Direction::sendrecv;   // what we do
    Direction remote = Direction::sendrecv;  // what the peer said it does
    bool srtp = false;
    std::string remote_crypto;       // the a=crypto value chosen (the peer's key), when srtp
    std::string crypto_suite;        // "AES_CM_128_HMAC_SHA1_80"
    std::optional<VideoPlan> video;  // unset: no video stream negotiated
    // True when the peer stops sending to us and asks us to stop too (hold).
    bool on_hold() const;
};

struct AnswerOutcome {
    int status = 200;  // 488 when nothing can be answered
    std::string reason;
    MediaPlan plan;
    SdpSession answer;
};

// Answers a peer's offer. `local.direction` of the answer mirrors the offer;
// `we_hold` puts our side on hold too (sendonly/inactive).
AnswerOutcome answer_offer(const SdpSession& offer, const MediaPolicy& policy, const LocalMedia& local);

// Our offer: every codec of the policy (static or dynamic payload types),
// telephone-event, and a=crypto when SRTP is required.
SdpSession make_offer(const MediaPolicy& policy, const LocalMedia& local, Direction direction = Direction::sendrecv);

// The peer's answer to `offer` (made by make_offer with `policy`). nullopt
// with `error` when it is unusable: no common codec, SRTP refused, no audio.
std::optional<MediaPlan> accept_answer(const SdpSession& offer, const SdpSession& answer, const MediaPolicy& policy,
                                       std::string* error = nullptr);

// --- holding the peer ourselves (mohinterpret=passthrough) ---
//
// When the other party of a bridge holds the call, a passthrough endpoint is
// told by a re-INVITE instead of hearing music from us: our previous SDP
// again, every active media line's direction stripped of its receiving half
// (sendrecv -> sendonly; recvonly -> inactive, when the peer holds us
// already), the origin's version bumped; resuming puts the receiving half
// back (sendonly -> sendrecv, inactive -> recvonly).
Direction holding(Direction d);
Direction resuming(Direction d);

// `last` (the SDP we sent last, offer or answer) as the offer of a re-INVITE
// that holds (`hold`) or resumes the peer, with origin version `version`.
// Media lines keep their order and ports (RFC 3264 section 8); refused lines
// (port 0) stay refused and carry no direction.
SdpSession hold_reoffer(const SdpSession& last, bool hold, std::string_view version);

// An answer we make to the peer's offer while we hold it: each active line
// drops its receiving half (a sendrecv offer is answered sendonly).
void keep_holding(SdpSession& answer, MediaPlan& plan);

// The direction of the first active audio line (sendrecv when none).
Direction audio_direction(const SdpSession& s);

// Whether the peer holds us after it answered our re-INVITE. Only an answer
// to a sendrecv offer tells: to our sendonly the peer must say recvonly or
// inactive, which is no hold of its own, so the state it had stays.
bool peer_holds_after(const SdpSession& our_offer, const MediaPlan& answer, bool peer_held);

// The SRTP suites we accept, best first.
bool supported_crypto_suite(std::string_view suite);

}  // namespace tandem::sip
