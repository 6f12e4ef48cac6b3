// A real core, booted in-process on a temporary copy of configs/, and the
// way a test thread runs code on a channel's loop. The core runs its own
// loops; the test drives it from the doctest thread.
#pragma once

#include "runtime/core_impl.hpp"

#include <boost/asio/post.hpp>

#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>

namespace tandem::test {

inline std::filesystem::path temp_dir(const std::string& prefix) {
    std::random_device rd;
    auto p = std::filesystem::temp_directory_path() / (prefix + std::to_string(rd()));
    std::filesystem::create_directories(p);
    return p;
}

// Runs `f` on the channel's loop and returns what it returns, once it has
// run: channel state belongs to that loop, so a test thread reads or changes
// it only this way. Must not be called from that loop (it would wait for
// itself).
template <class F>
auto on_loop(Channel& chan, F f) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    boost::asio::post(chan.loop(), [&task] { task(); });
    return done.get();
}

template <class F>
auto on_loop(const std::shared_ptr<Channel>& chan, F f) -> decltype(f()) {
    return on_loop(*chan, std::move(f));
}

struct TestCore {
    std::filesystem::path dir;
    std::unique_ptr<CoreImpl> core;

    // `extensions` replaces the sample dialplan when not empty.
    explicit TestCore(const std::string& extensions = {}, bool start = true, int loops = 2) {
        dir = temp_dir("tandem-unit-");
        std::filesystem::copy(std::filesystem::path(TANDEM_SOURCE_DIR) / "configs", dir / "etc",
                              std::filesystem::copy_options::recursive);
        std::ofstream(dir / "etc" / "tandem.conf")
            << "[options]\nverbose = warning\nlogfile =\n[directories]\nmodules => " TANDEM_MODULE_DIR "\nrun => "
            << (dir / "run").string() << "\nspool => " << (dir / "spool").string() << "\ndb => "
            << (dir / "lib").string() << "\nlog => " << (dir / "log").string() << "\n";
        if (!extensions.empty()) std::ofstream(dir / "etc" / "extensions.conf") << extensions;
        // The sample sip.conf listens on 127.0.0.1:5060: a unit test's core
        // must neither take that port from a running PBX nor fight another
        // test core for it. SIP is tested with a port of its own (test_sip_*).
        std::ofstream(dir / "etc" / "modules.conf", std::ios::app) << "noload => chan_sip\n";
        StartOptions o;
        o.config_dir = dir / "etc";
        o.terminal_level = LogLevel::off;
        o.control_socket = false;
        o.loops = loops;
        core = std::make_unique<CoreImpl>(o);
        if (start) {
            std::vector<std::string> problems;
            if (!core->start(problems)) throw std::runtime_error("core did not start");
        }
    }
    ~TestCore() {
        core.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }

    template <class Pred>
    bool wait_for(Pred p, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (p()) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return p();
    }
};

}  // namespace tandem::test
