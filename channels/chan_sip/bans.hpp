// Auto-ban: addresses that fail authentication too often are ignored for a while.
//
// Each failure is stamped; when `failures` of them fall within `window`, the
// address is banned for `duration` and every request from it is dropped
// without an answer (chan_sip also installs a kernel socket filter so the
// packets never reach the SIP stack). Addresses in `exempt` are counted never.
// The table is bounded: under a flood of spoofed sources the addresses with
// the oldest failures are forgotten first, never a ban in force.
//
// Threading: every member is safe from any thread (one short lock).
#pragma once

#include "net.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace tandem::sip {

struct BanPolicy {
    bool enabled = true;
    int failures = 5;
    std::chrono::seconds window{60};
    std::chrono::seconds duration{600};
    std::vector<Cidr> exempt;
};

class BanList {
public:
    using Clock = std::chrono::steady_clock;

    struct Entry {
        IpAddress ip;
        int recent_failures = 0;  // within the window
        std::optional<Clock::time_point> banned_until;
    };

    explicit BanList(std::size_t max_tracked = 65536) : max_tracked_(max_tracked) {}

    void set_policy(BanPolicy p);
    BanPolicy policy() const;

    // Counts a failure; true when it is the one that bans the address.
    bool record_failure(const IpAddress& ip, Clock::time_point now);
    bool banned(const IpAddress& ip, Clock::time_point now) const;
    // Bans by hand (for `duration`, or the policy's).
    void ban(const IpAddress& ip, Clock::time_point now, std::optional<std::chrono::seconds> duration = {});
    bool unban(const IpAddress& ip);
    std::size_t unban_all();
    // Forgets expired bans and failures older than the window; returns the
    // addresses whose ban ended.
    std::vector<IpAddress> expire(Clock::time_point now);

    // Banned addresses and addresses with recent failures, sorted by address.
    std::vector<Entry> list(Clock::time_point now) const;
    std::vector<IpAddress> banned_addresses(Clock::time_point now) const;
    // Changes whenever the set of banned addresses changes.
    std::uint64_t generation() const;

private:
    struct Record {
        std::deque<Clock::time_point> failures;
        std::optional<Clock::time_point> banned_until;
    };
    void trim(Record& r, Clock::time_point now) const;
    void make_room();

    mutable std::mutex mu_;
    BanPolicy policy_;
    std::unordered_map<IpAddress, Record> records_;
    std::size_t max_tracked_;
    std::uint64_t generation_ = 0;
};

}  // namespace tandem::sip
