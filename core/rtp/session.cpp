#include "rtp/session.hpp"

#include "rtp/engine.hpp"

#include <netinet/in.h>
#include <sys/random.h>

#include <algorithm>
#include <cmath>

namespace asio = boost::asio;

namespace tandem::rtp {

namespace {

using steady = std::chrono::steady_clock;

static_assert(static_cast<std::size_t>(Format::count_) <= 256, "rx_map_ keeps a Format in a byte");

// RFC 3550 A.1: how far a sequence number may jump before it is doubted.
constexpr std::uint16_t max_dropout = 3000, max_misorder = 100;

boost::asio::ip::udp::endpoint to_endpoint(const sockaddr_storage& ss, socklen_t len) {
    boost::asio::ip::udp::endpoint ep;
    if (len > ep.capacity()) len = static_cast<socklen_t>(ep.capacity());
    std::memcpy(ep.data(), &ss, len);
    ep.resize(len);
    return ep;
}

char event_char(std::uint8_t ev) {
    static constexpr char map[] = "0123456789*#ABCD";
    return ev < 16 ? map[ev] : 0;
}

int char_event(char d) {
    if (d >= '0' && d <= '9') return d - '0';
    switch (d) {
        case '*':
            return 10;
        case '#':
            return 11;
        case 'A':
        case 'a':
            return 12;
        case 'B':
        case 'b':
            return 13;
        case 'C':
        case 'c':
            return 14;
        case 'D':
        case 'd':
            return 15;
        default:
            return -1;
    }
}

std::uint32_t clock_of(Format f) {
    auto c = format_info(f).rtp_clock;
    return c ? c : 8000;
}

}  // namespace

// What the receive path needs of a format, computed once for all sessions.
const SessionImpl::PayloadInfo& SessionImpl::payload_info(Format f) {
    static const auto table = [] {
        std::array<PayloadInfo, static_cast<std::size_t>(Format::count_)> t{};
        for (std::size_t i = 1; i < t.size(); ++i) {
            auto format = static_cast<Format>(i);
            auto& pi = t[i];
            pi.format = format;
            pi.clock = clock_of(format);
            auto rate = format_info(format).sample_rate;
            pi.rate = rate ? rate : pi.clock;
            pi.bytes_per_1440 = static_cast<std::uint32_t>(format_bytes(format, 1440));
        }
        return t;
    }();
    auto i = static_cast<std::size_t>(f);
    return table[i < table.size() ? i : 0];
}

SessionImpl::SessionImpl(std::shared_ptr<SessionList> list, asio::io_context& loop,
                         std::shared_ptr<LoopScratch> scratch, MediaSocket rtp, MediaSocket rtcp, std::string name,
                         const SessionConfig& cfg, const JitterBufferConfig* jitter)
    : list_(std::move(list)),
      loop_(&loop),
      scratch_(std::move(scratch)),
      rtp_sock_(std::move(rtp)),
      rtcp_sock_(std::move(rtcp)),
      rtcp_timer_(std::make_unique<asio::steady_timer>(loop)),
      name_(std::move(name)),
      cfg_(cfg) {
    socklen_t len = static_cast<socklen_t>(local_.capacity());
    if (::getsockname(rtp_sock_.fd(), local_.data(), &len) == 0) local_.resize(len);
    std::uint64_t seed = 0;
    while (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
    }
    rng_ = seed | 1;
    ssrc_ = rand32();
    seq_ = static_cast<std::uint16_t>(rand32());
    ts_ = rand32();
    cname_[0] = rand32();
    cname_[1] = rand32();
    relay_pt_.fill(-1);
    for (std::size_t i = 1; i < static_cast<std::size_t>(Format::count_); ++i) {
        auto& fi = format_info(static_cast<Format>(i));
        if (fi.static_payload >= 0 && fi.static_payload < 128 && fi.kind == MediaKind::audio)
            map_payload(static_cast<std::uint8_t>(fi.static_payload), fi.format);
    }
    if (jitter) {
        jb_ = std::make_unique<JitterBuffer>(*jitter);
        jb_timer_ = std::make_unique<asio::steady_timer>(loop);
    }
}

SessionImpl::~SessionImpl() {
    close();
}

std::uint32_t SessionImpl::rand32() {
    // xorshift64*: per-session state, no shared generator.
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return static_cast<std::uint32_t>((rng_ * 2685821657736338717ull) >> 32);
}

void SessionImpl::start() {
    schedule_rtcp();
    start_reading();
}

void SessionImpl::start_reading() {
    auto watch = [this](const MediaSocket& sock, bool rtcp) {
        auto slot = scratch_->poller->add(sock.fd(), weak_from_this(), rtcp);
        if (slot == MediaPoller::no_slot)
            list_->log.error("{}: cannot watch the {} socket: {}", name_, rtcp ? "RTCP" : "RTP",
                             std::system_category().message(errno));
        return slot;
    };
    rtp_slot_ = watch(rtp_sock_, false);
    rtcp_slot_ = watch(rtcp_sock_, true);
}

// --- reading ---------------------------------------------------------------

void SessionImpl::on_readable(bool rtcp) {
    if (closed_) return;
    if (rtcp)
        on_rtcp_readable();
    else
        on_rtp_readable();
}

void SessionImpl::on_rtp_readable() {
    auto& sc = *scratch_;
    // A few batches per wake-up, then back to the loop so one busy stream
    // cannot starve the others.
    for (int round = 0; round < 8 && !closed_; ++round) {
        sc.arm_rx();
        int n = ::recvmmsg(rtp_sock_.fd(), sc.rx_msgs.data(), LoopScratch::batch, MSG_DONTWAIT, nullptr);
        if (n <= 0) break;
        auto now = steady::now();
        std::size_t relay_count = 0;
        for (int i = 0; i < n && !closed_; ++i) {
            auto& m = sc.rx_msgs[static_cast<std::size_t>(i)];
            if (m.msg_hdr.msg_flags & MSG_TRUNC) {
                malformed_.add();
                continue;
            }
            handle_rtp(sc.rx[static_cast<std::size_t>(i)].data(), m.msg_len, sc.rx_addr[static_cast<std::size_t>(i)],
                       m.msg_hdr.msg_namelen, relay_count, now);
        }
        if (relay_count) flush_relay(relay_count);
        if (static_cast<std::size_t>(n) < LoopScratch::batch) break;
    }
}

void SessionImpl::on_rtcp_readable() {
    auto& sc = *scratch_;
    for (int i = 0; i < 16 && !closed_; ++i) {
        sockaddr_storage from{};
        socklen_t fromlen = sizeof from;
        auto n = ::recvfrom(rtcp_sock_.fd(), sc.rx[0].data(), LoopScratch::buf_size - srtp_max_trailer, MSG_DONTWAIT,
                            reinterpret_cast<sockaddr*>(&from), &fromlen);
        if (n < 0) break;
        handle_rtcp(sc.rx[0].data(), static_cast<std::size_t>(n), to_endpoint(from, fromlen));
    }
}

void SessionImpl::handle_rtp(std::uint8_t* data, std::size_t len, const sockaddr_storage& from_ss, socklen_t fromlen,
                             std::size_t& relay_count, steady::time_point now) {
    if (looks_like_rtcp(data, len)) {
        // rtcp-mux from a peer that multiplexes anyway.
        handle_rtcp(data, len, to_endpoint(from_ss, fromlen));
        return;
    }
    if (len < 12 || (data[0] >> 6) != 2) {
        malformed_.add();
        return;
    }
    int ilen = static_cast<int>(len);
    if (srtp_rx_ && !srtp_rx_->unprotect_rtp(data, ilen)) {
        srtp_failed_.add();
        return;
    }
    RtpHeader h;
    if (!parse_rtp(data, static_cast<std::size_t>(ilen), h)) {
        malformed_.add();
        return;
    }
    if (!accept_source(to_endpoint(from_ss, fromlen), h.seq)) {
        foreign_.add();
        return;
    }
    if (!rx_.have || h.ssrc != rx_.ssrc) {
        new_source(h.ssrc, h.seq);
    } else {
        switch (update_seq(h.seq)) {
            case SeqResult::ok:
                break;
            case SeqResult::duplicate:
                duplicates_.add();
                return;
            case SeqResult::drop:
                return;
        }
    }
    packets_received_.add();
    bytes_received_.add(h.payload_len);
    lost_.store(rx_.lost_before + static_cast<std::int64_t>(rx_.cycles + rx_.max_seq - rx_.base_seq + 1) -
                    static_cast<std::int64_t>(rx_.received),
                std::memory_order_relaxed);

    const bool is_dtmf = h.pt == dtmf_rx_pt_;
    const PayloadInfo& pi = payload_info(rx_format(h.pt));
    if (!is_dtmf && pi.format == Format::none) {
        unknown_payload_.add();
        return;
    }
    if (!is_dtmf) {
        // RFC 3550 A.8; events are left out because they hold their timestamp.
        if (pi.clock != rx_.clock) {
            rx_.clock = pi.clock;
            rx_.have_transit = false;
        }
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
        auto arrival = static_cast<std::uint32_t>(static_cast<std::uint64_t>(us) * pi.clock / 1000000);
        auto transit = static_cast<std::int64_t>(arrival - h.ts);
        if (rx_.have_transit) {
            auto d = static_cast<std::int32_t>(static_cast<std::uint32_t>(transit - rx_.transit));
            rx_.jitter += (std::abs(static_cast<double>(d)) - rx_.jitter) / 16.0;
            jitter_ms_.store(rx_.jitter * 1000.0 / pi.clock, std::memory_order_relaxed);
        }
        rx_.transit = transit;
        rx_.have_transit = true;
    }
    if (relay_peer_) {
        relay_packet(data, static_cast<std::size_t>(ilen), h, relay_count, now);
        return;
    }
    if (is_dtmf)
        deliver_dtmf(h, data + h.payload_offset);
    else
        deliver_voice(h, data + h.payload_offset, pi, now);
    rx_.last_ts = h.ts;
    rx_.last_seq = h.seq;
}

bool SessionImpl::accept_source(const udp::endpoint& from, std::uint16_t seq) {
    if (!cfg_.strict) {
        if (cfg_.symmetric && from != remote_rtp_) lock_source(from);
        return true;
    }
    if (locked_ && from == locked_addr_) return true;
    // The address the peer signalled is taken at once, and wins the stream
    // back from a source learnt before it spoke (a stray or injected stream
    // that got its packets in first).
    if (signalled_.port() != 0 && from == signalled_) {
        lock_source(from);
        return true;
    }
    if (locked_) return false;
    if (candidate_count_ > 0 && from == candidate_ && seq == static_cast<std::uint16_t>(candidate_seq_ + 1))
        ++candidate_count_;
    else {
        candidate_ = from;
        candidate_count_ = 1;
    }
    candidate_seq_ = seq;
    if (candidate_count_ >= std::max(1u, cfg_.probation)) {
        lock_source(from);
        return true;
    }
    return false;
}

void SessionImpl::lock_source(const udp::endpoint& from) {
    if (cfg_.strict) {
        locked_ = true;
        locked_addr_ = from;
    }
    if (cfg_.symmetric && from != remote_rtp_) {
        remote_rtp_ = from;
        if (!rtcp_explicit_ && !rtcp_heard_)
            remote_rtcp_ = udp::endpoint(from.address(), static_cast<std::uint16_t>(from.port() + 1));
        list_->log.debug("{}: RTP latched to {}:{}", name_, from.address().to_string(), from.port());
    }
}

void SessionImpl::new_source(std::uint32_t ssrc, std::uint16_t seq) {
    if (rx_.have) {
        ssrc_changes_.add();
        rx_.lost_before += static_cast<std::int64_t>(rx_.cycles + rx_.max_seq - rx_.base_seq + 1) -
                           static_cast<std::int64_t>(rx_.received);
        if (rx_event_valid_ && !rx_event_ended_ && !relay_peer_) end_rx_event();
        rx_event_valid_ = false;
        if (jb_) jb_->reset();
    }
    rx_.have = true;
    rx_.ssrc = ssrc;
    rx_.base_seq = seq;
    rx_.max_seq = seq;
    rx_.cycles = 0;
    rx_.bad_seq = 0x10000;
    rx_.window = 1;
    rx_.received = 1;
    rx_.expected_prior = 0;
    rx_.received_prior = 0;
    rx_.have_transit = false;
    remote_ssrc_.store(ssrc, std::memory_order_relaxed);
}

SessionImpl::SeqResult SessionImpl::update_seq(std::uint16_t seq) {
    auto& r = rx_;
    auto ahead = static_cast<std::uint16_t>(seq - r.max_seq);
    if (ahead == 0) return SeqResult::duplicate;
    if (ahead < max_dropout) {
        if (seq < r.max_seq) r.cycles += 65536;
        r.window = ahead >= 64 ? 1 : (r.window << ahead) | 1;
        r.max_seq = seq;
        r.bad_seq = 0x10000;
        ++r.received;
        return SeqResult::ok;
    }
    if (ahead <= 65536 - max_misorder) {
        // A big jump: believed only when the next packet follows it.
        if (seq == r.bad_seq) {
            r.lost_before += static_cast<std::int64_t>(r.cycles + r.max_seq - r.base_seq + 1) -
                             static_cast<std::int64_t>(r.received);
            r.base_seq = seq;
            r.max_seq = seq;
            r.cycles = 0;
            r.window = 1;
            r.received = 1;
            r.expected_prior = 0;
            r.received_prior = 0;
            r.bad_seq = 0x10000;
            return SeqResult::ok;
        }
        r.bad_seq = static_cast<std::uint16_t>(seq + 1);
        return SeqResult::drop;
    }
    auto back = static_cast<std::uint16_t>(r.max_seq - seq);
    if (back < 64) {
        auto bit = std::uint64_t(1) << back;
        if (r.window & bit) return SeqResult::duplicate;
        r.window |= bit;
    }
    ++r.received;
    reordered_.add();
    return SeqResult::ok;
}

// --- delivering ------------------------------------------------------------

void SessionImpl::deliver(const Frame& f) {
    if (!handler_ || delivering_) return;
    delivering_ = true;
    handler_(f);
    delivering_ = false;
    // A handler that replaced itself or closed the session while running.
    if (handler_pending_) {
        handler_ = std::move(pending_handler_);
        pending_handler_ = nullptr;
        handler_pending_ = false;
    }
    if (closed_) handler_ = nullptr;
}

void SessionImpl::deliver_digit(FrameKind kind, char digit, std::uint32_t ms) {
    auto& f = scratch_->frame;
    f.kind = kind;
    f.subclass = static_cast<unsigned char>(digit);
    f.samples = 0;
    f.timestamp = rx_event_ts_;
    f.duration_ms = ms;
    f.set_payload({});
    deliver(f);
}

void SessionImpl::deliver_voice(const RtpHeader& h, const std::uint8_t* payload, const PayloadInfo& pi,
                                steady::time_point now) {
    if (rx_event_valid_ && !rx_event_ended_) end_rx_event();  // the end packets were lost
    if (h.payload_len == 0) return;                           // keep-alive
    std::uint32_t samples = 0;
    if (pi.bytes_per_1440)
        samples = static_cast<std::uint32_t>(h.payload_len * 1440 / pi.bytes_per_1440);
    else {
        auto delta = h.ts - rx_.last_ts;
        bool next = h.seq == static_cast<std::uint16_t>(rx_.last_seq + 1) && last_rx_format_ == pi.format;
        if (next && delta > 0 && delta <= pi.clock / 8)
            samples = static_cast<std::uint32_t>(std::uint64_t(delta) * pi.rate / pi.clock);
        else
            samples = pi.rate * ptime_ms_ / 1000;
    }
    last_rx_format_ = pi.format;
    auto& f = scratch_->frame;
    f.kind = FrameKind::voice;
    f.subclass = static_cast<std::uint32_t>(pi.format);
    f.samples = samples;
    f.timestamp = h.ts;
    f.duration_ms = 0;
    f.set_payload({payload, h.payload_len});
    if (jb_) {
        jb_->put(f, now);
        if (!jb_running_) {
            jb_running_ = true;
            jb_next_ = now + std::chrono::milliseconds(ptime_ms_);
            schedule_jb();
        }
        return;
    }
    deliver(f);
}

void SessionImpl::schedule_jb() {
    jb_timer_->expires_at(jb_next_);
    jb_timer_->async_wait([w = weak_from_this(), gen = moves_.load()](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto s = w.lock(); s && !s->closed_ && s->moves_.load() == gen) s->jb_tick();
    });
}

void SessionImpl::jb_tick() {
    auto& f = scratch_->frame;
    auto out = jb_->get(steady::now(), f);
    if (out.result == JitterBuffer::Result::frame) {
        deliver(f);
    } else if (out.result == JitterBuffer::Result::conceal) {
        f.kind = FrameKind::null;
        f.subclass = static_cast<std::uint32_t>(last_rx_format_);
        f.samples = out.samples;
        f.set_payload({});
        deliver(f);
    } else if (jb_->stats().put == jb_->stats().played + jb_->stats().late + jb_->stats().duplicates) {
        // Nothing buffered: sleep until the next packet arrives.
        jb_running_ = false;
        return;
    }
    if (closed_ || relay_peer_) {
        jb_running_ = false;
        return;
    }
    jb_next_ += std::chrono::milliseconds(ptime_ms_);
    schedule_jb();
}

void SessionImpl::deliver_dtmf(const RtpHeader& h, const std::uint8_t* p) {
    if (h.payload_len < 4) {
        malformed_.add();
        return;
    }
    char d = event_char(p[0]);
    if (!d) return;  // tones and events we do not handle
    bool end = p[1] & 0x80;
    std::uint32_t duration = rd16(p + 2);
    if (rx_event_valid_) {
        auto age = static_cast<std::int32_t>(h.ts - rx_event_ts_);
        if (age == 0) {
            // The same event: an update or a retransmitted end.
            rx_event_clock_duration_ = std::max(rx_event_clock_duration_, duration);
            if (end && !rx_event_ended_) end_rx_event();
            return;
        }
        if (age < 0) return;  // a late packet of an older event
        if (!rx_event_ended_) end_rx_event();
    }
    rx_event_valid_ = true;
    rx_event_ended_ = false;
    rx_event_ts_ = h.ts;
    rx_event_digit_ = d;
    rx_event_clock_duration_ = duration;
    deliver_digit(FrameKind::dtmf_begin, d, 0);
    if (end && !closed_ && rx_event_valid_ && !rx_event_ended_) end_rx_event();
}

void SessionImpl::end_rx_event() {
    rx_event_ended_ = true;
    deliver_digit(FrameKind::dtmf_end, rx_event_digit_,
                  static_cast<std::uint32_t>(std::uint64_t(rx_event_clock_duration_) * 1000 / dtmf_clock_));
}

// --- relaying --------------------------------------------------------------

bool SessionImpl::can_relay_to(const RtpSession& peer) const {
    auto* o = dynamic_cast<const SessionImpl*>(&peer);
    if (!o || o == this || closed_ || o->closed_ || o->loop_ != loop_) return false;
    auto f = receive_format();
    return f != Format::none && o->send_format_ == f;
}

void SessionImpl::relay_to(RtpSession* p) {
    auto* peer = p ? dynamic_cast<SessionImpl*>(p) : nullptr;
    if (p && (!peer || peer == this || peer->loop_ != loop_ || peer->closed_ || closed_)) {
        list_->log.warning("{}: cannot relay to {}", name_, p->name());
        return;
    }
    if (peer == relay_peer_) return;
    if (relay_peer_) relay_peer_->relay_from_ = nullptr;
    relay_peer_ = peer;
    if (!peer) return;
    if (peer->relay_from_ && peer->relay_from_ != this) peer->relay_from_->relay_peer_ = nullptr;
    peer->relay_from_ = this;
    peer->relay_synced_ = false;
    build_relay_map();
    if (jb_) jb_->reset();
    if (rx_event_valid_ && !rx_event_ended_) end_rx_event();
}

void SessionImpl::build_relay_map() {
    relay_pt_.fill(-1);
    auto* peer = relay_peer_;
    if (!peer) return;
    for (std::size_t pt = 0; pt < 128; ++pt) {
        auto f = rx_format(static_cast<std::uint8_t>(pt));
        if (f == Format::none) continue;
        if (f == peer->send_format_) {
            relay_pt_[pt] = static_cast<std::int8_t>(peer->send_pt_ & 0x7f);
            continue;
        }
        for (std::size_t q = 0; q < 128; ++q)
            if (peer->rx_format(static_cast<std::uint8_t>(q)) == f) {
                relay_pt_[pt] = static_cast<std::int8_t>(q);
                break;
            }
    }
    if (dtmf_rx_pt_ >= 0)
        relay_pt_[static_cast<std::size_t>(dtmf_rx_pt_)] = static_cast<std::int8_t>(peer->dtmf_tx_pt_);
}

void SessionImpl::relay_packet(std::uint8_t* data, std::size_t len, const RtpHeader& h, std::size_t& relay_count,
                               steady::time_point now) {
    auto* b = relay_peer_;
    int pt = relay_pt_[h.pt];
    if (pt < 0) {
        unknown_payload_.add();
        return;
    }
    if (b->closed_ || b->remote_rtp_.port() == 0) return;
    bool marker = h.marker;
    if (!b->relay_synced_ || h.ssrc != b->relay_src_ssrc_) {
        // Continue the peer's own timeline from where it stands.
        b->relay_src_ssrc_ = h.ssrc;
        b->relay_ts_offset_ = (b->sent_any_ ? b->next_ts_ : b->ts_) - h.ts;
        b->relay_synced_ = true;
        marker = true;
    }
    auto ts = h.ts + b->relay_ts_offset_;
    data[1] = static_cast<std::uint8_t>((marker ? 0x80 : 0) | pt);
    wr16(data + 2, b->seq_++);
    wr32(data + 4, ts);
    wr32(data + 8, b->ssrc_);
    int l = static_cast<int>(len);
    if (b->srtp_tx_ && !b->srtp_tx_->protect_rtp(data, l)) {
        b->send_failed_.add();
        return;
    }
    if (h.pt != dtmf_rx_pt_) {
        b->ts_ = ts;
        b->next_ts_ = ts + payload_info(rx_format(h.pt)).clock * b->ptime_ms_ / 1000;
    }
    b->sent_any_ = true;
    b->last_send_ = now;
    b->marker_pending_ = false;
    b->packets_sent_.add();
    b->bytes_sent_.add(h.payload_len);
    auto& sc = *scratch_;
    sc.tx_iov[relay_count].iov_base = data;
    sc.tx_iov[relay_count].iov_len = static_cast<std::size_t>(l);
    auto& mh = sc.tx_msgs[relay_count].msg_hdr;
    mh = msghdr{};
    mh.msg_name = b->remote_rtp_.data();
    mh.msg_namelen = static_cast<socklen_t>(b->remote_rtp_.size());
    mh.msg_iov = &sc.tx_iov[relay_count];
    mh.msg_iovlen = 1;
    ++relay_count;
}

void SessionImpl::flush_relay(std::size_t count) {
    auto* b = relay_peer_;
    if (!b || b->closed_) return;
    auto& sc = *scratch_;
    std::size_t done = 0;
    while (done < count) {
        int n =
            ::sendmmsg(b->rtp_sock_.fd(), sc.tx_msgs.data() + done, static_cast<unsigned>(count - done), MSG_DONTWAIT);
        if (n <= 0) {
            // Skip the datagram the kernel refused and carry on with the rest.
            b->send_failed_.add();
            ++done;
            continue;
        }
        done += static_cast<std::size_t>(n);
    }
}

// --- addresses and payloads --------------------------------------------------

void SessionImpl::set_remote(const asio::ip::address& address, std::uint16_t port) {
    signalled_ = udp::endpoint(address, port);
    remote_rtp_ = signalled_;
    if (!rtcp_explicit_) remote_rtcp_ = udp::endpoint(address, static_cast<std::uint16_t>(port + 1));
    rtcp_heard_ = false;
    locked_ = false;
    candidate_count_ = 0;
}

void SessionImpl::set_remote_rtcp(const asio::ip::address& address, std::uint16_t port) {
    remote_rtcp_ = udp::endpoint(address, port);
    rtcp_explicit_ = true;
}

std::pair<asio::ip::address, std::uint16_t> SessionImpl::remote() const {
    return {remote_rtp_.address(), remote_rtp_.port()};
}

std::string SessionImpl::describe_remote() const {
    if (remote_rtp_.port() == 0) return "-";
    return remote_rtp_.address().to_string() + ":" + std::to_string(remote_rtp_.port());
}

void SessionImpl::map_payload(std::uint8_t pt, Format format) {
    if (pt >= 128) return;
    rx_map_[pt] = static_cast<std::uint8_t>(format);
    if (relay_peer_) build_relay_map();
    if (relay_from_) relay_from_->build_relay_map();
}

void SessionImpl::clear_payloads() {
    rx_map_.fill(static_cast<std::uint8_t>(Format::none));
    if (relay_peer_) build_relay_map();
    if (relay_from_) relay_from_->build_relay_map();
}

void SessionImpl::set_dtmf_payload(int receive_pt, int send_pt, std::uint32_t clock_rate) {
    dtmf_rx_pt_ = receive_pt >= 0 && receive_pt < 128 ? receive_pt : -1;
    dtmf_tx_pt_ = send_pt >= 0 && send_pt < 128 ? send_pt : -1;
    dtmf_clock_ = clock_rate ? clock_rate : 8000;
    if (relay_peer_) build_relay_map();
    if (relay_from_) relay_from_->build_relay_map();
}

void SessionImpl::set_send_format(Format format, std::uint8_t pt, std::uint32_t ptime_ms) {
    send_format_ = format;
    send_pt_ = pt & 0x7f;
    ptime_ms_ = std::clamp<std::uint32_t>(ptime_ms ? ptime_ms : 20, 10, 200);
    if (relay_from_) relay_from_->build_relay_map();
}

Format SessionImpl::receive_format() const {
    return last_rx_format_ != Format::none ? last_rx_format_ : send_format_;
}

void SessionImpl::set_frame_handler(std::function<void(const Frame&)> handler) {
    if (delivering_) {
        pending_handler_ = std::move(handler);
        handler_pending_ = true;
    } else {
        handler_ = std::move(handler);
    }
}

// --- sending ---------------------------------------------------------------

std::uint32_t SessionImpl::next_send_ts(steady::time_point now, std::uint32_t clock, bool& marker) {
    if (!sent_any_) {
        marker = true;
        return ts_;
    }
    // Continuous timestamps while packets come at their pace; after a pause
    // (silence, hold, a gap in the source) the clock jumps forward to real
    // time and the marker bit starts the new talkspurt.
    auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(now - last_send_).count();
    auto wall = ts_ + static_cast<std::uint32_t>(static_cast<std::uint64_t>(std::max<std::int64_t>(elapsed, 0)) *
                                                 clock / 1000000);
    auto slack = static_cast<std::int32_t>(clock * std::max<std::uint32_t>(ptime_ms_, 20) * 2 / 1000);
    if (static_cast<std::int32_t>(wall - next_ts_) > slack) {
        marker = true;
        return wall;
    }
    marker = marker_pending_;
    return next_ts_;
}

bool SessionImpl::send_rtp_packet(std::uint8_t* buf, std::size_t len) {
    int l = static_cast<int>(len);
    if (srtp_tx_ && !srtp_tx_->protect_rtp(buf, l)) {
        send_failed_.add();
        return false;
    }
    auto n = ::sendto(rtp_sock_.fd(), buf, static_cast<std::size_t>(l), MSG_DONTWAIT, remote_rtp_.data(),
                      static_cast<socklen_t>(remote_rtp_.size()));
    if (n < 0) {
        send_failed_.add();
        return false;
    }
    return true;
}

bool SessionImpl::write(const Frame& frame) {
    if (closed_ || frame.kind != FrameKind::voice || send_format_ == Format::none ||
        static_cast<Format>(frame.subclass) != send_format_ || remote_rtp_.port() == 0 || dtmf_active_)
        return false;
    auto payload = frame.payload();
    if (payload.size() > LoopScratch::buf_size - 12 - srtp_max_trailer) return false;
    auto& fi = format_info(send_format_);
    auto clock = clock_of(send_format_);
    auto now = steady::now();
    bool marker = false;
    auto ts = next_send_ts(now, clock, marker);
    auto* buf = scratch_->out.data();
    write_rtp_header(buf, marker, send_pt_, seq_++, ts, ssrc_);
    std::memcpy(buf + 12, payload.data(), payload.size());
    auto rate = fi.sample_rate ? fi.sample_rate : clock;
    auto step = static_cast<std::uint32_t>(std::uint64_t(frame.samples) * clock / rate);
    ts_ = ts;
    next_ts_ = ts + step;
    last_send_ = now;
    sent_any_ = true;
    marker_pending_ = false;
    if (!send_rtp_packet(buf, 12 + payload.size())) return false;
    packets_sent_.add();
    bytes_sent_.add(payload.size());
    return true;
}

bool SessionImpl::send_dtmf_packet(bool end, bool marker, std::uint32_t duration) {
    auto* buf = scratch_->out.data();
    write_rtp_header(buf, marker, static_cast<std::uint8_t>(dtmf_tx_pt_), seq_++, dtmf_ts_, ssrc_);
    buf[12] = dtmf_event_;
    buf[13] = static_cast<std::uint8_t>((end ? 0x80 : 0) | 10);  // volume -10 dBm0
    wr16(buf + 14, static_cast<std::uint16_t>(std::min<std::uint32_t>(duration, 0xffff)));
    if (!send_rtp_packet(buf, 16)) return false;
    packets_sent_.add();
    bytes_sent_.add(4);
    return true;
}

bool SessionImpl::send_dtmf_begin(char digit) {
    int ev = char_event(digit);
    if (closed_ || ev < 0 || dtmf_tx_pt_ < 0 || remote_rtp_.port() == 0) return false;
    if (dtmf_active_) send_dtmf_end(event_char(dtmf_event_), 0);
    auto now = steady::now();
    bool marker = true;
    dtmf_ts_ = next_send_ts(now, dtmf_clock_, marker);
    dtmf_event_ = static_cast<std::uint8_t>(ev);
    dtmf_active_ = true;
    dtmf_start_ = now;
    bool ok = send_dtmf_packet(false, true, dtmf_clock_ * ptime_ms_ / 1000);
    schedule_dtmf();
    return ok;
}

void SessionImpl::schedule_dtmf() {
    if (!dtmf_timer_) dtmf_timer_ = std::make_unique<asio::steady_timer>(*loop_);
    dtmf_timer_->expires_after(std::chrono::milliseconds(ptime_ms_));
    dtmf_timer_->async_wait([w = weak_from_this(), gen = moves_.load()](const boost::system::error_code& ec) {
        if (ec) return;
        auto s = w.lock();
        if (!s || s->closed_ || s->moves_.load() != gen || !s->dtmf_active_) return;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - s->dtmf_start_).count();
        s->send_dtmf_packet(false, false, static_cast<std::uint32_t>(ms) * s->dtmf_clock_ / 1000);
        s->schedule_dtmf();
    });
}

bool SessionImpl::send_dtmf_end(char digit, std::uint32_t duration_ms) {
    if (closed_ || dtmf_tx_pt_ < 0 || remote_rtp_.port() == 0) return false;
    if (!dtmf_active_ && !send_dtmf_begin(digit)) return false;
    auto now = steady::now();
    if (duration_ms == 0)
        duration_ms = static_cast<std::uint32_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(now - dtmf_start_).count());
    auto duration = std::max<std::uint32_t>(duration_ms * dtmf_clock_ / 1000, dtmf_clock_ * ptime_ms_ / 1000);
    bool ok = true;
    // RFC 4733 2.5.1.4: the final packet is sent three times.
    for (int i = 0; i < 3; ++i) ok = send_dtmf_packet(true, false, duration) && ok;
    dtmf_active_ = false;
    if (dtmf_timer_) dtmf_timer_->cancel();
    // Voice resumes where the event ended, as a new talkspurt.
    ts_ = dtmf_ts_;
    next_ts_ = dtmf_ts_ + duration;
    last_send_ = dtmf_start_;
    sent_any_ = true;
    marker_pending_ = true;
    return ok;
}

// --- SRTP ------------------------------------------------------------------

bool SessionImpl::set_srtp(const SrtpCrypto& local, const SrtpCrypto& remote) {
    auto tx = SrtpContext::create(local, SrtpContext::Direction::outbound);
    auto rx = SrtpContext::create(remote, SrtpContext::Direction::inbound);
    if (!tx || !rx) {
        srtp_tx_.reset();
        srtp_rx_.reset();
        return false;
    }
    srtp_tx_ = std::move(tx);
    srtp_rx_ = std::move(rx);
    return true;
}

// --- RTCP ------------------------------------------------------------------

void SessionImpl::schedule_rtcp() {
    if (cfg_.rtcp_interval.count() <= 0) return;
    // RFC 3550 6.3.1: randomised over [0.5, 1.5] of the interval so that
    // sessions started together do not report in step.
    auto base = cfg_.rtcp_interval.count();
    auto ms = base / 2 + static_cast<std::int64_t>(rand32() % static_cast<std::uint32_t>(base + 1));
    rtcp_timer_->expires_after(std::chrono::milliseconds(ms));
    rtcp_timer_->async_wait([w = weak_from_this(), gen = moves_.load()](const boost::system::error_code& ec) {
        if (ec) return;
        auto s = w.lock();
        if (!s || s->closed_ || s->moves_.load() != gen) return;
        s->send_rtcp_report();
        s->schedule_rtcp();
    });
}

void SessionImpl::send_rtcp_report() {
    if (!closed_) build_and_send_rtcp(false);
}

void SessionImpl::build_and_send_rtcp(bool bye) {
    if (remote_rtcp_.port() == 0) return;
    auto* p = scratch_->out.data();
    std::size_t off = 0;
    const bool sr = packets_sent_.get() > sent_at_last_report_;
    const bool block = rx_.have;
    p[0] = static_cast<std::uint8_t>(0x80 | (block ? 1 : 0));
    p[1] = sr ? rtcp_sr : rtcp_rr;
    wr32(p + 4, ssrc_);
    off = 8;
    auto now = steady::now();
    if (sr) {
        auto ntp = ntp_now();
        wr32(p + 8, static_cast<std::uint32_t>(ntp >> 32));
        wr32(p + 12, static_cast<std::uint32_t>(ntp));
        auto clock = clock_of(send_format_);
        auto since = std::chrono::duration_cast<std::chrono::microseconds>(now - last_send_).count();
        wr32(p + 16, ts_ + static_cast<std::uint32_t>(static_cast<std::uint64_t>(std::max<std::int64_t>(since, 0)) *
                                                      clock / 1000000));
        wr32(p + 20, static_cast<std::uint32_t>(packets_sent_.get()));
        wr32(p + 24, static_cast<std::uint32_t>(bytes_sent_.get()));
        off = 28;
    }
    if (block) {
        auto& r = rx_;
        auto* b = p + off;
        std::uint32_t expected = r.cycles + r.max_seq - r.base_seq + 1;
        auto lost = static_cast<std::int64_t>(expected) - static_cast<std::int64_t>(r.received);
        lost = std::clamp<std::int64_t>(lost, -0x800000, 0x7fffff);
        auto expected_interval = static_cast<std::int64_t>(expected - r.expected_prior);
        auto received_interval = static_cast<std::int64_t>(r.received - r.received_prior);
        auto lost_interval = expected_interval - received_interval;
        std::uint8_t fraction =
            expected_interval == 0 || lost_interval <= 0
                ? 0
                : static_cast<std::uint8_t>(std::min<std::int64_t>((lost_interval << 8) / expected_interval, 255));
        r.expected_prior = expected;
        r.received_prior = r.received;
        fraction_lost_.store(fraction / 256.0, std::memory_order_relaxed);
        wr32(b, r.ssrc);
        wr32(b + 4, static_cast<std::uint32_t>(fraction) << 24 | (static_cast<std::uint32_t>(lost) & 0xffffff));
        wr32(b + 8, r.cycles + r.max_seq);
        wr32(b + 12, static_cast<std::uint32_t>(r.jitter));
        wr32(b + 16, last_sr_mid_);
        std::uint32_t dlsr = 0;
        if (last_sr_mid_) {
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - last_sr_at_).count();
            dlsr = static_cast<std::uint32_t>(static_cast<std::uint64_t>(us) * 65536 / 1000000);
        }
        wr32(b + 20, dlsr);
        off += 24;
    }
    wr16(p + 2, static_cast<std::uint16_t>(off / 4 - 1));
    // SDES with a CNAME: required in every compound packet.
    auto* s = p + off;
    s[0] = 0x81;
    s[1] = rtcp_sdes;
    wr16(s + 2, 6);
    wr32(s + 4, ssrc_);
    s[8] = 1;
    s[9] = 16;
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; ++i) s[10 + i] = static_cast<std::uint8_t>(hex[(cname_[i / 8] >> ((i % 8) * 4)) & 15]);
    s[26] = 0;
    s[27] = 0;
    off += 28;
    if (bye) {
        auto* y = p + off;
        y[0] = 0x81;
        y[1] = rtcp_bye;
        wr16(y + 2, 1);
        wr32(y + 4, ssrc_);
        off += 8;
    }
    int l = static_cast<int>(off);
    if (srtp_tx_ && !srtp_tx_->protect_rtcp(p, l)) return;
    auto n = ::sendto(rtcp_sock_.fd(), p, static_cast<std::size_t>(l), MSG_DONTWAIT, remote_rtcp_.data(),
                      static_cast<socklen_t>(remote_rtcp_.size()));
    if (n < 0) {
        send_failed_.add();
        return;
    }
    rtcp_sent_.add();
    sent_at_last_report_ = packets_sent_.get();
}

void SessionImpl::handle_rtcp(std::uint8_t* data, std::size_t len, const udp::endpoint& from) {
    if (len < 8 || (data[0] >> 6) != 2) {
        malformed_.add();
        return;
    }
    int ilen = static_cast<int>(len);
    if (srtp_rx_ && !srtp_rx_->unprotect_rtcp(data, ilen)) {
        srtp_failed_.add();
        return;
    }
    len = static_cast<std::size_t>(ilen);
    // Validate the whole compound packet before using any of it.
    for (std::size_t off = 0; off < len;) {
        if (off + 4 > len || (data[off] >> 6) != 2) {
            malformed_.add();
            return;
        }
        off += (std::size_t(rd16(data + off + 2)) + 1) * 4;
        if (off > len) {
            malformed_.add();
            return;
        }
    }
    auto now = steady::now();
    auto read_blocks = [&](const std::uint8_t* b, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i, b += 24) {
            if (rd32(b) != ssrc_) continue;
            remote_fraction_lost_.store(b[4] / 256.0, std::memory_order_relaxed);
            auto lost = static_cast<std::int32_t>(rd32(b + 4) << 8) >> 8;  // 24-bit signed
            remote_lost_.store(lost, std::memory_order_relaxed);
            remote_jitter_ms_.store(rd32(b + 12) * 1000.0 / clock_of(send_format_), std::memory_order_relaxed);
            auto lsr = rd32(b + 16), dlsr = rd32(b + 20);
            if (lsr) {
                auto rtt = ntp_mid32(ntp_now()) - lsr - dlsr;
                if (static_cast<std::int32_t>(rtt) >= 0)
                    rtt_ms_.store(rtt * 1000.0 / 65536.0, std::memory_order_relaxed);
            }
        }
    };
    for (std::size_t off = 0; off < len;) {
        auto* p = data + off;
        std::size_t plen = (std::size_t(rd16(p + 2)) + 1) * 4;
        std::size_t rc = p[0] & 0x1f;
        if (p[1] == rtcp_sr && plen >= 28 + 24 * rc) {
            last_sr_mid_ = rd32(p + 10);
            last_sr_at_ = now;
            read_blocks(p + 28, rc);
        } else if (p[1] == rtcp_rr && plen >= 8 + 24 * rc) {
            read_blocks(p + 8, rc);
        } else if (p[1] == rtcp_bye) {
            list_->log.debug("{}: RTCP BYE from {}", name_, from.address().to_string());
        }
        off += plen;
    }
    rtcp_received_.add();
    if (cfg_.symmetric && !rtcp_explicit_ && (!locked_ || from.address() == locked_addr_.address())) {
        remote_rtcp_ = from;
        rtcp_heard_ = true;
    }
}

// --- statistics and end ----------------------------------------------------

RtpStats SessionImpl::stats() const {
    RtpStats s;
    s.local_ssrc = ssrc_;
    s.remote_ssrc = remote_ssrc_.load(std::memory_order_relaxed);
    s.packets_sent = packets_sent_.get();
    s.bytes_sent = bytes_sent_.get();
    s.packets_received = packets_received_.get();
    s.bytes_received = bytes_received_.get();
    s.packets_lost = std::max<std::int64_t>(lost_.load(std::memory_order_relaxed), 0);
    s.duplicates = duplicates_.get();
    s.reordered = reordered_.get();
    s.malformed = malformed_.get();
    s.srtp_failed = srtp_failed_.get();
    s.foreign = foreign_.get();
    s.unknown_payload = unknown_payload_.get();
    s.ssrc_changes = ssrc_changes_.get();
    s.send_failed = send_failed_.get();
    s.jitter_ms = jitter_ms_.load(std::memory_order_relaxed);
    s.fraction_lost = fraction_lost_.load(std::memory_order_relaxed);
    s.remote_jitter_ms = remote_jitter_ms_.load(std::memory_order_relaxed);
    s.remote_packets_lost = remote_lost_.load(std::memory_order_relaxed);
    s.remote_fraction_lost = remote_fraction_lost_.load(std::memory_order_relaxed);
    s.rtt_ms = rtt_ms_.load(std::memory_order_relaxed);
    s.rtcp_sent = rtcp_sent_.get();
    s.rtcp_received = rtcp_received_.get();
    return s;
}

void SessionImpl::stop_relays() {
    if (relay_peer_) {
        relay_peer_->relay_from_ = nullptr;
        relay_peer_ = nullptr;
    }
    if (relay_from_) {
        relay_from_->relay_peer_ = nullptr;
        relay_from_ = nullptr;
    }
}

bool SessionImpl::move_to(asio::io_context& to) {
    if (closed_) return false;
    if (&to == loop_) return true;
    // Everything that ties the session to its loop: the relays (their peers
    // stay behind), the old loop's poller and timers. A handler already
    // queued there sees `moves_` changed and does nothing.
    stop_relays();
    ++moves_;
    scratch_->poller->remove(rtp_slot_, rtp_sock_.fd());
    scratch_->poller->remove(rtcp_slot_, rtcp_sock_.fd());
    rtp_slot_ = rtcp_slot_ = MediaPoller::no_slot;
    rtcp_timer_->cancel();
    if (dtmf_timer_) dtmf_timer_->cancel();
    if (jb_timer_) jb_timer_->cancel();
    dtmf_active_ = false;
    if (jb_) jb_->reset();
    jb_running_ = false;
    // The new loop's. Its poller is joined last: from that moment the new
    // loop may read the sockets, and nothing here touches the session after.
    loop_ = &to;
    scratch_ = scratch_for(*list_, to);
    rtcp_timer_ = std::make_unique<asio::steady_timer>(to);
    dtmf_timer_.reset();
    if (jb_timer_) jb_timer_ = std::make_unique<asio::steady_timer>(to);
    list_->log.debug("{}: RTP session moved to another loop", name_);
    schedule_rtcp();
    start_reading();
    return true;
}

void SessionImpl::close() {
    if (closed_) return;
    stop_relays();
    // RFC 3550 6.3.7: a participant that never sent RTP or RTCP sends no BYE
    // (a call refused or cancelled before media spares the peer a datagram to
    // a port it may not listen on).
    if (rtcp_sock_.is_open() && (packets_sent_.get() > 0 || rtcp_sent_.get() > 0)) build_and_send_rtcp(true);
    closed_ = true;
    scratch_->poller->remove(rtp_slot_, rtp_sock_.fd());
    scratch_->poller->remove(rtcp_slot_, rtcp_sock_.fd());
    rtp_slot_ = rtcp_slot_ = MediaPoller::no_slot;
    rtp_sock_.close();
    rtcp_sock_.close();
    rtcp_timer_->cancel();
    if (dtmf_timer_) dtmf_timer_->cancel();
    if (jb_timer_) jb_timer_->cancel();
    if (!delivering_) handler_ = nullptr;
    pending_handler_ = nullptr;
    handler_pending_ = false;
    forget_session(*list_, this, local_.port());
}

}  // namespace tandem::rtp
