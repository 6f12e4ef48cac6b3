// The adaptive jitter buffer (see rtp.hpp for its contract).
//
// Frames are kept in a pool allocated in the constructor and ordered by
// timestamp through a small index array, so put() and get() never allocate.
// The target delay follows the spread of the relative transit times of the
// last 64 frames (max minus min, plus one frame), clamped to
// [min_delay, max_delay]; the buffer grows by holding play-out when it runs
// dry and shrinks by skipping one frame when its delay has stayed above
// target for `shrink_after`.
#include <tandem/rtp.hpp>

#include <algorithm>
#include <array>

namespace tandem {

namespace {
constexpr std::size_t window = 64;
}

struct JitterBuffer::Impl {
    JitterBufferConfig cfg;
    std::vector<Frame> pool;
    std::vector<std::uint16_t> free_slots;
    std::vector<std::uint16_t> order;   // slot indices, ascending timestamp
    std::vector<std::uint32_t> ts_of;   // timestamp of each slot
    std::vector<std::uint32_t> dur_of;  // duration (timestamp units) of each slot

    bool have_stream = false;
    Format format = Format::none;
    std::uint32_t clock = 8000, rate = 8000;
    bool started = false;
    std::uint32_t play_ts = 0;
    std::uint32_t last_dur = 160;
    std::uint32_t base_ts = 0;
    clock::time_point base_arrival{};
    clock::time_point last_put{};
    std::array<std::int32_t, window> rel{};
    std::size_t rel_count = 0, rel_pos = 0;
    std::uint32_t target_ms = 0;
    bool excess = false;
    clock::time_point excess_since{};
    std::uint32_t underrun_ts = 0;  // play-out held while dry, in timestamp units

    std::uint32_t ms_to_ts(std::int64_t ms) const { return static_cast<std::uint32_t>(ms * clock / 1000); }
    std::int64_t ts_to_ms(std::int64_t ts) const { return ts * 1000 / clock; }

    void clear() {
        for (auto i : order) free_slots.push_back(i);
        order.clear();
        started = false;
        have_stream = false;
        rel_count = rel_pos = 0;
        excess = false;
        underrun_ts = 0;
        target_ms = static_cast<std::uint32_t>(cfg.min_delay.count());
    }

    std::uint32_t newest_end() const {
        auto i = order.back();
        return ts_of[i] + dur_of[i];
    }
    // Buffered audio from the play-out point (or the oldest frame) to the newest end.
    std::uint32_t depth_ms() const {
        if (order.empty()) return 0;
        auto from = started ? play_ts : ts_of[order.front()];
        auto d = static_cast<std::int32_t>(newest_end() - from);
        return d > 0 ? static_cast<std::uint32_t>(ts_to_ms(d)) : 0;
    }

    void update_target() {
        if (rel_count == 0) return;
        auto [mn, mx] = std::minmax_element(rel.begin(), rel.begin() + static_cast<std::ptrdiff_t>(rel_count));
        auto spread = static_cast<std::int64_t>(*mx) - *mn + ts_to_ms(last_dur);
        spread = std::clamp<std::int64_t>(spread, cfg.min_delay.count(), cfg.max_delay.count());
        target_ms = static_cast<std::uint32_t>(spread);
    }
};

JitterBuffer::JitterBuffer(JitterBufferConfig config) : impl_(std::make_unique<Impl>()) {
    auto& m = *impl_;
    m.cfg = config;
    if (m.cfg.min_delay.count() < 0) m.cfg.min_delay = std::chrono::milliseconds(0);
    if (m.cfg.max_delay < m.cfg.min_delay) m.cfg.max_delay = m.cfg.min_delay;
    // Room for max_delay of 10 ms frames, plus reordering slack.
    auto slots = static_cast<std::size_t>(m.cfg.max_delay.count() / 10 + 8);
    slots = std::clamp<std::size_t>(slots, 8, 1000);
    m.pool.resize(slots);
    m.ts_of.resize(slots);
    m.dur_of.resize(slots);
    m.order.reserve(slots);
    m.free_slots.reserve(slots);
    for (std::size_t i = slots; i-- > 0;) m.free_slots.push_back(static_cast<std::uint16_t>(i));
    m.target_ms = static_cast<std::uint32_t>(m.cfg.min_delay.count());
    stats_.target_ms = m.target_ms;
}

JitterBuffer::~JitterBuffer() = default;

void JitterBuffer::reset() {
    impl_->clear();
    stats_.delay_ms = 0;
    stats_.target_ms = impl_->target_ms;
}

bool JitterBuffer::put(const Frame& f, clock::time_point arrival) {
    auto& m = *impl_;
    if (f.kind != FrameKind::voice || f.samples == 0) return false;
    auto fmt = static_cast<Format>(f.subclass);
    auto& info = format_info(fmt);
    if (info.sample_rate == 0 || info.rtp_clock == 0) return false;
    if (m.have_stream && fmt != m.format) {
        m.clear();
        ++stats_.resyncs;
    }
    if (!m.have_stream) {
        m.have_stream = true;
        m.format = fmt;
        m.clock = info.rtp_clock;
        m.rate = info.sample_rate;
        m.base_ts = f.timestamp;
        m.base_arrival = arrival;
    }
    auto dur = static_cast<std::uint32_t>(std::uint64_t(f.samples) * m.clock / m.rate);
    if (dur == 0) return false;
    auto resync_ts = m.ms_to_ts(m.cfg.resync.count());

    // Far from where we are: a new stream or a jump; start again from it.
    auto ref = m.started ? m.play_ts : (m.order.empty() ? f.timestamp : m.ts_of[m.order.front()]);
    auto off = static_cast<std::int32_t>(f.timestamp - ref);
    if (off > static_cast<std::int32_t>(resync_ts) || -off > static_cast<std::int32_t>(resync_ts)) {
        m.clear();
        ++stats_.resyncs;
        m.have_stream = true;
        m.format = fmt;
        m.clock = info.rtp_clock;
        m.rate = info.sample_rate;
        m.base_ts = f.timestamp;
        m.base_arrival = arrival;
    } else if (m.started && off < 0) {
        ++stats_.late;
        // Too late to play: the delay is too small for this jitter.
        auto late_ms = static_cast<std::int32_t>(m.ts_to_ms(-off)) + static_cast<std::int32_t>(m.ts_to_ms(dur));
        m.target_ms = std::min<std::uint32_t>(static_cast<std::uint32_t>(m.cfg.max_delay.count()),
                                              m.target_ms + static_cast<std::uint32_t>(late_ms));
        stats_.target_ms = m.target_ms;
        return false;
    }

    // Relative transit: arrival time minus media time, both from the first frame.
    auto arr_ms = std::chrono::duration_cast<std::chrono::milliseconds>(arrival - m.base_arrival).count();
    auto media_ms = m.ts_to_ms(static_cast<std::int32_t>(f.timestamp - m.base_ts));
    m.rel[m.rel_pos] = static_cast<std::int32_t>(arr_ms - media_ms);
    m.rel_pos = (m.rel_pos + 1) % window;
    m.rel_count = std::min(m.rel_count + 1, window);
    m.last_put = arrival;

    // Sorted insert; same timestamp twice is a duplicate.
    auto pos = m.order.end();
    for (auto it = m.order.begin(); it != m.order.end(); ++it) {
        auto d = static_cast<std::int32_t>(f.timestamp - m.ts_of[*it]);
        if (d == 0) {
            ++stats_.duplicates;
            return false;
        }
        if (d < 0) {
            pos = it;
            break;
        }
    }
    if (m.free_slots.empty()) {
        ++stats_.overflow;
        return false;
    }
    auto slot = m.free_slots.back();
    m.free_slots.pop_back();
    m.pool[slot] = f;
    m.ts_of[slot] = f.timestamp;
    m.dur_of[slot] = dur;
    m.order.insert(pos, slot);
    m.last_dur = dur;
    m.update_target();
    ++stats_.put;
    stats_.target_ms = m.target_ms;
    stats_.delay_ms = m.depth_ms();
    return true;
}

JitterBuffer::Output JitterBuffer::get(clock::time_point now, Frame& out) {
    auto& m = *impl_;
    Output o;
    auto take = [&](Output& res) {
        auto slot = m.order.front();
        m.order.erase(m.order.begin());
        out = std::move(m.pool[slot]);
        m.play_ts = m.ts_of[slot] + m.dur_of[slot];
        m.free_slots.push_back(slot);
        res.result = Result::frame;
        res.samples = out.samples;
    };

    if (!m.started) {
        if (m.order.empty()) return o;
        // Start when the target delay is buffered, or the oldest frame has
        // waited that long (a short talkspurt must not wait forever).
        auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(now - m.last_put).count() +
                      static_cast<std::int64_t>(m.depth_ms());
        if (m.depth_ms() < m.target_ms && waited < static_cast<std::int64_t>(m.target_ms)) return o;
        m.started = true;
        m.play_ts = m.ts_of[m.order.front()];
        m.underrun_ts = 0;
    }

    // Drop frames that overlap what was already played (mixed frame sizes).
    while (!m.order.empty() && static_cast<std::int32_t>(m.ts_of[m.order.front()] - m.play_ts) < 0) {
        auto slot = m.order.front();
        m.order.erase(m.order.begin());
        m.free_slots.push_back(slot);
        ++stats_.late;
    }

    if (!m.order.empty() && m.ts_of[m.order.front()] == m.play_ts) {
        // Shrink slowly: one frame skipped per `shrink_after` of excess delay.
        auto depth = m.depth_ms();
        if (depth > m.target_ms + m.ts_to_ms(m.last_dur) && m.order.size() > 1) {
            if (!m.excess) {
                m.excess = true;
                m.excess_since = now;
            } else if (now - m.excess_since >= m.cfg.shrink_after) {
                auto slot = m.order.front();
                m.order.erase(m.order.begin());
                m.play_ts = m.ts_of[slot] + m.dur_of[slot];
                m.free_slots.push_back(slot);
                m.excess_since = now;
                ++stats_.late;
            }
        } else {
            m.excess = false;
        }
        if (!m.order.empty() && m.ts_of[m.order.front()] == m.play_ts) {
            take(o);
            m.underrun_ts = 0;
            ++stats_.played;
            stats_.delay_ms = m.depth_ms();
            return o;
        }
    }

    o.samples = static_cast<std::uint32_t>(std::uint64_t(m.last_dur) * m.rate / m.clock);
    if (!m.order.empty()) {
        // A gap before the next frame: the packet is lost (or later than its turn).
        m.play_ts += m.last_dur;
        o.result = Result::conceal;
        ++stats_.concealed;
        stats_.delay_ms = m.depth_ms();
        return o;
    }
    // Dry: hold the play-out point, which adds delay for the next frames.
    // After max_delay with nothing, the stream is silent: stop and wait.
    m.underrun_ts += m.last_dur;
    if (m.ts_to_ms(m.underrun_ts) > m.cfg.max_delay.count()) {
        m.started = false;
        m.underrun_ts = 0;
        o = Output{};
        return o;
    }
    m.target_ms = std::min<std::uint32_t>(static_cast<std::uint32_t>(m.cfg.max_delay.count()),
                                          std::max(m.target_ms, static_cast<std::uint32_t>(m.ts_to_ms(m.underrun_ts))));
    stats_.target_ms = m.target_ms;
    o.result = Result::conceal;
    ++stats_.concealed;
    stats_.delay_ms = 0;
    return o;
}

}  // namespace tandem
