#include "runtime/event_log.hpp"

#include "cli/server.hpp"
#include "runtime/core_impl.hpp"

#include <tandem/cli.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <memory>
#include <type_traits>

namespace tandem {

namespace {

template <class T>
inline constexpr bool is_system_event = std::is_same_v<T, event::PeerStatus> || std::is_same_v<T, event::Registry> ||
                                        std::is_same_v<T, event::Transfer> || std::is_same_v<T, event::ModuleChanged> ||
                                        std::is_same_v<T, event::Reloaded> || std::is_same_v<T, event::FaxDetect>;

std::string utc_time(EventLog::Clock::time_point at) {
    using namespace std::chrono;
    auto secs = time_point_cast<seconds>(at);
    if (secs > at) secs -= seconds(1);  // before the epoch, round down
    auto ms = duration_cast<milliseconds>(at - secs).count();
    std::time_t t = EventLog::Clock::to_time_t(secs);
    std::tm tm{};
    if (!gmtime_r(&t, &tm)) return "0000-00-00T00:00:00.000Z";
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

bool needs_quotes(std::string_view v) {
    if (v.empty()) return true;
    return std::any_of(v.begin(), v.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= ' ' || u == 0x7f || c == '"' || c == '\\' || c == '=';
    });
}

// Appends " key=value", quoting and escaping a value that would otherwise
// break the line or the key=value reading.
void field(std::string& out, std::string_view key, std::string_view value) {
    out += ' ';
    out += key;
    out += '=';
    if (!needs_quotes(value)) {
        out += value;
        return;
    }
    out += '"';
    for (char c : value) {
        auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (u < ' ' || u == 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out += c;
        }
    }
    out += '"';
}

void field(std::string& out, std::string_view key, int value) {
    field(out, key, std::string_view(std::to_string(value)));
}

void field(std::string& out, std::string_view key, bool value) {
    field(out, key, std::string_view(value ? "yes" : "no"));
}

void describe(std::string& out, const event::ChannelCreated& e) {
    out += "ChannelCreated";
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "linkedid", e.linkedid);
    field(out, "caller_number", e.caller_number);
    field(out, "caller_name", e.caller_name);
    field(out, "context", e.context);
    field(out, "exten", e.exten);
}

void describe(std::string& out, const event::ChannelStateChanged& e) {
    out += "ChannelStateChanged";
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "state", to_string(e.state));
}

void describe(std::string& out, const event::DialplanStep& e) {
    out += "DialplanStep";
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "context", e.context);
    field(out, "exten", e.exten);
    field(out, "priority", e.priority);
    field(out, "app", e.app);
    field(out, "args", e.args);
}

void describe(std::string& out, const event::VariableSet& e) {
    out += "VariableSet";
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "name", e.name);
    field(out, "value", e.value);
}

void describe(std::string& out, const event::ChannelHangup& e) {
    out += "ChannelHangup";
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "cause", e.cause);
}

void describe(std::string& out, const event::ModuleChanged& e) {
    out += "ModuleChanged";
    field(out, "module", e.module);
    field(out, "loaded", e.loaded);
}

void describe(std::string& out, const event::Reloaded& e) {
    out += "Reloaded";
    field(out, "what", e.what);
}

void describe(std::string& out, const event::FaxDetect& e) {
    out += "FaxDetect";
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "tone", e.tone);
}

void describe(std::string& out, const event::PeerStatus& e) {
    out += "PeerStatus";
    field(out, "tech", e.tech);
    field(out, "peer", e.peer);
    field(out, "status", e.status);
    field(out, "address", e.address);
    field(out, "latency_ms", e.latency_ms);
}

void describe(std::string& out, const event::Registry& e) {
    out += "Registry";
    field(out, "tech", e.tech);
    field(out, "peer", e.peer);
    field(out, "domain", e.domain);
    field(out, "username", e.username);
    field(out, "status", e.status);
    field(out, "cause", e.cause);
}

void describe(std::string& out, const event::Transfer& e) {
    out += "Transfer";
    field(out, "kind", e.kind);
    field(out, "channel", e.channel);
    field(out, "uniqueid", e.uniqueid);
    field(out, "target_channel", e.target_channel);
    field(out, "context", e.context);
    field(out, "exten", e.exten);
    field(out, "ok", e.ok);
    field(out, "result", e.result);
}

}  // namespace

EventLog::EventLog(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {
    ring_.reserve(capacity_);
}

bool EventLog::keeps(const Event& e) noexcept {
    return std::visit([](const auto& ev) { return is_system_event<std::decay_t<decltype(ev)>>; }, e);
}

void EventLog::record(const Event& e, Clock::time_point at) {
    if (!keeps(e)) return;
    Entry entry{at, e};  // copied before the lock: the strings are allocated outside it
    std::lock_guard lock(mu_);
    if (ring_.size() < capacity_) {
        ring_.push_back(std::move(entry));
    } else {
        std::swap(ring_[next_], entry);  // the old entry is freed after the lock
    }
    next_ = (next_ + 1) % capacity_;
    ++recorded_;
}

std::vector<EventLog::Entry> EventLog::last(std::size_t n) const {
    std::lock_guard lock(mu_);
    n = std::min(n, ring_.size());
    std::vector<Entry> out;
    out.reserve(n);
    // next_ is the oldest once the ring is full, and ring_.size() before.
    std::size_t size = ring_.size();
    std::size_t newest_end = ring_.size() < capacity_ ? ring_.size() : next_ + size;
    for (std::size_t i = newest_end - n; i < newest_end; ++i) out.push_back(ring_[i % size]);
    return out;
}

std::uint64_t EventLog::recorded() const {
    std::lock_guard lock(mu_);
    return recorded_;
}

std::string EventLog::format(const Entry& e) {
    std::string out = utc_time(e.at);
    out += ' ';
    std::visit([&out](const auto& ev) { describe(out, ev); }, e.event);
    return out;
}

void register_event_log(CoreImpl& core, std::vector<Registration>& out) {
    auto log = std::make_shared<EventLog>();
    out.push_back(core.events().subscribe([log](const Event& e) { log->record(e); }));
    out.push_back(add_command(
        core.cli_commands(),
        CliCommand{{"core", "show", "events"},
                   "Show the latest system events (peers, registrations, transfers, modules)",
                   fmt::format("Usage: core show events [N]\n"
                               "  Shows the last N (default 50, at most {}) events that are not about one call:\n"
                               "  PeerStatus, Registry, Transfer, ModuleChanged, Reloaded, FaxDetect, oldest first,\n"
                               "  each with its UTC time and key=value fields.",
                               log->capacity()),
                   [log](CliRequest& r) -> awaitable<int> {
                       std::size_t n = 50;
                       if (r.args.size() > 1) co_return cli_status::usage;
                       if (!r.args.empty()) {
                           auto& a = r.args[0];
                           auto [p, ec] = std::from_chars(a.data(), a.data() + a.size(), n);
                           if (ec != std::errc() || p != a.data() + a.size() || n == 0) co_return cli_status::usage;
                       }
                       auto entries = log->last(n);
                       for (auto& e : entries) r.out.print("{}\n", EventLog::format(e));
                       r.out.print("{} event{} shown, {} recorded since start\n", entries.size(),
                                   entries.size() == 1 ? "" : "s", log->recorded());
                       co_return cli_status::ok;
                   },
                   nullptr},
        &core.core_use()));
}

}  // namespace tandem
