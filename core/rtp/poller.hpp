// MediaPoller: a loop's RTP and RTCP sockets in an epoll set of their own,
// which the loop watches as a single descriptor.
//
// Why not one asynchronous wait per socket: Asio re-arms each of those with
// an epoll_ctl and completes it through its handler queue, for every
// datagram. Here one wake-up serves every socket with packets waiting, and
// nothing is re-armed per socket.
//
// Threads: add() and remove() may be called from any thread (sessions are
// made wherever the signalling runs); the polling runs on the loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace tandem::rtp {

class SessionImpl;

class MediaPoller : public std::enable_shared_from_this<MediaPoller> {
public:
    static constexpr std::uint32_t no_slot = ~std::uint32_t{0};

    // Throws std::system_error when the kernel refuses an epoll set.
    explicit MediaPoller(boost::asio::io_context& loop);
    ~MediaPoller();
    MediaPoller(const MediaPoller&) = delete;
    MediaPoller& operator=(const MediaPoller&) = delete;

    // Starts watching the set; once, after construction (by a shared_ptr).
    void start();
    // Reports `fd` readable to `session` (its RTCP socket with `rtcp`).
    // Returns the slot to remove(), or no_slot with errno set.
    std::uint32_t add(int fd, std::weak_ptr<SessionImpl> session, bool rtcp);
    // Stops reporting `fd`; call before closing it. Reports already read from
    // the set for this slot are dropped.
    void remove(std::uint32_t slot, int fd);

private:
    struct Slot {
        std::weak_ptr<SessionImpl> session;
        std::uint32_t generation = 0;
        bool rtcp = false;
    };
    struct Ready {
        std::shared_ptr<SessionImpl> session;
        bool rtcp = false;
    };

    void watch();
    void serve();

    int set_fd_;
    boost::asio::posix::stream_descriptor set_;
    std::mutex mu_;  // slots_ and free_
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> free_;
    std::vector<Ready> ready_;  // loop only
};

}  // namespace tandem::rtp
