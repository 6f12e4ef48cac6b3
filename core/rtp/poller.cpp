#include "rtp/poller.hpp"

#include "rtp/session.hpp"

#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace tandem::rtp {

namespace {

int make_set() {
    int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1 for RTP sockets");
    return fd;
}

constexpr std::uint64_t token(std::uint32_t slot, std::uint32_t generation) {
    return (static_cast<std::uint64_t>(generation) << 32) | slot;
}

}  // namespace

MediaPoller::MediaPoller(boost::asio::io_context& loop) : set_fd_(make_set()), set_(loop, set_fd_) {}

MediaPoller::~MediaPoller() {
    boost::system::error_code ec;
    set_.close(ec);
}

void MediaPoller::start() {
    watch();
}

std::uint32_t MediaPoller::add(int fd, std::weak_ptr<SessionImpl> session, bool rtcp) {
    std::lock_guard lock(mu_);
    std::uint32_t slot;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(slots_.size());
        slots_.emplace_back();
    }
    auto& s = slots_[slot];
    // Level-triggered: a socket left with packets after its share of a
    // wake-up is reported again at the next one.
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = token(slot, s.generation);
    if (::epoll_ctl(set_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int err = errno;
        free_.push_back(slot);
        errno = err;
        return no_slot;
    }
    s.session = std::move(session);
    s.rtcp = rtcp;
    return slot;
}

void MediaPoller::remove(std::uint32_t slot, int fd) {
    if (slot == no_slot) return;
    ::epoll_ctl(set_fd_, EPOLL_CTL_DEL, fd, nullptr);
    std::lock_guard lock(mu_);
    if (slot >= slots_.size()) return;
    auto& s = slots_[slot];
    s.session.reset();
    ++s.generation;  // reports read before the removal no longer match
    free_.push_back(slot);
}

void MediaPoller::watch() {
    set_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                    [w = weak_from_this()](const boost::system::error_code& ec) {
                        if (ec) return;
                        if (auto p = w.lock()) p->serve();
                    });
}

void MediaPoller::serve() {
    constexpr int max_events = 128;
    std::array<epoll_event, max_events> events;
    // Bounded, so that timers and signalling on this loop get their turn;
    // what is left (level-triggered) wakes the loop again at once.
    for (int round = 0; round < 4; ++round) {
        int n = ::epoll_wait(set_fd_, events.data(), max_events, 0);
        if (n <= 0) break;
        ready_.clear();
        {
            std::lock_guard lock(mu_);
            for (int i = 0; i < n; ++i) {
                auto t = events[static_cast<std::size_t>(i)].data.u64;
                auto slot = static_cast<std::uint32_t>(t);
                if (slot >= slots_.size() || slots_[slot].generation != static_cast<std::uint32_t>(t >> 32)) continue;
                if (auto s = slots_[slot].session.lock()) ready_.push_back({std::move(s), slots_[slot].rtcp});
            }
        }
        for (auto& r : ready_) r.session->on_readable(r.rtcp);
        ready_.clear();
        if (n < max_events) break;
    }
    watch();
}

}  // namespace tandem::rtp
