// SRTP contexts (libsrtp2) for one direction of one session.
//
// libsrtp needs srtp_init() once per process before any context exists; that
// is the one piece of process-wide state in the RTP engine, guarded by a
// std::call_once in srtp.cpp. A context is used on its session's loop only.
#pragma once

#include <tandem/rtp.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace tandem::rtp {

// Bytes srtp_protect may append (auth tag + MKI); packet buffers keep this
// much room after the packet.
inline constexpr std::size_t srtp_max_trailer = 144;

class SrtpContext {
public:
    enum class Direction { outbound, inbound };
    // nullptr when libsrtp refuses the key.
    static std::unique_ptr<SrtpContext> create(const SrtpCrypto& crypto, Direction dir);
    ~SrtpContext();
    SrtpContext(const SrtpContext&) = delete;
    SrtpContext& operator=(const SrtpContext&) = delete;

    // In place; `len` is updated. False on any failure (auth, replay, size).
    bool protect_rtp(std::uint8_t* data, int& len);
    bool unprotect_rtp(std::uint8_t* data, int& len);
    bool protect_rtcp(std::uint8_t* data, int& len);
    bool unprotect_rtcp(std::uint8_t* data, int& len);

private:
    SrtpContext() = default;
    void* ctx_ = nullptr;  // srtp_t
};

}  // namespace tandem::rtp
