#include "runtime/memory_stats.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdio>

#ifdef TANDEM_SANITIZE
// GCC ships no <sanitizer/allocator_interface.h>; the runtime exports the call.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace tandem {

namespace {

using MallctlFn = int (*)(const char*, void*, std::size_t*, void*, std::size_t);

std::uint64_t process_rss() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = std::fscanf(f, "%lu %lu", &size, &resident);
    std::fclose(f);
    return n == 2 ? static_cast<std::uint64_t>(resident) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace

MemoryStats memory_stats() {
    MemoryStats s;
    s.rss = process_rss();
#ifdef TANDEM_SANITIZE
    // Under AddressSanitizer malloc is the sanitizer's: glibc's counters stay at zero.
    s.allocator = "asan";
    s.in_use = __sanitizer_get_current_allocated_bytes();
    s.resident = 0;
    return s;
#endif
    // jemalloc's statistics are a snapshot refreshed by writing "epoch".
    if (auto mallctl = reinterpret_cast<MallctlFn>(::dlsym(RTLD_DEFAULT, "mallctl"))) {
        std::uint64_t epoch = 1;
        std::size_t len = sizeof epoch;
        mallctl("epoch", &epoch, &len, &epoch, len);
        std::size_t value = 0;
        len = sizeof value;
        if (mallctl("stats.allocated", &value, &len, nullptr, 0) == 0) {
            s.allocator = "jemalloc";
            s.in_use = value;
            auto read = [&](const char* name, std::uint64_t& out) {
                std::size_t v = 0, l = sizeof v;
                if (mallctl(name, &v, &l, nullptr, 0) == 0) out = v;
            };
            read("stats.active", s.active);
            read("stats.metadata", s.metadata);
            read("stats.resident", s.resident);
            return s;
        }
    }
    struct mallinfo2 mi = ::mallinfo2();
    s.allocator = "glibc";
    s.in_use = mi.uordblks + mi.hblkhd;
    s.resident = 0;
    return s;
}

}  // namespace tandem
