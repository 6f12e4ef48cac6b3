#include "media/translate.hpp"

#include "runtime/core_impl.hpp"

#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>

namespace tandem {

namespace {

constexpr std::uint64_t unreachable = std::numeric_limits<std::uint64_t>::max();

bool is_slin(Format f) {
    return f == Format::slin8 || f == Format::slin16 || f == Format::slin48;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
}

// Every step beyond the first costs something the measurement does not see
// (one more buffer handed on, one more filter's delay and rounding), and
// costs measured on a busy machine wobble by a few microseconds: without a
// charge per step, two resamplers in a row (slin8->slin16->slin48) would now
// and then beat the direct one. A chain must win by more than this per extra
// step. The plan still reports the measured costs alone.
constexpr unsigned step_charge = 2;

// Dijkstra's distance packs (cost with the step charge, steps) into one number
// so that equal costs prefer the shorter chain.
std::uint64_t edge_weight(unsigned cost) {
    return (std::uint64_t{cost + step_charge} << 8) + 1;
}

// --- the measurement signal ----------------------------------------------

// One second of audio that looks like what a PBX carries: a voiced "speech"
// part (a glottal pulse train whose pitch glides from 100 to 200 Hz, shaped by
// three formant resonators and a 4 Hz syllable envelope), call-progress tones
// (350 + 440 Hz) and a little noise. Codecs whose cost depends on the signal
// (Opus, GSM) then do the work they do in a call.
std::vector<std::int16_t> test_signal(std::uint32_t rate) {
    const std::size_t n = rate;  // 1 s
    std::vector<double> voice(n, 0.0);
    const double pi = std::numbers::pi;
    const double formants[] = {700, 1220, 2600};
    // Pulse train: one impulse per pitch period.
    double phase = 1.0;
    for (std::size_t i = 0; i < n; ++i) {
        double t = static_cast<double>(i) / rate;
        phase += (100.0 + 100.0 * t) / rate;
        if (phase >= 1.0) {
            phase -= 1.0;
            voice[i] = 1.0;
        }
    }
    // Second-order resonators, in series; a formant above Nyquist is skipped.
    for (double f : formants) {
        if (f >= 0.45 * rate) continue;
        double r = std::exp(-pi * 120.0 / rate);
        double a1 = 2 * r * std::cos(2 * pi * f / rate), a2 = -r * r;
        double y1 = 0, y2 = 0;
        for (auto& v : voice) {
            double y = v + a1 * y1 + a2 * y2;
            y2 = y1;
            y1 = y;
            v = y;
        }
    }
    double peak = 1e-9;
    for (double v : voice) peak = std::max(peak, std::abs(v));
    std::vector<std::int16_t> out(n);
    std::uint32_t noise = 12345;
    for (std::size_t i = 0; i < n; ++i) {
        double t = static_cast<double>(i) / rate;
        double envelope = 0.2 + 0.8 * std::abs(std::sin(pi * 4 * t));
        double s = 14000.0 * envelope * voice[i] / peak;
        s += 2500.0 * (std::sin(2 * pi * 350 * t) + std::sin(2 * pi * 440 * t));
        noise = noise * 1664525u + 1013904223u;
        s += static_cast<double>(static_cast<std::int32_t>(noise >> 16) - 32768) / 64.0;
        out[i] = static_cast<std::int16_t>(std::clamp(s, -32767.0, 32767.0));
    }
    return out;
}

// The test signal of one slin format as 20 ms voice frames.
std::vector<Frame> slin_frames(Format f) {
    auto rate = format_info(f).sample_rate;
    auto signal = test_signal(rate);
    const std::uint32_t per_frame = rate / 50;
    std::vector<Frame> frames;
    for (std::size_t at = 0; at + per_frame <= signal.size(); at += per_frame) {
        Frame fr;
        fr.kind = FrameKind::voice;
        fr.subclass = static_cast<std::uint32_t>(f);
        fr.samples = per_frame;
        fr.timestamp = static_cast<std::uint32_t>(at);
        fr.duration_ms = 20;
        fr.set_payload({reinterpret_cast<const std::uint8_t*>(signal.data() + at), per_frame * 2});
        frames.push_back(std::move(fr));
    }
    return frames;
}

// --- the path a call uses ------------------------------------------------

// Runs a chain of translator instances. Each step writes into a Frame owned
// by the path (the last one into the caller's), so a steady stream of frames
// allocates nothing once the buffers have their size.
//
// Frame sizes are not matched between steps: a step gets whatever its
// predecessor produced (a decoder's 30 ms, a resampler's 20 ms) and each
// Translator must accept any whole number of samples. Buffering to a fixed
// frame size is the channel's job (it knows the negotiated packetisation).
class ChainPath final : public TranslationPath {
public:
    struct Step {
        // Declared first, destroyed last: the instance runs module code and
        // must be gone before the lease lets the module unload.
        Lease<TranslatorInfo> info;
        std::unique_ptr<Translator> translator;
    };

    ChainPath(Format from, Format to, unsigned cost, std::string description, std::vector<Step> steps)
        : from_(from),
          to_(to),
          cost_(cost),
          description_(std::move(description)),
          steps_(std::move(steps)),
          between_(steps_.size() - 1) {
        // Frames above Frame::inline_capacity (20 ms of slin48) keep their
        // payload on the heap: give them 20 ms worth now so the first frame
        // does not allocate either.
        for (std::size_t i = 0; i + 1 < steps_.size(); ++i) {
            Format f = steps_[i].info->to;
            auto bytes = format_bytes(f, format_info(f).sample_rate / 50);
            if (bytes > Frame::inline_capacity) {
                std::vector<std::uint8_t> room(bytes);
                between_[i].set_payload(room);
                between_[i].set_payload({});
            }
        }
    }

    Format from() const override { return from_; }
    Format to() const override { return to_; }
    std::string describe() const override { return description_; }
    unsigned cost() const override { return cost_; }

    bool convert(const Frame& in, Frame& out) override { return run(0, in, out); }

    bool conceal(std::uint32_t samples, Frame& out) override {
        Frame& first = steps_.size() == 1 ? out : between_[0];
        if (!steps_[0].translator->conceal(samples, first)) return false;
        return steps_.size() == 1 || run(1, first, out);
    }

private:
    bool run(std::size_t from_step, const Frame& in, Frame& out) {
        const Frame* src = &in;
        for (std::size_t i = from_step; i < steps_.size(); ++i) {
            Frame& dst = i + 1 == steps_.size() ? out : between_[i];
            if (!steps_[i].translator->convert(*src, dst)) return false;
            src = &dst;
        }
        return true;
    }

    Format from_, to_;
    unsigned cost_;
    std::string description_;
    std::vector<Step> steps_;
    std::vector<Frame> between_;  // output of step i, input of step i + 1
};

}  // namespace

std::string_view to_string(CostSource s) {
    switch (s) {
        case CostSource::pending:
            return "pending";
        case CostSource::measured:
            return "measured";
        case CostSource::assumed:
            return "assumed";
        case CostSource::injected:
            return "injected";
    }
    return "?";
}

std::string TranslationPlan::describe() const {
    if (steps.empty()) return {};
    std::string s(format_info(steps.front().from).name);
    for (auto& st : steps) s += fmt::format("->{}", format_info(st.to).name);
    return s;
}

TranslatorGraph::TranslatorGraph(CoreImpl& core)
    : core_(core), registry_(core.translators()), log_(core.log_sink(), "translate") {}

TranslatorGraph::~TranslatorGraph() {
    stop();
}

// --- the graph -----------------------------------------------------------

void TranslatorGraph::refresh_locked() {
    auto generation = registry_.generation();
    if (generation == seen_generation_) return;
    // Read the generation first: a change during the copy makes the next
    // call refresh again rather than keep a stale graph.
    steps_.clear();
    registry_.for_each([&](const std::string& name, const TranslatorInfo& t, const std::string& module) {
        steps_.push_back({name, t.from, t.to, 0, CostSource::pending, module, t.description});
    });
    // Costs of steps that are gone are forgotten; one registered again later
    // is measured afresh.
    std::erase_if(costs_, [&](const auto& kv) {
        return std::none_of(steps_.begin(), steps_.end(), [&](auto& s) { return lower(s.name) == kv.first; });
    });
    seen_generation_ = generation;
    invalidate_locked();
}

TranslatorStep& TranslatorGraph::with_cost_locked(TranslatorStep& s) const {
    auto key = lower(s.name);
    if (auto it = injected_.find(key); it != injected_.end()) {
        s.cost = it->second;
        s.source = CostSource::injected;
    } else if (auto c = costs_.find(key); c != costs_.end()) {
        s.cost = c->second.value;
        s.source = c->second.source;
    } else {
        s.cost = assumed_cost;
        s.source = CostSource::pending;
    }
    return s;
}

const TranslatorGraph::Tree& TranslatorGraph::tree_locked(Format from) {
    auto& slot = trees_[static_cast<std::size_t>(from)];
    if (slot) return *slot;
    auto tree = std::make_unique<Tree>();
    tree->dist.fill(unreachable);
    tree->via.fill(-1);
    std::array<bool, format_count> done{};
    tree->dist[static_cast<std::size_t>(from)] = 0;
    for (auto& s : steps_) with_cost_locked(s);
    // A dozen formats: the simple O(V^2) form is the fastest one here.
    for (;;) {
        std::size_t u = format_count;
        for (std::size_t i = 0; i < format_count; ++i)
            if (!done[i] && tree->dist[i] != unreachable && (u == format_count || tree->dist[i] < tree->dist[u])) u = i;
        if (u == format_count) break;
        done[u] = true;
        for (std::size_t e = 0; e < steps_.size(); ++e) {
            auto& s = steps_[e];
            auto a = static_cast<std::size_t>(s.from), b = static_cast<std::size_t>(s.to);
            if (a != u || b >= format_count || done[b]) continue;
            auto d = tree->dist[u] + edge_weight(s.cost);
            if (d < tree->dist[b]) {
                tree->dist[b] = d;
                tree->via[b] = static_cast<int>(e);
            }
        }
    }
    slot = std::move(tree);
    return *slot;
}

std::optional<TranslationPlan> TranslatorGraph::plan(Format from, Format to) {
    auto a = static_cast<std::size_t>(from), b = static_cast<std::size_t>(to);
    if (from == to || from == Format::none || to == Format::none || a >= format_count || b >= format_count)
        return std::nullopt;
    std::lock_guard lock(mu_);
    refresh_locked();
    auto& tree = tree_locked(from);
    if (tree.dist[b] == unreachable) return std::nullopt;
    TranslationPlan p;
    for (auto at = b; at != a;) {
        auto& s = steps_[static_cast<std::size_t>(tree.via[at])];
        p.steps.push_back(s);
        p.cost += s.cost;
        at = static_cast<std::size_t>(s.from);
    }
    std::reverse(p.steps.begin(), p.steps.end());
    return p;
}

std::unique_ptr<Translator> TranslatorGraph::create(const TranslatorInfo& info, const std::string& name,
                                                    const std::string& module, std::string_view options) {
    // Module code: nothing it throws may escape into the caller's loop.
    std::string_view owner = module.empty() ? std::string_view("no module") : std::string_view(module);
    try {
        if (info.create) {
            if (auto t = info.create(options)) return t;
        }
        log_.warning("translator {} ({}) refused to start{}", name, owner,
                     options.empty() ? std::string() : fmt::format(" with options '{}'", options));
    } catch (const std::exception& e) {
        log_.error("translator {} ({}) failed to start: {}", name, owner, e.what());
    } catch (...) {
        log_.error("translator {} ({}) failed to start", name, owner);
    }
    return nullptr;
}

std::unique_ptr<TranslationPath> TranslatorGraph::build(Format from, Format to, std::string_view options) {
    // A step may be unregistered between planning and leasing it; the
    // registry's generation has changed then, and a second plan sees that.
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto p = plan(from, to);
        if (!p) return nullptr;
        std::vector<ChainPath::Step> steps;
        steps.reserve(p->steps.size());
        for (std::size_t i = 0; i < p->steps.size(); ++i) {
            auto& s = p->steps[i];
            auto lease = registry_.find(s.name);
            if (!lease) break;
            bool encoder = i + 1 == p->steps.size();
            auto t = create(*lease, s.name, lease.module(), encoder ? options : std::string_view{});
            if (!t) return nullptr;
            steps.push_back({std::move(lease), std::move(t)});
        }
        if (steps.size() == p->steps.size())
            return std::make_unique<ChainPath>(from, to, p->cost, p->describe(), std::move(steps));
    }
    return nullptr;
}

std::vector<TranslatorStep> TranslatorGraph::steps() {
    std::lock_guard lock(mu_);
    refresh_locked();
    std::vector<TranslatorStep> out;
    out.reserve(steps_.size());
    for (auto& s : steps_) out.push_back(with_cost_locked(s));
    return out;
}

void TranslatorGraph::set_cost(std::string_view name, unsigned cost) {
    std::lock_guard lock(mu_);
    injected_[lower(name)] = std::max(cost, 1u);
    invalidate_locked();
}

void TranslatorGraph::clear_cost(std::string_view name) {
    std::lock_guard lock(mu_);
    injected_.erase(lower(name));
    invalidate_locked();
}

std::size_t TranslatorGraph::cached_trees() {
    std::lock_guard lock(mu_);
    refresh_locked();
    return static_cast<std::size_t>(std::count_if(trees_.begin(), trees_.end(), [](auto& t) { return t != nullptr; }));
}

// --- measuring -----------------------------------------------------------

std::pair<unsigned, CostSource> TranslatorGraph::time_step(const Lease<TranslatorInfo>& lease, const std::string& name,
                                                           int round, std::map<Format, std::vector<Frame>>& signals) {
    const TranslatorInfo& t = *lease;
    const auto& src = format_info(t.from);
    const auto& dst = format_info(t.to);
    const std::pair<unsigned, CostSource> assumed{assumed_cost, CostSource::assumed};
    if (src.kind != MediaKind::audio || dst.kind != MediaKind::audio || !src.sample_rate) return assumed;

    // This round's part of the test signal at one slin rate (made once per
    // measurement, shared by every step and round).
    const std::size_t per_round = measure_frames / measure_rounds;
    auto slice = [&](Format f) {
        auto& all = signals[f];
        if (all.empty()) all = slin_frames(f);
        auto first = all.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(round) * per_round);
        return std::vector<Frame>(first, first + static_cast<std::ptrdiff_t>(per_round));
    };

    // Input in the step's source format: the test signal itself for slin,
    // otherwise the signal encoded by the reverse step (or, for a step
    // between two codecs, the encoder of its source at its own rate).
    std::vector<Frame> input;
    if (is_slin(t.from)) {
        input = slice(t.from);
    } else {
        Format base = is_slin(t.to) ? t.to : slin_at(src.sample_rate);
        auto encoder = base == Format::none ? Lease<TranslatorInfo>() : registry_.find(translator_name(base, t.from));
        if (!encoder) {
            log_.debug("{}: no {} encoder to make test input; cost assumed", name, src.name);
            return assumed;
        }
        auto enc = create(*encoder, translator_name(base, t.from), encoder.module(), {});
        if (!enc) return assumed;
        for (auto& f : slice(base)) {
            Frame coded;
            bool ok = false;
            try {
                ok = enc->convert(f, coded);
            } catch (...) {
            }
            if (!ok) {
                log_.warning("{}: encoding the test signal failed; cost assumed", name);
                return assumed;
            }
            input.push_back(std::move(coded));
        }
    }

    auto inst = create(t, name, lease.module(), {});
    if (!inst) return assumed;
    std::vector<std::int64_t> ns;
    ns.reserve(input.size());
    Frame out;
    for (auto& f : input) {
        bool ok = false;
        auto start = std::chrono::steady_clock::now();
        try {
            ok = inst->convert(f, out);
        } catch (...) {
        }
        auto took = std::chrono::steady_clock::now() - start;
        if (!ok) {
            log_.warning("{} ({}) failed to convert the test signal; cost assumed", name, lease.module());
            return assumed;
        }
        ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
    }
    if (ns.empty()) return assumed;
    auto mid = ns.begin() + static_cast<std::ptrdiff_t>(ns.size() / 2);
    std::nth_element(ns.begin(), mid, ns.end());
    // Input frames are 20 ms, so the median is already per 20 ms.
    auto us = static_cast<unsigned>((*mid + 500) / 1000);
    return {std::max(us, 1u), CostSource::measured};
}

void TranslatorGraph::measure(bool all) {
    std::lock_guard serial(measure_mu_);
    std::vector<std::string> todo;
    {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        refresh_locked();
        for (auto& s : steps_)
            if (all || !costs_.count(lower(s.name))) todo.push_back(s.name);
    }
    // A busy machine slows some steps' timings and not others (a burst of
    // other work, a sibling hyperthread), and one unlucky step is enough to
    // send calls down a longer chain (slin8->slin16->slin48 instead of the
    // direct resampler). So every step is timed in measure_rounds short
    // rounds that take turns with all the other steps, and keeps the lowest
    // of its rounds' medians: interference only ever adds time. The frames
    // timed in all are as many as one round over measure_frames would be.
    struct Result {
        unsigned cost = 0;
        CostSource source = CostSource::measured;
        bool finished = false;
    };
    std::vector<Result> results(todo.size());
    std::map<Format, std::vector<Frame>> signals;
    for (int round = 0; round < measure_rounds; ++round) {
        for (std::size_t i = 0; i < todo.size(); ++i) {
            auto& name = todo[i];
            auto& r = results[i];
            if (r.finished) continue;
            {
                std::lock_guard lock(mu_);
                if (stopping_) return;
            }
            // The lease keeps the step (and its module) while it is timed.
            auto lease = registry_.find(name);
            if (!lease) {
                r.finished = true;
                continue;
            }
            auto [cost, source] = time_step(lease, name, round, signals);
            r.cost = round == 0 || source != CostSource::measured ? cost : std::min(r.cost, cost);
            r.source = source;
            // A step that cannot be measured is not tried again.
            if (source == CostSource::measured && round + 1 < measure_rounds) continue;
            r.finished = true;
            log_.debug("{}: {} us per 20 ms ({})", name, r.cost, to_string(source));
            std::lock_guard lock(mu_);
            // Store only if the registry still holds what was timed (not a step
            // registered again under the same name meanwhile).
            auto now = registry_.find(name);
            if (!now || &*now != &*lease) continue;
            costs_[lower(name)] = Cost{r.cost, source, lease.module()};
            invalidate_locked();
        }
    }
}

void TranslatorGraph::module_changed(const std::string& module, bool loaded) {
    {
        std::lock_guard lock(mu_);
        // A module's steps are measured again whenever it is (re)loaded, even
        // if it was unloaded and loaded again before anyone looked.
        std::erase_if(costs_, [&](const auto& kv) { return kv.second.module == module; });
        invalidate_locked();
        refresh_locked();
        if (!loaded || std::none_of(steps_.begin(), steps_.end(), [&](auto& s) { return s.module == module; })) return;
    }
    schedule_measurement();
}

void TranslatorGraph::schedule_measurement() {
    std::lock_guard lock(mu_);
    if (stopping_ || job_queued_) return;
    job_queued_ = true;
    ++jobs_running_;
    boost::asio::post(core_.workers(), [this] {
        {
            std::lock_guard guard(mu_);
            job_queued_ = false;
        }
        measure(false);
        std::lock_guard guard(mu_);
        --jobs_running_;
        jobs_done_.notify_all();
    });
}

Registration TranslatorGraph::watch_modules() {
    return core_.events().subscribe([this](const Event& e) {
        if (auto* m = std::get_if<event::ModuleChanged>(&e)) module_changed(m->module, m->loaded);
    });
}

void TranslatorGraph::stop() {
    std::unique_lock lock(mu_);
    stopping_ = true;
    jobs_done_.wait(lock, [this] { return jobs_running_ == 0; });
    lock.unlock();
    // A measurement started by the CLI notices stopping_ between two steps.
    std::lock_guard wait(measure_mu_);
}

}  // namespace tandem
