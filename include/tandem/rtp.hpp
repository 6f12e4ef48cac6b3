// RTP media: the engine that owns the port range, one session per media
// stream, the adaptive jitter buffer, SDES-SRTP keys, and the relay fast path.
//
// A channel driver (chan_sip) asks Core::rtp() for a session on its channel's
// loop, tells it the negotiated payload types and the remote address from the
// SDP, and from then on gets received voice and DTMF as Frames through the
// handler it set, and writes Frames to send. When a two-party bridge finds
// that both legs agree on the format it calls `a->relay_to(b)` and
// `b->relay_to(a)`: packets then go socket to socket with their headers
// rewritten (SSRC, sequence, timestamp, payload type, SRTP), never decoded and
// never turned into Frames. `relay_to(nullptr)` returns to frame delivery.
//
// Threading: an RtpSession lives on the io_context it was created on and every
// method except stats(), local_port(), loop() and name() must be called there
// (stats() may be called from any thread; it reads counters with relaxed
// loads, so its figures may be a few packets apart from each other). Relaying
// needs both sessions on the same loop (can_relay_to() checks it), so the
// bridge moves the media of its two legs onto one loop first. Handlers are
// called on the session's loop, never re-entered from inside a call into the
// session except relay_to()/close(), which are safe from a handler. RtpEngine
// methods are safe from any thread. The engine must outlive its sessions'
// close() calls (the core owns it; it lives as long as the loops).
//
// Media path rules: receiving, sending and relaying do not allocate per packet
// and never throw; garbage datagrams, failed SRTP authentication and packets
// from unexpected sources are dropped and counted in RtpStats.
#pragma once

#include <tandem/frame.hpp>
#include <tandem/media.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// ---------------------------------------------------------------------------
// SRTP keys as SDP carries them (SDES, RFC 4568):
//   a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<base64 of 16-byte key + 14-byte salt>
enum class SrtpSuite : std::uint8_t {
    aes_cm_128_hmac_sha1_80,
    aes_cm_128_hmac_sha1_32,
};

struct SrtpCrypto {
    int tag = 1;
    SrtpSuite suite = SrtpSuite::aes_cm_128_hmac_sha1_80;
    std::array<std::uint8_t, 30> key{};  // master key (16) then master salt (14)

    // A fresh random key (from the OS's random source) for our side of a call.
    static SrtpCrypto generate(SrtpSuite suite = SrtpSuite::aes_cm_128_hmac_sha1_80, int tag = 1);
    // The value of an a=crypto attribute, with or without the "a=crypto:"
    // prefix. A key lifetime ("|2^31") is accepted and ignored; an MKI
    // ("|1:4") is not supported; session parameters are ignored. nullopt for
    // an unknown suite, an MKI, or a malformed or short key.
    static std::optional<SrtpCrypto> parse(std::string_view attribute);
    // "1 AES_CM_128_HMAC_SHA1_80 inline:..." (the value after "a=crypto:").
    std::string to_sdp() const;
};

std::string_view srtp_suite_name(SrtpSuite s);

// ---------------------------------------------------------------------------
// Adaptive jitter buffer for one received voice stream, for the decode path.
//
// put() frames as they arrive (voice frames of one format whose timestamp is
// the RTP timestamp), get() once per output period (typically every 20 ms).
// The buffer starts playing once it holds `target` delay, plays frames in
// timestamp order, answers "conceal N samples" for a missing frame, drops
// duplicates and frames that arrive after their play-out time (late), grows
// its delay when it runs dry (jitter increased) and shrinks it slowly, one
// frame at a time, when the delay has stayed above what recent jitter needs.
// A timestamp jump larger than `resync_ms` (new talkspurt after a long pause,
// new source) flushes and restarts. Storage is allocated once, in the
// constructor. Not thread-safe: one owner, one loop.
struct JitterBufferConfig {
    std::chrono::milliseconds min_delay{40};       // initial and smallest target delay
    std::chrono::milliseconds max_delay{200};      // largest delay (and buffer size)
    std::chrono::milliseconds resync{1000};        // timestamp jump that restarts the buffer
    std::chrono::milliseconds shrink_after{2000};  // delay must be too high this long before it shrinks
};

struct JitterBufferStats {
    std::uint64_t put = 0, played = 0, concealed = 0, late = 0, duplicates = 0, overflow = 0, resyncs = 0;
    std::uint32_t delay_ms = 0;   // current play-out delay (buffered audio)
    std::uint32_t target_ms = 0;  // delay it aims for
};

class JitterBuffer {
public:
    using clock = std::chrono::steady_clock;

    enum class Result : std::uint8_t {
        frame,    // `out` holds the next frame
        conceal,  // a frame is missing: play `samples` of concealment
        none,     // nothing to play yet (not started, or idle after silence)
    };
    struct Output {
        Result result = Result::none;
        std::uint32_t samples = 0;  // samples (at the format's sample rate) for frame/conceal
    };

    explicit JitterBuffer(JitterBufferConfig config = {});
    ~JitterBuffer();
    JitterBuffer(const JitterBuffer&) = delete;
    JitterBuffer& operator=(const JitterBuffer&) = delete;

    // False when the frame was not kept (late, duplicate, buffer full, not voice).
    bool put(const Frame& frame, clock::time_point arrival);
    Output get(clock::time_point now, Frame& out);
    // Drops everything and waits for a new stream.
    void reset();
    const JitterBufferStats& stats() const { return stats_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    JitterBufferStats stats_;
};

// ---------------------------------------------------------------------------
struct RtpStats {
    std::uint32_t local_ssrc = 0, remote_ssrc = 0;
    std::uint64_t packets_sent = 0, bytes_sent = 0;  // RTP payload bytes
    std::uint64_t packets_received = 0, bytes_received = 0;
    std::int64_t packets_lost = 0;      // expected minus received, by sequence number (RFC 3550 A.3)
    std::uint64_t duplicates = 0;       // same sequence number seen again (not delivered)
    std::uint64_t reordered = 0;        // arrived after a later one (still delivered)
    std::uint64_t malformed = 0;        // not RTP/RTCP, truncated, bad version or padding
    std::uint64_t srtp_failed = 0;      // SRTP/SRTCP authentication or replay check failed
    std::uint64_t foreign = 0;          // from a source strict RTP does not accept
    std::uint64_t unknown_payload = 0;  // payload type without a mapping
    std::uint64_t ssrc_changes = 0;
    std::uint64_t send_failed = 0;  // the socket refused a datagram (full, unreachable)
    double jitter_ms = 0;           // our interarrival jitter of the received stream (RFC 3550 A.8)
    double fraction_lost = 0;       // 0..1, over the last RTCP interval, as we measured it
    // From the remote's RTCP reports about our stream:
    double remote_jitter_ms = 0;
    std::int64_t remote_packets_lost = 0;
    double remote_fraction_lost = 0;
    double rtt_ms = -1;  // round-trip time from LSR/DLSR; -1 until measured
    std::uint64_t rtcp_sent = 0, rtcp_received = 0;
};

struct RtpSessionOptions {
    std::string name;                   // for logs and `rtp show sessions` (e.g. the channel name)
    std::string bind_address;           // empty: the engine's bindaddr
    std::optional<bool> strict_rtp;     // unset: the engine's strictrtp
    bool symmetric = true;              // send to where the remote's packets come from (NAT latching)
    std::optional<bool> jitter_buffer;  // unset: the engine's jbenable
    std::optional<std::chrono::milliseconds> rtcp_interval;  // unset: engine's; 0: no periodic RTCP
};

// One RTP stream (audio) with its RTCP, on one loop.
class RtpSession {
public:
    virtual ~RtpSession() = default;

    // Two-party relay (see the top of this file). can_relay_to(): both on the
    // same loop, neither closed, and `peer` sends the format this session
    // receives (payload type numbers may differ: they are rewritten).
    // relay_to(peer): every RTP packet this session receives is sent by `peer`
    // as its own stream; nullptr stops. Call it for both directions.
    virtual bool can_relay_to(const RtpSession& peer) const = 0;
    virtual void relay_to(RtpSession* peer) = 0;

    // --- addresses ---
    virtual boost::asio::io_context& loop() const = 0;
    virtual const std::string& name() const = 0;
    virtual boost::asio::ip::address local_address() const = 0;
    virtual std::uint16_t local_port() const = 0;  // RTP; RTCP is local_port() + 1
    // The remote from the SDP. RTCP goes to port + 1 unless set_remote_rtcp()
    // (a=rtcp). Starts strict-RTP learning again.
    virtual void set_remote(const boost::asio::ip::address& address, std::uint16_t port) = 0;
    virtual void set_remote_rtcp(const boost::asio::ip::address& address, std::uint16_t port) = 0;
    // Where RTP is sent now (after latching); port 0 when unknown.
    virtual std::pair<boost::asio::ip::address, std::uint16_t> remote() const = 0;

    // --- payload types ---
    // Receive side: what payload type `pt` means. Static types of RFC 3551
    // (0 PCMU, 8 PCMA, 9 G722, 3 GSM, 18 G729, ...) are mapped from the start.
    virtual void map_payload(std::uint8_t pt, Format format) = 0;
    virtual void clear_payloads() = 0;  // forget every mapping, static ones included
    // telephone-event (RFC 4733): the payload type we receive and the one we
    // send (the remote's, usually the same); -1 disables. Clock rate 8000
    // unless the format's clock says otherwise (telephone-event/48000 with opus).
    virtual void set_dtmf_payload(int receive_pt, int send_pt, std::uint32_t clock_rate = 8000) = 0;
    // What write() sends: format, payload type and packet duration.
    virtual void set_send_format(Format format, std::uint8_t pt, std::uint32_t ptime_ms = 20) = 0;
    virtual Format send_format() const = 0;
    // The format of the received stream: the last one received, else the
    // send format (SIP calls use one codec each way, normally the same).
    virtual Format receive_format() const = 0;

    // --- receiving ---
    // Voice: kind voice, subclass = Format, samples, timestamp = RTP
    // timestamp, payload. With the jitter buffer on, a missing frame is a
    // Frame of kind null, subclass = Format and samples = how many to conceal.
    // DTMF: dtmf_begin once per event, dtmf_end once with duration_ms.
    virtual void set_frame_handler(std::function<void(const Frame&)> handler) = 0;

    // --- sending ---
    // False when nothing was sent (no remote yet, closed, wrong kind, a DTMF
    // event in progress, socket full). Frames of another format than the send
    // format are refused too: translate first.
    virtual bool write(const Frame& frame) = 0;
    // RFC 4733: begin sends the first packet (marker set) and continues the
    // event every ptime until end, which sends three end packets. A begin
    // while an event is going ends it first. Digits 0-9 * # A-D.
    virtual bool send_dtmf_begin(char digit) = 0;
    virtual bool send_dtmf_end(char digit, std::uint32_t duration_ms) = 0;

    // --- SRTP (SDES) ---
    // Protects everything sent with `local` and authenticates/decrypts
    // everything received with `remote`. False (and SRTP off) when libsrtp
    // refuses the keys. Both suites may differ per direction.
    virtual bool set_srtp(const SrtpCrypto& local, const SrtpCrypto& remote) = 0;
    virtual bool srtp_active() const = 0;

    // --- moving ---
    // Moves the session to loop `to` (its channel moves there: a transfer
    // connects parties of two loops). Call it on the session's current loop;
    // from then on use it on `to` only. It stops relaying, drops a DTMF event
    // in progress and the jitter buffer's content, and keeps everything else
    // (sockets, remote, payload types, SRTP, statistics). False when closed.
    virtual bool move_to(boost::asio::io_context& to) = 0;

    // --- statistics and end ---
    virtual RtpStats stats() const = 0;
    // Sends an RTCP report now (SR if we sent since the last one, else RR).
    virtual void send_rtcp_report() = 0;
    // Idempotent: sends RTCP BYE, stops relaying (both ways), closes the
    // sockets and drops the handlers.
    virtual void close() = 0;
    virtual bool closed() const = 0;
};

// ---------------------------------------------------------------------------
// rtp.conf [general], as the engine currently applies it.
struct RtpSettings {
    std::uint16_t rtp_start = 10000, rtp_end = 20000;  // even ports in [start, end)
    std::string bind_address = "0.0.0.0";
    bool strict_rtp = true;
    unsigned probation = 4;  // consecutive packets that make a new source learnt
    std::chrono::milliseconds rtcp_interval{5000};
    bool jitter_buffer = false;
    JitterBufferConfig jitter;
};

class RtpEngine {
public:
    virtual ~RtpEngine() = default;

    // A session on `loop` with an RTP port (even) and RTCP port (+1) from the
    // range; nullptr and `error` set when no pair is free or bind fails.
    // The session starts reading at once, so call this on `loop` itself (or
    // touch the session afterwards only from that loop).
    virtual std::shared_ptr<RtpSession> create(boost::asio::io_context& loop, const RtpSessionOptions& options,
                                               std::string& error) = 0;
    virtual RtpSettings settings() const = 0;
    // Sessions not yet closed (for the CLI and tests).
    virtual std::size_t session_count() const = 0;
};

}  // namespace tandem
