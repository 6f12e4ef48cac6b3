// N concurrent Local channels parked in Wait() (prints figures).
//
// Boots a real core in-process on configs/, originates N/2 Local calls (two
// channels each) that both sit in Wait(), then reports memory per channel
// (RSS delta) and the CPU the process uses while they wait.
#include "dialplan/engine.hpp"
#include "runtime/core_impl.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {
long rss_kib() {
    std::ifstream in("/proc/self/statm");
    long size = 0, resident = 0;
    in >> size >> resident;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}
double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
    int channels = argc > 1 ? std::atoi(argv[1]) : 10000;
    int idle_seconds = argc > 2 ? std::atoi(argv[2]) : 10;
    auto dir = fs::temp_directory_path() / ("tandem-bench-" + std::to_string(getpid()));
    fs::create_directories(dir / "etc");
    std::ofstream(dir / "etc" / "tandem.conf")
        << "[options]\nlogfile =\nverbose = warning\n[directories]\nmodules => " << TANDEM_BENCH_MODULE_DIR
        << "\nrun => " << (dir / "run").string() << "\nspool => " << (dir / "spool").string() << "\ndb => "
        << (dir / "lib").string() << "\nlog => " << (dir / "log").string() << "\n";
    std::ofstream(dir / "etc" / "modules.conf") << "[modules]\nautoload = yes\n";
    std::ofstream(dir / "etc" / "extensions.conf") << "[b]\nexten => w,1,Answer()\n same => n,Wait(3600)\n";
    std::ofstream(dir / "etc" / "cdr.conf") << "[csv]\nenabled = no\n";

    StartOptions o;
    o.config_dir = dir / "etc";
    o.terminal_level = LogLevel::warning;
    o.control_socket = false;
    CoreImpl core(o);
    std::vector<std::string> problems;
    if (!core.start(problems)) {
        for (auto& p : problems) std::fprintf(stderr, "%s\n", p.c_str());
        return 1;
    }
    std::this_thread::sleep_for(200ms);
    long before = rss_kib();
    auto t0 = std::chrono::steady_clock::now();
    std::string error;
    for (int i = 0; i < channels / 2; ++i) {
        dialplan::OriginateTarget t;
        t.app = "Wait";
        t.app_args = "3600";
        if (dialplan::originate(core, "Local/w@b", t, error).empty()) {
            std::fprintf(stderr, "originate failed: %s\n", error.c_str());
            return 1;
        }
    }
    auto all_up = [&] {
        std::size_t up = 0;
        for (auto& c : core.channels()) up += c->state() == ChannelState::up && c->last_app() == "Wait";
        return up;
    };
    while (all_up() < static_cast<std::size_t>(channels)) std::this_thread::sleep_for(20ms);
    auto setup = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::this_thread::sleep_for(500ms);
    long after = rss_kib();
    double c0 = cpu_seconds();
    std::this_thread::sleep_for(std::chrono::seconds(idle_seconds));
    double c1 = cpu_seconds();
    std::size_t threads = 0;
    for (auto& e : fs::directory_iterator("/proc/self/task")) (void)e, ++threads;

    std::printf("channels: %d Local channels (%d calls) parked in Wait()\n", channels, channels / 2);
    std::printf("  set-up time              %8.2f s (%.0f calls/s)\n", setup, channels / 2 / setup);
    std::printf("  RSS before / after       %8ld / %ld KiB\n", before, after);
    std::printf("  memory per channel       %8.2f KiB (target < 20 KiB) -> %s\n",
                static_cast<double>(after - before) / channels,
                static_cast<double>(after - before) / channels < 20 ? "met" : "NOT met");
    std::printf("  CPU while waiting        %8.3f %% of one core over %d s (%.3f s)\n",
                100.0 * (c1 - c0) / idle_seconds, idle_seconds, c1 - c0);
    std::printf("  threads                  %8zu (independent of the number of calls)\n", threads);
    auto t1 = std::chrono::steady_clock::now();
    for (auto& c : core.channels()) c->request_hangup();
    while (core.channel_count()) std::this_thread::sleep_for(20ms);
    std::printf("  hang up all              %8.2f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count());
    core.shutdown(true);
    fs::remove_all(dir);
    return 0;
}
