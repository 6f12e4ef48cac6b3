// RTP/RTCP wire helpers: header parsing and writing, NTP time, the per-loop
// scratch buffers every session of a loop shares.
#pragma once

#include "rtp/poller.hpp"
#include "rtp/srtp.hpp"

#include <tandem/frame.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <utility>

namespace tandem::rtp {

inline std::uint16_t rd16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline std::uint32_t rd32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}
inline void wr16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}
inline void wr32(std::uint8_t* p, std::uint32_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 24);
    p[1] = static_cast<std::uint8_t>(v >> 16);
    p[2] = static_cast<std::uint8_t>(v >> 8);
    p[3] = static_cast<std::uint8_t>(v);
}

struct RtpHeader {
    bool marker = false;
    std::uint8_t pt = 0;
    std::uint16_t seq = 0;
    std::uint32_t ts = 0;
    std::uint32_t ssrc = 0;
    std::size_t payload_offset = 0;
    std::size_t payload_len = 0;
};

// Validates version, CSRC list, header extension and padding against the
// datagram length. False for anything that is not a well-formed RTP packet.
inline bool parse_rtp(const std::uint8_t* p, std::size_t n, RtpHeader& h) {
    if (n < 12 || (p[0] >> 6) != 2) return false;
    std::size_t off = 12 + 4u * (p[0] & 0x0f);
    if (off > n) return false;
    if (p[0] & 0x10) {
        if (off + 4 > n) return false;
        off += 4 + 4u * rd16(p + off + 2);
        if (off > n) return false;
    }
    std::size_t pad = 0;
    if (p[0] & 0x20) {
        pad = p[n - 1];
        if (pad == 0 || pad > n - off) return false;
    }
    h.marker = p[1] & 0x80;
    h.pt = p[1] & 0x7f;
    h.seq = rd16(p + 2);
    h.ts = rd32(p + 4);
    h.ssrc = rd32(p + 8);
    h.payload_offset = off;
    h.payload_len = n - off - pad;
    return true;
}

inline void write_rtp_header(std::uint8_t* p, bool marker, std::uint8_t pt, std::uint16_t seq, std::uint32_t ts,
                             std::uint32_t ssrc) {
    p[0] = 0x80;
    p[1] = static_cast<std::uint8_t>((marker ? 0x80 : 0) | (pt & 0x7f));
    wr16(p + 2, seq);
    wr32(p + 4, ts);
    wr32(p + 8, ssrc);
}

// RTCP packet types (and the second byte of a muxed RTCP packet on the RTP port).
inline constexpr std::uint8_t rtcp_sr = 200, rtcp_rr = 201, rtcp_sdes = 202, rtcp_bye = 203;
inline bool looks_like_rtcp(const std::uint8_t* p, std::size_t n) {
    return n >= 8 && p[1] >= 192 && p[1] <= 223;
}

// NTP time (seconds since 1900 in 32.32 fixed point) of a wall-clock instant.
inline std::uint64_t ntp_now() {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now).count();
    std::uint64_t secs = static_cast<std::uint64_t>(us / 1000000) + 2208988800ull;
    std::uint64_t frac = (static_cast<std::uint64_t>(us % 1000000) << 32) / 1000000;
    return secs << 32 | frac;
}
inline std::uint32_t ntp_mid32(std::uint64_t ntp) {
    return static_cast<std::uint32_t>(ntp >> 16);
}

// A non-blocking UDP socket a session owns: a plain descriptor, because the
// loop's MediaPoller watches it, not Asio (whose per-socket reactor state
// would cost every call a few hundred bytes for nothing).
class MediaSocket {
public:
    MediaSocket() = default;
    explicit MediaSocket(int fd) : fd_(fd) {}
    MediaSocket(MediaSocket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    MediaSocket& operator=(MediaSocket&& o) noexcept {
        if (this != &o) {
            close();
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    ~MediaSocket() { close(); }
    int fd() const { return fd_; }
    bool is_open() const { return fd_ >= 0; }
    void close() {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    int fd_ = -1;
};

// Buffers shared by every session on one loop: a session uses them only
// inside one call on its loop, so one set per loop is enough and sessions
// stay small.
struct LoopScratch {
    static constexpr std::size_t batch = 32;
    static constexpr std::size_t buf_size = 2048;  // > 1500-byte MTU + SRTP trailer

    std::array<std::array<std::uint8_t, buf_size>, batch> rx{};
    std::array<mmsghdr, batch> rx_msgs{};
    std::array<iovec, batch> rx_iov{};
    std::array<sockaddr_storage, batch> rx_addr{};

    std::array<mmsghdr, batch> tx_msgs{};
    std::array<iovec, batch> tx_iov{};

    std::array<std::uint8_t, buf_size> out{};  // one packet being built
    Frame frame;                               // the frame being delivered
    std::shared_ptr<MediaPoller> poller;       // the loop's sockets

    LoopScratch() {
        for (std::size_t i = 0; i < batch; ++i) {
            rx_iov[i].iov_base = rx[i].data();
            rx_iov[i].iov_len = buf_size - srtp_max_trailer;
        }
    }
    void arm_rx() {
        for (std::size_t i = 0; i < batch; ++i) {
            std::memset(&rx_msgs[i].msg_hdr, 0, sizeof(msghdr));
            rx_msgs[i].msg_hdr.msg_iov = &rx_iov[i];
            rx_msgs[i].msg_hdr.msg_iovlen = 1;
            rx_msgs[i].msg_hdr.msg_name = &rx_addr[i];
            rx_msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
            rx_msgs[i].msg_len = 0;
        }
    }
};

}  // namespace tandem::rtp
