// The translator graph: the cheapest chain of registered translators from one
// format to another, and the TranslationPath objects that run such chains.
//
// The core's Registry<TranslatorInfo> is the source of truth; the graph only
// keeps what it derives from it, and notices changes through the registry's
// generation counter:
//  - a cost per registered step, in microseconds per 20 ms frame: measured on
//    this machine (the lowest of three medians, each over a third of a
//    second of a test signal, taken in turns with the other steps), assumed
//    when it cannot be measured (a decoder whose encoder is not registered,
//    video), or injected (tests, core-private);
//  - per source format, a shortest-path tree over formats (Dijkstra, edges =
//    translators, weights = costs; equal costs prefer fewer steps), dropped as
//    soon as the registry or a cost changes.
//
// Costs are measured at start-up (after modules load), by `core show
// translation recalc`, and for the translators of a module loaded later (on
// the worker pool, prompted by event::ModuleChanged). Until then a new step
// counts with the assumed cost.
//
// Threading: every method is safe from any thread. measure() runs module code
// for a while (about 50 conversions per step) and must not run on an event
// loop; plan() and build() are cheap (call set-up, not per frame).
#pragma once

#include <tandem/log.hpp>
#include <tandem/media.hpp>
#include <tandem/registry.hpp>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class CoreImpl;

enum class CostSource : std::uint8_t {
    pending,   // registered, not yet measured: counts as assumed_cost
    measured,  // timed on this machine
    assumed,   // could not be measured: assumed_cost
    injected,  // set through set_cost()
};
std::string_view to_string(CostSource s);

// One registered step as the graph sees it.
struct TranslatorStep {
    std::string name;  // registry name, "ulaw->slin8"
    Format from = Format::none, to = Format::none;
    unsigned cost = 0;
    CostSource source = CostSource::pending;
    std::string module;
    std::string description;
};

// The cheapest chain from one format to another, before any instance exists.
struct TranslationPlan {
    std::vector<TranslatorStep> steps;
    unsigned cost = 0;
    std::string describe() const;  // "opus->slin48->slin8->ulaw"
};

class TranslatorGraph {
public:
    // Cost of a step that could not (or not yet) be measured: far above any
    // real codec, so a measured path is always preferred.
    static constexpr unsigned assumed_cost = 5000;
    // Frames of 20 ms timed per step (about 1 s of audio), in rounds that
    // take turns with the other steps; the cost is the lowest of the rounds'
    // medians (see measure()).
    static constexpr int measure_frames = 48;
    static constexpr int measure_rounds = 3;

    explicit TranslatorGraph(CoreImpl& core);
    ~TranslatorGraph();
    TranslatorGraph(const TranslatorGraph&) = delete;
    TranslatorGraph& operator=(const TranslatorGraph&) = delete;

    // Times the steps that have no measured cost yet (every step when `all`).
    // Blocking: at start-up or on the worker pool, never on an event loop.
    void measure(bool all);
    // Subscribes to event::ModuleChanged: a module's steps lose their costs
    // when it unloads, and are measured on the worker pool when it loads.
    Registration watch_modules();
    // At shutdown, before modules unload: waits for a running measurement and
    // refuses further ones.
    void stop();

    // The cheapest chain, or nullopt when there is none (or from == to).
    std::optional<TranslationPlan> plan(Format from, Format to);
    // Instantiates the cheapest chain; `options` go to the step producing `to`.
    // nullptr when there is no path or a step refused to be created.
    std::unique_ptr<TranslationPath> build(Format from, Format to, std::string_view options);

    // Every registered step with its current cost, in name order.
    std::vector<TranslatorStep> steps();

    // Core-private (tests): pins a step's cost regardless of measurement.
    void set_cost(std::string_view name, unsigned cost);
    void clear_cost(std::string_view name);
    // Shortest-path trees cached and still valid (tests observe invalidation).
    std::size_t cached_trees();

private:
    static constexpr std::size_t format_count = static_cast<std::size_t>(Format::count_);
    struct Cost {
        unsigned value;
        CostSource source;
        std::string module;
    };
    // Dijkstra from one source: best (cost, steps) to every format and the
    // step (index into steps_) that reaches it.
    struct Tree {
        std::array<std::uint64_t, format_count> dist;
        std::array<int, format_count> via;
    };

    void refresh_locked();
    TranslatorStep& with_cost_locked(TranslatorStep& s) const;
    const Tree& tree_locked(Format from);
    void invalidate_locked() { trees_ = {}; }
    void module_changed(const std::string& module, bool loaded);
    void schedule_measurement();
    // Times one step (held by `lease`) on round `round` of the test signal
    // (`signals`: the signal at each slin rate, made on first use); returns
    // its cost and how it was found.
    std::pair<unsigned, CostSource> time_step(const Lease<TranslatorInfo>& lease, const std::string& name, int round,
                                              std::map<Format, std::vector<Frame>>& signals);
    std::unique_ptr<Translator> create(const TranslatorInfo& info, const std::string& name, const std::string& module,
                                       std::string_view options);

    CoreImpl& core_;
    Registry<TranslatorInfo>& registry_;
    Log log_;

    mutable std::mutex mu_;  // everything below
    std::uint64_t seen_generation_ = ~std::uint64_t{0};
    std::vector<TranslatorStep> steps_;         // as registered, costs filled on demand
    std::map<std::string, Cost> costs_;         // measured or assumed, by lower-case name
    std::map<std::string, unsigned> injected_;  // by lower-case name
    std::array<std::unique_ptr<Tree>, format_count> trees_{};
    bool stopping_ = false;
    bool job_queued_ = false;
    int jobs_running_ = 0;
    std::condition_variable jobs_done_;

    std::mutex measure_mu_;  // one measurement at a time: parallel runs would skew the timings
};

}  // namespace tandem
