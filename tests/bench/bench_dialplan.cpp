// Dialplan lookup with 100 000 extensions in one context (prints figures).
//
// Reports the compile time of the whole file (what a reload costs) and the
// median cost of one lookup for exact numbers, for numbers reached through
// patterns, and for a miss. Medians over batches, so a noisy machine shows as
// spread, not as a wrong figure.
#include "dialplan/dialplan.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace tandem;
using clk = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

template <class F>
double per_lookup_ns(F&& f, int batches = 201, int per_batch = 2000) {
    std::vector<double> samples;
    for (int b = 0; b < batches; ++b) {
        auto t0 = clk::now();
        for (int i = 0; i < per_batch; ++i) f(i);
        auto dt = std::chrono::duration<double, std::nano>(clk::now() - t0).count();
        samples.push_back(dt / per_batch);
    }
    return median(samples);
}

}  // namespace

int main(int argc, char** argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 100000;
    int npatterns = argc > 2 ? std::atoi(argv[2]) : 200;
    std::string text = "[big]\n";
    text.reserve(static_cast<std::size_t>(n) * 40);
    for (int i = 0; i < n; ++i) {
        text += "exten => " + std::to_string(1000000 + i) + ",1,NoOp()\n same => n,Hangup()\n";
    }
    // Patterns for other number ranges, e.g. one per area code.
    for (int i = 0; i < npatterns; ++i) text += "exten => _" + std::to_string(200 + i) + "XXXXXXX,1,NoOp()\n";
    text += "exten => _X.,1,NoOp(catch-all)\n";

    auto t0 = clk::now();
    auto parsed = config::parse_text(text, "bench.conf", ".");
    auto t1 = clk::now();
    std::vector<config::Diagnostic> problems;
    auto plan = dialplan::compile(parsed.file, nullptr, problems);
    auto t2 = clk::now();
    if (!plan || !problems.empty()) {
        std::fprintf(stderr, "compile failed: %s\n", problems.empty() ? "?" : problems[0].str().c_str());
        return 1;
    }
    std::printf("dialplan: %d extensions + %d patterns in one context\n", n, npatterns + 1);
    std::printf("  parse   %8.1f ms\n", std::chrono::duration<double, std::milli>(t1 - t0).count());
    std::printf("  compile %8.1f ms\n", std::chrono::duration<double, std::milli>(t2 - t1).count());

    std::mt19937 rng(42);
    std::vector<std::string> exact, pattern_hits;
    for (int i = 0; i < 4096; ++i) {
        exact.push_back(std::to_string(1000000 + static_cast<int>(rng() % static_cast<unsigned>(n))));
        pattern_hits.push_back(std::to_string(200 + static_cast<int>(rng() % static_cast<unsigned>(npatterns))) +
                               "5551234");
    }
    auto now = std::chrono::system_clock::now();
    volatile const void* sink = nullptr;
    double e = per_lookup_ns([&](int i) {
        sink = dialplan::find_extension(*plan, "big", exact[static_cast<std::size_t>(i) & 4095], "", now);
    });
    double p = per_lookup_ns([&](int i) {
        sink = dialplan::find_extension(*plan, "big", pattern_hits[static_cast<std::size_t>(i) & 4095], "", now);
    });
    double c = per_lookup_ns([&](int) { sink = dialplan::find_extension(*plan, "big", "99", "", now); });
    (void)sink;
    std::printf("  lookup, exact number        median %8.1f ns\n", e);
    std::printf("  lookup, through a pattern   median %8.1f ns\n", p);
    std::printf("  lookup, catch-all _X.       median %8.1f ns\n", c);
    std::printf("  target: median under 1000 ns -> %s\n", std::max({e, p, c}) < 1000 ? "met" : "NOT met");
    return 0;
}
