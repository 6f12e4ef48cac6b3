// tandem: the PBX program, and its console client modes.
//
//   tandem -f            run in the foreground          tandem -c   ... with a console
//   tandem               run as a daemon                tandem -r   attach a console
//   tandem -rx "cmd"     run one CLI command            tandem -t   check the configuration
#include "console/console.hpp"
#include "runtime/core_impl.hpp"

#include <tandem/config.hpp>
#include <tandem/version.hpp>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>

namespace fs = std::filesystem;

#ifdef TANDEM_WITH_JEMALLOC
// jemalloc's settings, read once at start-up. A background thread returns
// freed pages to the system after a few seconds even when the thread that
// freed them goes idle (Sofia-SIP's transactions end in bursts, 32 s after a
// call is set up); one such thread, so the thread count stays fixed.
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "background_thread:true,max_background_threads:1,dirty_decay_ms:5000,muzzy_decay_ms:0";
}
#endif
using tandem::CoreImpl;
using tandem::LogLevel;

namespace {

void usage(std::ostream& o) {
    o << "Usage: tandem [options]\n"
         "  -f              run in the foreground\n"
         "  -c              run in the foreground with a console on this terminal\n"
         "  -r              attach a console to the running PBX\n"
         "  -x CMD          with -r: run one command, print its output and exit with its status\n"
         "  -t              check every configuration file and exit (non-zero on problems)\n"
         "  -C DIR          configuration directory (default /etc/tandem; from a build tree\n"
         "                  without /etc/tandem/tandem.conf, the source tree's configs/)\n"
         "  -v              more verbose (repeat for more); -q quieter\n"
         "  --version       print the version and exit\n"
         "Without -f, -c, -r or -t, tandem runs as a daemon.\n";
}

fs::path socket_path(const fs::path& config_dir) {
    auto parsed = tandem::config::parse_file(config_dir / "tandem.conf");
    fs::path run = "/var/run/tandem";
    if (auto* s = parsed.file.section("directories"))
        if (auto* v = s->find("run")) run = v->value;
    std::error_code ec;
    if (run.is_relative()) run = fs::absolute(config_dir, ec) / run;
    return (run / "tandem.ctl").lexically_normal();
}

// /etc/tandem, unless this program runs from its build tree and there is no
// /etc/tandem/tandem.conf: then the source tree's configs/, so a developer's
// `build/bin/tandem -rx ...` finds the PBX `make run` started.
fs::path default_config_dir() {
    std::error_code ec;
    if (fs::exists("/etc/tandem/tandem.conf", ec)) return "/etc/tandem";
#if defined(TANDEM_BUILD_DIR) && defined(TANDEM_SOURCE_CONFIG_DIR)
    auto exe = fs::read_symlink("/proc/self/exe", ec);
    auto build = fs::path(TANDEM_BUILD_DIR);
    if (!ec && exe.string().rfind(build.string() + "/", 0) == 0) return TANDEM_SOURCE_CONFIG_DIR;
#endif
    return "/etc/tandem";
}

std::string history_file() {
    const char* home = std::getenv("HOME");
    return std::string(home ? home : ".") + "/.tandem_history";
}

void daemonize() {
    if (pid_t pid = fork(); pid < 0) {
        std::perror("fork");
        std::exit(1);
    } else if (pid > 0) {
        std::exit(0);
    }
    setsid();
    if (pid_t pid = fork(); pid > 0) std::exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
    }
}

}  // namespace

int main(int argc, char** argv) {
    bool foreground = false, console = false, remote = false, check = false;
    std::string command;
    fs::path config_dir = default_config_dir();
    int verbosity = 0;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto need = [&](const char* what) -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "tandem: " << a << " needs " << what << "\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--version" || a == "-V") {
            std::cout << "Tandem " << TANDEM_VERSION << "\n";
            return 0;
        } else if (a == "-h" || a == "--help") {
            usage(std::cout);
            return 0;
        } else if (a == "-C") {
            config_dir = need("a directory");
        } else if (a == "-x") {
            command = need("a command");
        } else if (a.size() > 1 && a[0] == '-' && a[1] != '-') {
            // Bundled short flags: -rx, -vvv, -fc.
            for (std::size_t j = 1; j < a.size(); ++j) {
                switch (a[j]) {
                    case 'f':
                        foreground = true;
                        break;
                    case 'c':
                        foreground = console = true;
                        break;
                    case 'r':
                        remote = true;
                        break;
                    case 't':
                        check = true;
                        break;
                    case 'v':
                        ++verbosity;
                        break;
                    case 'q':
                        --verbosity;
                        break;
                    case 'x':
                        remote = true;
                        if (j + 1 != a.size()) {
                            std::cerr << "tandem: -x must be last in a group of flags\n";
                            return 2;
                        }
                        command = need("a command");
                        break;
                    default:
                        std::cerr << "tandem: unknown option -" << a[j] << "\n";
                        usage(std::cerr);
                        return 2;
                }
            }
        } else {
            std::cerr << "tandem: unexpected argument '" << a << "'\n";
            usage(std::cerr);
            return 2;
        }
    }

    LogLevel level = verbosity >= 2    ? LogLevel::trace
                     : verbosity == 1  ? LogLevel::debug
                     : verbosity == 0  ? LogLevel::info
                     : verbosity == -1 ? LogLevel::warning
                                       : LogLevel::error;

    if (remote) {
        auto sock = socket_path(config_dir).string();
        if (!command.empty()) return tandem::cli::run_command(sock, command, std::cout, std::cerr);
        return tandem::cli::run_console(sock, std::string(tandem::to_string(level)), history_file());
    }

    if (check) {
        tandem::StartOptions opts;
        opts.config_dir = config_dir;
        opts.checking = true;
        opts.terminal_level = LogLevel::off;
        opts.control_socket = false;
        CoreImpl core(opts);
        std::vector<std::string> problems;
        int n = core.check(problems);
        for (auto& p : problems) std::cout << p << "\n";
        if (n)
            std::cout << n << " configuration problem" << (n == 1 ? "" : "s") << " in " << config_dir.string() << "\n";
        else
            std::cout << "Configuration in " << config_dir.string() << " is valid.\n";
        return n ? 1 : 0;
    }

    if (!foreground) daemonize();

    // Signals are taken synchronously by one thread; every other thread blocks them.
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signal(SIGPIPE, SIG_IGN);
    umask(007);

    tandem::StartOptions opts;
    opts.config_dir = config_dir;
    opts.terminal_level = console ? LogLevel::off : level;
    opts.terminal_level_explicit = verbosity != 0;
    CoreImpl core(opts);
    std::vector<std::string> problems;
    if (!core.start(problems)) {
        for (auto& p : problems) std::cerr << "tandem: " << p << "\n";
        std::cerr << "tandem: cannot start\n";
        core.shutdown(true);
        return 1;
    }

    std::thread signals([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&set, &sig) != 0) continue;
            if (sig == SIGUSR1) return;
            if (sig == SIGHUP)
                core.post_control(CoreImpl::Control::reload);
            else
                core.post_control(CoreImpl::Control::stop_now);
        }
    });

    std::thread console_thread;
    if (console) {
        auto sock = (core.paths().run_dir / "tandem.ctl").string();
        console_thread = std::thread([&core, sock, level] {
            tandem::cli::run_console(sock, std::string(tandem::to_string(level)), history_file());
            core.post_control(CoreImpl::Control::stop_now);
        });
    }

    for (;;) {
        auto c = core.wait_control();
        if (c == CoreImpl::Control::reload) {
            std::string report;
            bool ok = core.reload(report);
            if (!ok)
                core.log().warning("reload reported problems:\n{}", report);
            else
                core.log().notice("reloaded");
            continue;
        }
        core.shutdown(c == CoreImpl::Control::stop_now);
        break;
    }
    pthread_kill(signals.native_handle(), SIGUSR1);
    signals.join();
    // The console leaves as soon as the socket closes; joining restores the terminal.
    if (console_thread.joinable()) console_thread.join();
    return 0;
}
