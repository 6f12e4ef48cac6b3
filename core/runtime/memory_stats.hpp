// What the process's allocator holds, for `core show memory` and the benchmarks.
//
// The tandem executable is linked with jemalloc (glibc's malloc in sanitizer
// builds and when jemalloc is missing); the figures come from whichever serves
// malloc(), found at run time so the core library does not depend on either.
// Callable from any thread.
#pragma once

#include <cstdint>
#include <string>

namespace tandem {

struct MemoryStats {
    std::string allocator;       // "jemalloc", "glibc" or "asan"
    std::uint64_t in_use = 0;    // bytes handed out by malloc and not freed
    std::uint64_t active = 0;    // bytes of the pages holding live allocations (0: unknown)
    std::uint64_t metadata = 0;  // the allocator's own bookkeeping (0: unknown)
    std::uint64_t resident = 0;  // bytes of the allocator's memory in RAM (0: unknown)
    std::uint64_t rss = 0;       // the whole process's resident set (/proc/self/statm)
};

MemoryStats memory_stats();

}  // namespace tandem
