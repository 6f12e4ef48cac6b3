#include "bans.hpp"

#include <algorithm>

namespace tandem::sip {

void BanList::set_policy(BanPolicy p) {
    std::lock_guard lock(mu_);
    policy_ = std::move(p);
}

BanPolicy BanList::policy() const {
    std::lock_guard lock(mu_);
    return policy_;
}

void BanList::trim(Record& r, Clock::time_point now) const {
    while (!r.failures.empty() && now - r.failures.front() >= policy_.window) r.failures.pop_front();
}

void BanList::make_room() {
    if (records_.size() < max_tracked_) return;
    // Forget the address whose latest failure is oldest; bans in force stay.
    auto victim = records_.end();
    for (auto it = records_.begin(); it != records_.end(); ++it) {
        if (it->second.banned_until) continue;
        if (it->second.failures.empty()) {
            victim = it;
            break;
        }
        if (victim == records_.end() || it->second.failures.back() < victim->second.failures.back()) victim = it;
    }
    if (victim != records_.end()) records_.erase(victim);
}

bool BanList::record_failure(const IpAddress& ip, Clock::time_point now) {
    std::lock_guard lock(mu_);
    if (!policy_.enabled || policy_.failures <= 0) return false;
    for (auto& c : policy_.exempt)
        if (c.contains(ip)) return false;
    auto it = records_.find(ip);
    if (it == records_.end()) {
        make_room();
        it = records_.emplace(ip, Record{}).first;
    }
    auto& r = it->second;
    if (r.banned_until && *r.banned_until > now) return false;
    trim(r, now);
    r.failures.push_back(now);
    if (static_cast<int>(r.failures.size()) < policy_.failures) return false;
    r.banned_until = now + policy_.duration;
    r.failures.clear();
    ++generation_;
    return true;
}

bool BanList::banned(const IpAddress& ip, Clock::time_point now) const {
    std::lock_guard lock(mu_);
    auto it = records_.find(ip);
    return it != records_.end() && it->second.banned_until && *it->second.banned_until > now;
}

void BanList::ban(const IpAddress& ip, Clock::time_point now, std::optional<std::chrono::seconds> duration) {
    std::lock_guard lock(mu_);
    auto it = records_.find(ip);
    if (it == records_.end()) {
        make_room();
        it = records_.emplace(ip, Record{}).first;
    }
    it->second.banned_until = now + duration.value_or(policy_.duration);
    it->second.failures.clear();
    ++generation_;
}

bool BanList::unban(const IpAddress& ip) {
    std::lock_guard lock(mu_);
    auto it = records_.find(ip);
    if (it == records_.end()) return false;
    bool was_banned = it->second.banned_until.has_value();
    records_.erase(it);
    if (was_banned) ++generation_;
    return was_banned;
}

std::size_t BanList::unban_all() {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (auto& [ip, r] : records_)
        if (r.banned_until) ++n;
    records_.clear();
    if (n) ++generation_;
    return n;
}

std::vector<IpAddress> BanList::expire(Clock::time_point now) {
    std::lock_guard lock(mu_);
    std::vector<IpAddress> lifted;
    for (auto it = records_.begin(); it != records_.end();) {
        auto& r = it->second;
        if (r.banned_until && *r.banned_until <= now) {
            lifted.push_back(it->first);
            r.banned_until.reset();
        }
        trim(r, now);
        if (!r.banned_until && r.failures.empty())
            it = records_.erase(it);
        else
            ++it;
    }
    if (!lifted.empty()) ++generation_;
    return lifted;
}

std::vector<BanList::Entry> BanList::list(Clock::time_point now) const {
    std::lock_guard lock(mu_);
    std::vector<Entry> out;
    for (auto& [ip, r] : records_) {
        Entry e;
        e.ip = ip;
        for (auto t : r.failures)
            if (now - t < policy_.window) ++e.recent_failures;
        if (r.banned_until && *r.banned_until > now) e.banned_until = r.banned_until;
        if (e.recent_failures || e.banned_until) out.push_back(e);
    }
    std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.ip < b.ip; });
    return out;
}

std::vector<IpAddress> BanList::banned_addresses(Clock::time_point now) const {
    std::lock_guard lock(mu_);
    std::vector<IpAddress> out;
    for (auto& [ip, r] : records_)
        if (r.banned_until && *r.banned_until > now) out.push_back(ip);
    std::sort(out.begin(), out.end());
    return out;
}

std::uint64_t BanList::generation() const {
    std::lock_guard lock(mu_);
    return generation_;
}

}  // namespace tandem::sip
