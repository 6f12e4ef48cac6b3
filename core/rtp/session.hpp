// RtpSessionImpl: one RTP stream and its RTCP on one loop (see rtp.hpp).
#pragma once

#include "rtp/packet.hpp"
#include "rtp/srtp.hpp"

#include <tandem/log.hpp>
#include <tandem/rtp.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <memory>

namespace tandem::rtp {

// The live sessions of one engine, shared with the sessions so that a session
// closing after its engine is gone (a test tearing down out of order) is safe.
struct SessionList;

// A counter written by one thread (the session's loop) and read by any:
// plain loads and stores, no read-modify-write on the media path.
class Counter {
public:
    void add(std::uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    void set(std::uint64_t n) { v_.store(n, std::memory_order_relaxed); }
    std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

struct SessionConfig {
    bool strict = true;
    bool symmetric = true;
    unsigned probation = 4;
    std::chrono::milliseconds rtcp_interval{5000};
};

class SessionImpl final : public RtpSession, public std::enable_shared_from_this<SessionImpl> {
public:
    using udp = boost::asio::ip::udp;

    SessionImpl(std::shared_ptr<SessionList> list, boost::asio::io_context& loop, std::shared_ptr<LoopScratch> scratch,
                MediaSocket rtp, MediaSocket rtcp, std::string name, const SessionConfig& cfg,
                const JitterBufferConfig* jitter);  // null: no jitter buffer
    ~SessionImpl() override;
    // Starts reading and the RTCP timer; called once after construction.
    void start();
    // The loop's MediaPoller: the RTP (or RTCP) socket has datagrams.
    void on_readable(bool rtcp);

    bool can_relay_to(const RtpSession& peer) const override;
    void relay_to(RtpSession* peer) override;
    boost::asio::io_context& loop() const override { return *loop_; }
    const std::string& name() const override { return name_; }
    boost::asio::ip::address local_address() const override { return local_.address(); }
    std::uint16_t local_port() const override { return local_.port(); }
    void set_remote(const boost::asio::ip::address& address, std::uint16_t port) override;
    void set_remote_rtcp(const boost::asio::ip::address& address, std::uint16_t port) override;
    std::pair<boost::asio::ip::address, std::uint16_t> remote() const override;
    void map_payload(std::uint8_t pt, Format format) override;
    void clear_payloads() override;
    void set_dtmf_payload(int receive_pt, int send_pt, std::uint32_t clock_rate) override;
    void set_send_format(Format format, std::uint8_t pt, std::uint32_t ptime_ms) override;
    Format send_format() const override { return send_format_; }
    Format receive_format() const override;
    void set_frame_handler(std::function<void(const Frame&)> handler) override;
    bool write(const Frame& frame) override;
    bool send_dtmf_begin(char digit) override;
    bool send_dtmf_end(char digit, std::uint32_t duration_ms) override;
    bool set_srtp(const SrtpCrypto& local, const SrtpCrypto& remote) override;
    bool srtp_active() const override { return srtp_tx_ != nullptr; }
    RtpStats stats() const override;
    void send_rtcp_report() override;
    void close() override;
    bool move_to(boost::asio::io_context& to) override;
    bool closed() const override { return closed_; }

    // For the engine's `rtp show sessions`.
    std::string describe_remote() const;
    bool relaying() const { return relay_peer_ != nullptr; }

private:
    struct RxState {
        bool have = false;
        std::uint32_t ssrc = 0;
        std::uint16_t max_seq = 0;
        std::uint32_t cycles = 0;
        std::uint32_t base_seq = 0;
        std::uint32_t bad_seq = 0x10000;  // RFC 3550 A.1: a big jump is believed after two packets
        std::uint64_t window = 0;         // bit i: max_seq - i was received
        std::uint64_t received = 0;
        std::int64_t lost_before = 0;  // losses of earlier sequence runs (after restarts)
        std::uint32_t expected_prior = 0;
        std::uint64_t received_prior = 0;
        double jitter = 0;  // in timestamp units
        std::int64_t transit = 0;
        bool have_transit = false;
        std::uint32_t clock = 8000;
        std::uint32_t last_ts = 0;
        std::uint16_t last_seq = 0;
    };
    struct PayloadInfo {
        Format format = Format::none;
        std::uint32_t clock = 0;
        std::uint32_t rate = 0;
        std::uint32_t bytes_per_1440 = 0;  // 0: variable bit rate
    };
    enum class SeqResult { ok, duplicate, drop };
    static const PayloadInfo& payload_info(Format f);

    void start_reading();  // joins the loop's poller
    void stop_relays();
    void on_rtp_readable();
    void on_rtcp_readable();
    void handle_rtp(std::uint8_t* data, std::size_t len, const sockaddr_storage& from, socklen_t fromlen,
                    std::size_t& relay_count, std::chrono::steady_clock::time_point now);
    void handle_rtcp(std::uint8_t* data, std::size_t len, const udp::endpoint& from);
    bool accept_source(const udp::endpoint& from, std::uint16_t seq);
    void lock_source(const udp::endpoint& from);
    SeqResult update_seq(std::uint16_t seq);
    void new_source(std::uint32_t ssrc, std::uint16_t seq);
    void deliver_voice(const RtpHeader& h, const std::uint8_t* payload, const PayloadInfo& pi,
                       std::chrono::steady_clock::time_point now);
    void deliver_dtmf(const RtpHeader& h, const std::uint8_t* payload);
    void end_rx_event();
    void deliver(const Frame& f);
    void deliver_digit(FrameKind kind, char digit, std::uint32_t ms);
    void jb_tick();
    void flush_relay(std::size_t count);
    void relay_packet(std::uint8_t* data, std::size_t len, const RtpHeader& h, std::size_t& relay_count,
                      std::chrono::steady_clock::time_point now);
    std::uint32_t next_send_ts(std::chrono::steady_clock::time_point now, std::uint32_t clock, bool& marker);
    bool send_rtp_packet(std::uint8_t* buf, std::size_t len);
    bool send_dtmf_packet(bool end, bool marker, std::uint32_t duration);
    void schedule_dtmf();
    void schedule_rtcp();
    void schedule_jb();
    void build_and_send_rtcp(bool bye);
    void build_relay_map();
    std::uint32_t rand32();

    std::shared_ptr<SessionList> list_;
    boost::asio::io_context* loop_;
    std::shared_ptr<LoopScratch> scratch_;
    // Bumped by move_to(): a timer's handler already queued on the old loop
    // finds it changed and leaves the session alone.
    std::atomic<std::uint32_t> moves_{0};
    MediaSocket rtp_sock_, rtcp_sock_;
    std::uint32_t rtp_slot_ = MediaPoller::no_slot, rtcp_slot_ = MediaPoller::no_slot;
    std::unique_ptr<boost::asio::steady_timer> rtcp_timer_;
    std::unique_ptr<boost::asio::steady_timer> dtmf_timer_;  // made at the first digit sent
    std::unique_ptr<boost::asio::steady_timer> jb_timer_;
    std::unique_ptr<JitterBuffer> jb_;
    udp::endpoint local_;
    std::string name_;
    SessionConfig cfg_;
    bool closed_ = false;
    std::uint64_t rng_;

    // Where to send, what was signalled, and strict-RTP learning.
    udp::endpoint remote_rtp_, remote_rtcp_, signalled_;
    bool rtcp_explicit_ = false, rtcp_heard_ = false;
    bool locked_ = false;
    udp::endpoint locked_addr_, candidate_;
    std::uint16_t candidate_seq_ = 0;
    unsigned candidate_count_ = 0;

    // Payload types.
    // Received payload type -> Format, one byte each (Format fits one); the
    // per-format figures come from a shared table (payload_info), so a
    // session carries 128 bytes, not 2 KiB.
    std::array<std::uint8_t, 128> rx_map_{};
    Format rx_format(std::uint8_t pt) const { return static_cast<Format>(rx_map_[pt & 0x7f]); }
    int dtmf_rx_pt_ = -1, dtmf_tx_pt_ = -1;
    std::uint32_t dtmf_clock_ = 8000;
    Format send_format_ = Format::none;
    std::uint8_t send_pt_ = 0;
    std::uint32_t ptime_ms_ = 20;
    Format last_rx_format_ = Format::none;

    // Sending.
    std::uint32_t ssrc_;
    std::uint16_t seq_;
    std::uint32_t ts_;           // timestamp of the last packet sent
    std::uint32_t next_ts_ = 0;  // predicted timestamp of the next packet
    bool sent_any_ = false;
    bool marker_pending_ = true;
    std::chrono::steady_clock::time_point last_send_{};
    std::uint64_t sent_at_last_report_ = 0;
    std::uint32_t cname_[2];

    // DTMF we send.
    bool dtmf_active_ = false;
    std::uint8_t dtmf_event_ = 0;
    std::uint32_t dtmf_ts_ = 0;
    std::chrono::steady_clock::time_point dtmf_start_{};

    // What we receive.
    RxState rx_;
    bool rx_event_valid_ = false, rx_event_ended_ = false;
    std::uint32_t rx_event_ts_ = 0;
    char rx_event_digit_ = 0;
    std::uint32_t rx_event_clock_duration_ = 0;
    std::uint32_t last_sr_mid_ = 0;
    std::chrono::steady_clock::time_point last_sr_at_{};
    std::function<void(const Frame&)> handler_, pending_handler_;
    bool delivering_ = false, handler_pending_ = false;
    bool jb_running_ = false;
    std::chrono::steady_clock::time_point jb_next_{};

    // SRTP.
    std::unique_ptr<SrtpContext> srtp_tx_, srtp_rx_;

    // Relay: packets we receive go out through relay_peer_; relay_from_ is
    // the session whose packets we send.
    SessionImpl* relay_peer_ = nullptr;
    SessionImpl* relay_from_ = nullptr;
    std::array<std::int8_t, 128> relay_pt_{};  // -1: not relayed
    bool relay_synced_ = false;                // (as the sending side)
    std::uint32_t relay_src_ssrc_ = 0;
    std::uint32_t relay_ts_offset_ = 0;

    // Statistics (read by stats() from any thread).
    Counter packets_sent_, bytes_sent_, packets_received_, bytes_received_, duplicates_, reordered_, malformed_,
        srtp_failed_, foreign_, unknown_payload_, ssrc_changes_, send_failed_, rtcp_sent_, rtcp_received_;
    std::atomic<std::int64_t> lost_{0}, remote_lost_{0};
    std::atomic<std::uint32_t> remote_ssrc_{0};
    std::atomic<double> jitter_ms_{0}, fraction_lost_{0}, remote_jitter_ms_{0}, remote_fraction_lost_{0}, rtt_ms_{-1};
};

}  // namespace tandem::rtp
