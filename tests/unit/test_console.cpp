// The console client (console/console.hpp) against a small fake PBX speaking
// the control-socket protocol on a Unix socket in a temporary directory.
#include "console/console.hpp"

#include "cli/protocol.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace cli = tandem::cli;
using cli::FrameType;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> split_words(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == ' ') {
            if (!cur.empty()) out.push_back(std::exchange(cur, {}));
        } else {
            cur.push_back(c);
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// A temporary directory, removed with what is in it (flat).
class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/tandem-console-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path_ = tmpl;
    }
    ~TempDir() {
        for (const auto& f : files_) ::unlink((path_ + "/" + f).c_str());
        ::rmdir(path_.c_str());
    }
    std::string file(const std::string& name) {
        files_.insert(name);
        return path_ + "/" + name;
    }

private:
    std::string path_;
    std::set<std::string> files_;
};

// The fake PBX. One connection at a time, answered in request order like the
// real server; test threads talk to it through post().
//
// Commands: "echo <text>", "fail", "usage", "log <text>" (a log line in the
// middle of the reply), "chunks" (output frames written a byte at a time),
// "slow" (part of the output now, the rest and the result 300 ms later),
// "bye" (closes without a result), "drop" (result, then closes), "garbage"
// (a malformed frame), "core show version", "core show channels"; anything
// else gets 127.
class FakeServer {
public:
    enum class Mode { normal, no_greeting, refuse, bad_greeting };

    explicit FakeServer(TempDir& dir, Mode mode = Mode::normal) : mode_(mode), path_(dir.file("tandem.ctl")) {
        listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listen_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(listen_, 8) == 0);
        REQUIRE(::pipe2(wake_, O_CLOEXEC) == 0);
        thread_ = std::thread([this] { loop(); });
    }

    ~FakeServer() {
        post(nullptr);
        thread_.join();
        if (client_ >= 0) ::close(client_);
        ::close(listen_);
        ::close(wake_[0]);
        ::close(wake_[1]);
    }

    const std::string& path() const { return path_; }

    // A log line to the console connected now.
    void push_log(std::string line) {
        post([this, line = std::move(line)] { send(FrameType::log, line); });
    }
    void drop_client() {
        post([this] { close_client(); });
    }

    std::vector<std::string> commands() const {
        std::lock_guard lock(mu_);
        return commands_;
    }
    std::vector<std::string> completions() const {
        std::lock_guard lock(mu_);
        return completions_;
    }
    std::vector<std::string> levels() const {
        std::lock_guard lock(mu_);
        return levels_;
    }
    int connections() const {
        std::lock_guard lock(mu_);
        return connections_;
    }

    // Polls `pred` until it holds or `timeout` passes.
    bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) const {
        const auto end = Clock::now() + timeout;
        while (!pred()) {
            if (Clock::now() > end) return false;
            std::this_thread::sleep_for(2ms);
        }
        return true;
    }

private:
    // Runs `job` on the server thread; nullptr stops the thread.
    void post(std::function<void()> job) {
        {
            std::lock_guard lock(mu_);
            jobs_.push_back(std::move(job));
        }
        write_all(wake_[1], "x");
    }

    void loop() {
        for (;;) {
            int timeout = -1;
            if (timer_) {
                const auto left = std::chrono::ceil<std::chrono::milliseconds>(timer_->first - Clock::now());
                timeout = static_cast<int>(std::max<long long>(0, left.count()));
            }
            pollfd fds[3] = {{wake_[0], POLLIN, 0}, {listen_, POLLIN, 0}, {client_, POLLIN, 0}};
            if (::poll(fds, 3, timeout) < 0 && errno != EINTR) return;
            if (timer_ && Clock::now() >= timer_->first) {
                auto job = std::move(timer_->second);
                timer_.reset();
                job();
                process();
            }
            if (fds[0].revents) {
                char buf[64];
                [[maybe_unused]] auto n = ::read(wake_[0], buf, sizeof buf);
                std::deque<std::function<void()>> jobs;
                {
                    std::lock_guard lock(mu_);
                    jobs.swap(jobs_);
                }
                for (auto& job : jobs) {
                    if (!job) return;
                    job();
                }
            }
            if (fds[1].revents) accept_client();
            if (client_ >= 0 && fds[2].revents) read_client();
        }
    }

    void accept_client() {
        const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        close_client();
        client_ = fd;
        decoder_ = cli::Decoder();
        std::lock_guard lock(mu_);
        ++connections_;
        switch (mode_) {
            case Mode::normal:
                send_locked(FrameType::greeting, "Tandem 9.9.9-test");
                break;
            case Mode::no_greeting:
                break;
            case Mode::refuse:
                send_locked(FrameType::output, "Permission denied\n");
                send_locked(FrameType::result, "1");
                ::close(client_);
                client_ = -1;
                break;
            case Mode::bad_greeting:
                write_all(client_, "HTTP/1.1 400 Bad Request\r\n");
                break;
        }
    }

    void close_client() {
        if (client_ >= 0) ::close(client_);
        client_ = -1;
        timer_.reset();
        queue_.clear();
    }

    void read_client() {
        char buf[4096];
        const ssize_t n = ::read(client_, buf, sizeof buf);
        if (n <= 0) {
            close_client();
            return;
        }
        decoder_.feed(buf, static_cast<std::size_t>(n));
        while (auto f = decoder_.next()) queue_.push_back(std::move(*f));
        if (decoder_.failed()) {
            close_client();
            return;
        }
        process();
    }

    // Answers queued requests, stopping while a "slow" one is pending.
    void process() {
        while (client_ >= 0 && !timer_ && !queue_.empty()) {
            auto f = std::move(queue_.front());
            queue_.pop_front();
            handle(f);
        }
    }

    void send_locked(FrameType type, std::string_view payload) {
        if (client_ >= 0) write_all(client_, cli::encode(type, payload));
    }
    void send(FrameType type, std::string_view payload) {
        std::lock_guard lock(mu_);
        send_locked(type, payload);
    }

    void handle(const cli::Frame& f) {
        switch (f.type) {
            case FrameType::verbosity: {
                std::lock_guard lock(mu_);
                levels_.push_back(f.payload);
                break;
            }
            case FrameType::complete: {
                {
                    std::lock_guard lock(mu_);
                    completions_.push_back(f.payload);
                }
                send(FrameType::matches, complete(f.payload));
                break;
            }
            case FrameType::command: {
                {
                    std::lock_guard lock(mu_);
                    commands_.push_back(f.payload);
                }
                run(f.payload);
                break;
            }
            default:
                break;
        }
    }

    void run(const std::string& line) {
        const auto words = split_words(line);
        const std::string first = words.empty() ? "" : words[0];
        const std::string rest = line.size() > first.size() ? line.substr(line.find(first) + first.size() + 1) : "";
        if (first == "echo") {
            send(FrameType::output, rest + "\n");
            send(FrameType::result, "0");
        } else if (first == "fail") {
            send(FrameType::output, "failed\n");
            send(FrameType::result, "1");
        } else if (first == "usage") {
            send(FrameType::output, "Usage: usage\n");
            send(FrameType::result, "2");
        } else if (first == "log") {
            send(FrameType::output, "before\n");
            send(FrameType::log, rest + "\n");
            send(FrameType::output, "after\n");
            send(FrameType::result, "0");
        } else if (first == "chunks") {
            const std::string bytes = cli::encode(FrameType::output, "one ") + cli::encode(FrameType::output, "two\n") +
                                      cli::encode(FrameType::output, "three\n") + cli::encode(FrameType::result, "0");
            for (char c : bytes) write_all(client_, std::string_view(&c, 1));
        } else if (first == "slow") {
            send(FrameType::output, "started\n");
            timer_.emplace(Clock::now() + 300ms, [this] {
                send(FrameType::output, "late output\n");
                send(FrameType::result, "0");
            });
        } else if (first == "bye") {
            send(FrameType::output, "going away\n");
            close_client();
        } else if (first == "drop") {
            send(FrameType::result, "0");
            close_client();
        } else if (first == "garbage") {
            write_all(client_, "\xff\xff\xff\xffnot a frame");
        } else if (line == "core show version") {
            send(FrameType::output, "Tandem 9.9.9-test\n");
            send(FrameType::result, "0");
        } else if (line == "core show channels") {
            send(FrameType::output, "0 active channels\n");
            send(FrameType::result, "0");
        } else if (words.empty()) {
            send(FrameType::result, "0");
        } else {
            send(FrameType::output, "No such command '" + line + "'\n");
            send(FrameType::result, "127");
        }
    }

    static std::string complete(std::string_view line) {
        static const char* const vocabulary[] = {
            "core show channels", "core show version", "core reload", "echo", "log", "fail", "usage", "exit", "quit"};
        auto words = split_words(line);
        std::string partial;
        if (!line.empty() && line.back() != ' ' && !words.empty()) {
            partial = words.back();
            words.pop_back();
        }
        std::set<std::string> found;
        for (const char* cmd : vocabulary) {
            const auto cw = split_words(cmd);
            if (cw.size() <= words.size()) continue;
            bool match = true;
            for (std::size_t i = 0; i < words.size(); ++i) match = match && cw[i] == words[i];
            if (match && cw[words.size()].rfind(partial, 0) == 0) found.insert(cw[words.size()]);
        }
        std::string out;
        for (const auto& w : found) out += (out.empty() ? "" : "\n") + w;
        return out;
    }

    const Mode mode_;
    const std::string path_;
    int listen_ = -1;
    int wake_[2] = {-1, -1};
    std::thread thread_;

    // Server thread only.
    int client_ = -1;
    cli::Decoder decoder_;
    std::deque<cli::Frame> queue_;
    std::optional<std::pair<Clock::time_point, std::function<void()>>> timer_;

    mutable std::mutex mu_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::string> commands_, completions_, levels_;
    int connections_ = 0;
};

struct Captured {
    int status = -1;
    std::string out, err;
};

Captured command(const std::string& path, const std::string& cmd, const cli::ClientOptions& options = {}) {
    std::ostringstream out, err;
    Captured c;
    c.status = cli::run_command(path, cmd, out, err, options);
    c.out = out.str();
    c.err = err.str();
    return c;
}

// run_script() with `input` on a pipe (closed after writing unless keep_open).
Captured script(const std::string& path, const std::string& verbosity, const std::string& input,
                bool keep_open = false) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    REQUIRE(input.size() < 60000);  // fits the pipe
    write_all(fds[1], input);
    if (!keep_open) {
        ::close(fds[1]);
        fds[1] = -1;
    }
    std::ostringstream out, err;
    Captured c;
    c.status = cli::run_script(path, verbosity, fds[0], out, err);
    c.out = out.str();
    c.err = err.str();
    ::close(fds[0]);
    if (fds[1] >= 0) ::close(fds[1]);
    return c;
}

bool contains(const std::string& s, std::string_view part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("console: run_command") {
    TempDir dir;
    FakeServer server(dir);

    SUBCASE("output and status") {
        auto c = command(server.path(), "echo hello world");
        CHECK(c.status == 0);
        CHECK(c.out == "hello world\n");
        CHECK(c.err.empty());
        CHECK(server.commands() == std::vector<std::string>{"echo hello world"});
    }
    SUBCASE("exit statuses pass through") {
        CHECK(command(server.path(), "fail").status == 1);
        auto usage = command(server.path(), "usage");
        CHECK(usage.status == 2);
        CHECK(usage.out == "Usage: usage\n");
        auto missing = command(server.path(), "no such thing");
        CHECK(missing.status == 127);
        CHECK(missing.out == "No such command 'no such thing'\n");
    }
    SUBCASE("log lines are not part of the output") {
        auto c = command(server.path(), "log something happened");
        CHECK(c.status == 0);
        CHECK(c.out == "before\nafter\n");
    }
    SUBCASE("output split into frames and bytes") {
        auto c = command(server.path(), "chunks");
        CHECK(c.status == 0);
        CHECK(c.out == "one two\nthree\n");
    }
    SUBCASE("the server closing before the result") {
        auto c = command(server.path(), "bye");
        CHECK(c.status == 1);
        CHECK(c.out == "going away\n");
        CHECK(contains(c.err, "before the command finished"));
    }
    SUBCASE("a malformed frame") {
        auto c = command(server.path(), "garbage");
        CHECK(c.status == 1);
        CHECK(c.err == "Protocol error from Tandem at " + server.path() + "\n");
    }
    SUBCASE("a command longer than a frame is refused without connecting") {
        auto c = command(server.path(), std::string(cli::max_payload_length + 1, 'x'));
        CHECK(c.status == 1);
        CHECK(contains(c.err, "Command too long"));
        CHECK(server.connections() == 0);
    }
}

TEST_CASE("console: run_command connection problems") {
    TempDir dir;

    SUBCASE("no socket") {
        const auto path = dir.file("missing.ctl");
        auto c = command(path, "echo x");
        CHECK(c.status == 1);
        CHECK(c.out.empty());
        CHECK(c.err == "Unable to connect to Tandem at " + path + ": No such file or directory (is tandem running?)\n");
    }
    SUBCASE("a stale socket nobody listens on") {
        const auto path = dir.file("stale.ctl");
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        ::close(fd);
        auto c = command(path, "echo x");
        CHECK(c.status == 1);
        CHECK(c.err == "Unable to connect to Tandem at " + path + ": Connection refused (is tandem running?)\n");
    }
    SUBCASE("a path too long for a socket") {
        const std::string path = "/tmp/" + std::string(200, 'p');
        auto c = command(path, "echo x");
        CHECK(c.status == 1);
        CHECK(contains(c.err, "Unable to connect to Tandem at /tmp/ppp"));
        CHECK(contains(c.err, "(is tandem running?)"));
    }
    SUBCASE("turned away by the server") {
        FakeServer server(dir, FakeServer::Mode::refuse);
        auto c = command(server.path(), "echo x");
        CHECK(c.status == 1);
        CHECK(c.out.empty());
        CHECK(c.err == "Permission denied\n");
    }
    SUBCASE("no greeting in time") {
        FakeServer server(dir, FakeServer::Mode::no_greeting);
        cli::ClientOptions options;
        options.greeting_timeout = 200ms;
        const auto start = Clock::now();
        auto c = command(server.path(), "echo x", options);
        CHECK(Clock::now() - start < 3s);
        CHECK(c.status == 1);
        CHECK(c.err == "Tandem at " + server.path() + " did not answer within 200 ms\n");
        CHECK(server.commands().empty());
    }
    SUBCASE("not speaking the protocol") {
        FakeServer server(dir, FakeServer::Mode::bad_greeting);
        auto c = command(server.path(), "echo x");
        CHECK(c.status == 1);
        CHECK(c.err == "Protocol error from Tandem at " + server.path() + "\n");
    }
}

TEST_CASE("console: run_script") {
    TempDir dir;
    FakeServer server(dir);

    SUBCASE("runs lines one by one") {
        auto c = script(server.path(), "DEBUG", "echo one\n\n   \n# a comment\nlog hi there\r\nfail\necho last");
        CHECK(c.out == "Tandem 9.9.9-test\none\nbefore\nhi there\nafter\nfailed\nlast\n");
        CHECK(c.err.empty());
        CHECK(c.status == 0);  // the last command's
        CHECK(server.commands() == std::vector<std::string>{"echo one", "log hi there", "fail", "echo last"});
        CHECK(server.levels() == std::vector<std::string>{"debug"});
    }
    SUBCASE("returns the last status") {
        auto c = script(server.path(), "off", "echo a\nnope\n");
        CHECK(c.status == 127);
    }
    SUBCASE("empty input") {
        auto c = script(server.path(), "", "");
        CHECK(c.status == 0);
        CHECK(c.out == "Tandem 9.9.9-test\n");
        CHECK(server.levels().empty());
    }
    SUBCASE("exit and quit stop reading") {
        auto c = script(server.path(), "", "echo a\n  EXIT \necho b\n");
        CHECK(c.status == 0);
        CHECK(server.commands() == std::vector<std::string>{"echo a"});
        auto q = script(server.path(), "", "fail\nquit\necho b\n");
        CHECK(q.status == 1);
    }
    SUBCASE("log lines arriving while idle are shown") {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        std::ostringstream out, err;
        int status = -1;
        std::thread console([&] { status = cli::run_script(server.path(), "info", fds[0], out, err); });
        REQUIRE(server.wait_until([&] { return server.levels().size() == 1; }));
        server.push_log("idle log line\n");
        write_all(fds[1], "echo x\n");
        REQUIRE(server.wait_until([&] { return server.commands().size() == 1; }));
        ::close(fds[1]);
        console.join();
        ::close(fds[0]);
        CHECK(status == 0);
        CHECK(out.str() == "Tandem 9.9.9-test\nidle log line\nx\n");
    }
    SUBCASE("the server going away while waiting for input") {
        auto c = script(server.path(), "", "echo a\ndrop\n", true);
        CHECK(c.status == 1);
        CHECK(c.out == "Tandem 9.9.9-test\na\n");
        CHECK(c.err == "Disconnected from Tandem\n");
    }
    SUBCASE("the server going away during a command") {
        auto c = script(server.path(), "", "bye\necho never\n");
        CHECK(c.status == 1);
        CHECK(c.err == "Disconnected from Tandem\n");
        CHECK(server.commands() == std::vector<std::string>{"bye"});
    }
    SUBCASE("unknown verbosity") {
        auto c = script(server.path(), "loud", "echo a\n");
        CHECK(c.status == 2);
        CHECK(contains(c.err, "Unknown verbosity 'loud'"));
        CHECK(server.connections() == 0);
    }
}

TEST_CASE("console: run_console with piped stdin") {
    TempDir dir;
    FakeServer server(dir);

    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    write_all(fds[1], "echo from a pipe\ncore show version\nusage\n");
    ::close(fds[1]);
    const int saved_stdin = ::dup(STDIN_FILENO);
    REQUIRE(saved_stdin >= 0);
    REQUIRE(::dup2(fds[0], STDIN_FILENO) == STDIN_FILENO);
    ::close(fds[0]);

    std::ostringstream out, err;
    auto* old_out = std::cout.rdbuf(out.rdbuf());
    auto* old_err = std::cerr.rdbuf(err.rdbuf());
    const int status = cli::run_console(server.path(), "notice", dir.file("history"));
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    ::dup2(saved_stdin, STDIN_FILENO);
    ::close(saved_stdin);

    CHECK(status == 2);
    CHECK(out.str() == "Tandem 9.9.9-test\nfrom a pipe\nTandem 9.9.9-test\nUsage: usage\n");
    CHECK(err.str().empty());
    CHECK(server.levels() == std::vector<std::string>{"notice"});
    // No line editing, so no history file either.
    CHECK(::access(dir.file("history").c_str(), F_OK) != 0);
}

// ---------------------------------------------------------------------------
// The interactive console on a pseudo-terminal, in a child process.

namespace {

class PtyConsole {
public:
    PtyConsole(const std::string& socket, const std::string& verbosity, const std::string& history,
               const std::string& home) {
        winsize ws{};
        ws.ws_row = 24;
        ws.ws_col = 80;
        // The child execs this test binary in its console mode (main.cpp):
        // between fork and exec it only makes async-signal-safe calls, since
        // other threads of the runner may hold locks at the moment of the fork.
        // So everything it needs is built here, before forking.
        std::vector<std::string> env{"TERM=xterm", "HOME=" + home};  // no ~/.editrc from the developer
        for (char** e = environ; *e; ++e) {
            std::string_view v(*e);
            if (!v.starts_with("TERM=") && !v.starts_with("HOME=") && !v.starts_with("EDITRC=")) env.emplace_back(v);
        }
        std::vector<std::string> args{"unit_tests", "--console-child", socket, verbosity, history};
        std::vector<char*> envp, argv;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        // Or the child inherits unwritten test-runner output and prints it.
        std::cout.flush();
        std::fflush(nullptr);
        pid_ = ::forkpty(&master_, nullptr, nullptr, &ws);
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::execve("/proc/self/exe", argv.data(), envp.data());
            ::_exit(127);
        }
    }

    ~PtyConsole() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (master_ >= 0) ::close(master_);
    }

    void type(std::string_view keys) { write_all(master_, keys); }

    // The kernel tells the child with SIGWINCH.
    void resize(unsigned short rows, unsigned short cols) {
        winsize ws{};
        ws.ws_row = rows;
        ws.ws_col = cols;
        REQUIRE(::ioctl(master_, TIOCSWINSZ, &ws) == 0);
    }

    // Reads until `text` shows up after what earlier expect() calls consumed.
    bool expect(std::string_view text, std::chrono::milliseconds timeout = 5s) {
        const auto end = Clock::now() + timeout;
        for (;;) {
            if (auto at = screen_.find(text, mark_); at != std::string::npos) {
                mark_ = at + text.size();
                return true;
            }
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(end - Clock::now()).count();
            if (left <= 0 || !read_some(static_cast<int>(left))) {
                MESSAGE("waiting for \"" << text << "\", got: \"" << screen_.substr(mark_) << "\"");
                return false;
            }
        }
    }

    // Everything the console wrote so far.
    const std::string& transcript() const { return screen_; }

    // The exit status, once the child is gone (-1 on timeout).
    int wait_exit(std::chrono::milliseconds timeout = 5s) {
        const auto end = Clock::now() + timeout;
        for (;;) {
            read_some(10);  // keep the pty drained
            int st = 0;
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                while (read_some(0)) {
                }
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            if (Clock::now() > end) return -1;
        }
    }

    pid_t pid() const { return pid_; }

private:
    bool read_some(int timeout_ms) {
        pollfd p{master_, POLLIN, 0};
        const int r = ::poll(&p, 1, timeout_ms);
        if (r <= 0) return false;
        char buf[4096];
        const ssize_t n = ::read(master_, buf, sizeof buf);
        if (n <= 0) return false;
        screen_.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int master_ = -1;
    pid_t pid_ = -1;
    bool exited_ = false;
    std::string screen_;
    std::size_t mark_ = 0;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

TEST_CASE("console: interactive session on a terminal") {
    TempDir dir;
    FakeServer server(dir);
    const auto history = dir.file("history");
    PtyConsole console(server.path(), "notice", history, "/nonexistent");

    REQUIRE(console.expect("Tandem 9.9.9-test\r\n"));
    REQUIRE(console.expect("tandem*CLI> "));
    CHECK(server.wait_until([&] { return server.levels() == std::vector<std::string>{"notice"}; }));
    // Created at start.
    CHECK(::access(history.c_str(), F_OK) == 0);

    SUBCASE("commands, completion, logs, Ctrl-C, history") {
        console.type("echo hello\r");
        CHECK(console.expect("hello\r\n"));
        CHECK(console.expect("tandem*CLI> "));

        // A log line in the middle of a reply keeps its place.
        console.type("log inside\r");
        CHECK(console.expect("before\r\ninside\r\nafter\r\n"));
        CHECK(console.expect("tandem*CLI> "));

        // One candidate completes the word (quietly); two are listed on a
        // second Tab.
        const auto before_tab = console.transcript().size();
        console.type("co\t");
        CHECK(console.expect("re "));
        console.type("sh\t");
        CHECK(console.expect("ow "));
        CHECK(console.transcript().find('\a', before_tab) == std::string::npos);
        console.type("\t\t");
        CHECK(console.expect("channels"));
        CHECK(console.expect("version"));
        CHECK(console.expect("tandem*CLI> core show "));
        console.type("v\t");
        CHECK(console.expect("ersion "));
        console.type("\r");
        CHECK(console.expect("Tandem 9.9.9-test\r\n"));
        CHECK(server.completions() ==
              std::vector<std::string>{"co", "core sh", "core show ", "core show ", "core show v"});

        // A log line while typing: printed above, the line redrawn below.
        CHECK(console.expect("tandem*CLI> "));
        console.type("echo par");
        CHECK(console.expect("echo par"));
        server.push_log("[NOTICE] something happened\n");
        CHECK(console.expect("[NOTICE] something happened\r\n"));
        CHECK(console.expect("tandem*CLI> echo par"));
        console.type("tial\r");
        CHECK(console.expect("partial\r\n"));

        // Ctrl-C drops the line being typed.
        CHECK(console.expect("tandem*CLI> "));
        console.type("echo dropped");
        CHECK(console.expect("echo dropped"));
        console.type("\x03");
        CHECK(console.expect("^C"));
        CHECK(console.expect("tandem*CLI> "));
        console.type("echo kept\r");
        CHECK(console.expect("kept\r\n"));

        // Ctrl-C during a command stops waiting for it; its late output is dropped.
        CHECK(console.expect("tandem*CLI> "));
        console.type("slow\r");
        CHECK(console.expect("started\r\n"));
        console.type("\x03");
        CHECK(console.expect("goes on in Tandem"));
        CHECK(console.expect("tandem*CLI> "));
        console.type("echo next\r");
        CHECK(console.expect("next\r\n"));

        // Up arrow brings back the previous line.
        CHECK(console.expect("tandem*CLI> "));
        console.type("\x1b[A");
        CHECK(console.expect("echo next"));
        console.type("\r");
        CHECK(console.expect("next\r\n"));

        CHECK(console.expect("tandem*CLI> "));
        console.type("exit\r");
        CHECK(console.wait_exit() == 0);
        CHECK_FALSE(contains(console.transcript(), "late output"));
        CHECK_FALSE(contains(console.transcript(), "dropped\r\n"));
        CHECK(server.commands() == std::vector<std::string>{"echo hello", "log inside", "core show version",
                                                            "echo partial", "echo kept", "slow", "echo next",
                                                            "echo next"});

        const auto saved = slurp(history);
        CHECK(contains(saved, "echo\\040hello\n"));
        CHECK(contains(saved, "core\\040show\\040version\n"));
        CHECK(contains(saved, "echo\\040next\n"));
        CHECK_FALSE(contains(saved, "exit"));
        CHECK(saved.find("echo\\040next") == saved.rfind("echo\\040next"));
    }

    SUBCASE("long lines and window size changes") {
        const std::string long_word(90, 'w');
        console.type("echo " + long_word);
        CHECK(console.expect(long_word.substr(0, 60)));
        CHECK(console.expect(long_word.substr(0, 20)));
        // The line takes two rows: go up one before printing the log line.
        server.push_log("[NOTICE] wrapped\n");
        CHECK(console.expect("\r\033[1A\033[J[NOTICE] wrapped\r\n"));
        CHECK(console.expect("tandem*CLI> echo www"));
        console.type("\r");
        CHECK(console.expect(long_word + "\r\n"));

        CHECK(console.expect("tandem*CLI> "));
        console.type("echo ab");
        CHECK(console.expect("echo ab"));
        console.resize(24, 40);
        CHECK(console.expect("\r\033[Jtandem*CLI> echo ab"));
        console.type("c\r");
        CHECK(console.expect("abc\r\n"));
        CHECK(console.expect("tandem*CLI> "));
        console.type("quit\r");
        CHECK(console.wait_exit() == 0);
    }

    SUBCASE("the server closing during a command") {
        console.type("bye\r");
        CHECK(console.expect("going away\r\n"));
        CHECK(console.expect("Disconnected from Tandem\r\n"));
        CHECK(console.wait_exit() == 1);
    }

    SUBCASE("a malformed reply") {
        console.type("garbage\r");
        CHECK(console.expect("Protocol error from Tandem at " + server.path() + "\r\n"));
        CHECK(console.wait_exit() == 1);
    }

    SUBCASE("Ctrl-D leaves") {
        console.type("\x04");
        CHECK(console.wait_exit() == 0);
        CHECK(server.commands().empty());
    }

    SUBCASE("the server going away") {
        console.type("echo unfinished");
        CHECK(console.expect("echo unfinished"));
        server.drop_client();
        CHECK(console.expect("Disconnected from Tandem"));
        CHECK(console.wait_exit() == 1);
    }
}

TEST_CASE("console: interactive history is reloaded") {
    TempDir dir;
    FakeServer server(dir);
    const auto history = dir.file("history");
    {
        PtyConsole first(server.path(), "", history, "/nonexistent");
        REQUIRE(first.expect("tandem*CLI> "));
        first.type("echo remembered\r");
        REQUIRE(first.expect("remembered\r\n"));
        REQUIRE(first.expect("tandem*CLI> "));
        first.type("quit\r");
        REQUIRE(first.wait_exit() == 0);
    }
    PtyConsole second(server.path(), "", history, "/nonexistent");
    REQUIRE(second.expect("tandem*CLI> "));
    second.type("\x1b[A\r");
    CHECK(second.expect("remembered\r\n"));
    CHECK(second.expect("tandem*CLI> "));
    second.type("quit\r");
    CHECK(second.wait_exit() == 0);
    CHECK(server.commands() == std::vector<std::string>{"echo remembered", "echo remembered"});
    CHECK(server.levels().empty());
}

TEST_CASE("console: interactive history is capped") {
    TempDir dir;
    FakeServer server(dir);
    const auto history = dir.file("history");
    {
        std::ofstream out(history);
        out << "_HiStOrY_V2_\n";
        for (int i = 0; i < 1500; ++i) out << "echo\\040old" << i << "\n";
    }
    PtyConsole console(server.path(), "", history, "/nonexistent");
    REQUIRE(console.expect("tandem*CLI> "));
    console.type("\x1b[A\x1b[A\r");
    CHECK(console.expect("old1498\r\n"));
    CHECK(console.expect("tandem*CLI> "));
    console.type("exit\r");
    CHECK(console.wait_exit() == 0);

    std::istringstream saved(slurp(history));
    std::vector<std::string> lines;
    for (std::string l; std::getline(saved, l);) lines.push_back(l);
    REQUIRE(lines.size() == 1 + static_cast<std::size_t>(cli::console_history_size));
    CHECK(lines.front() == "_HiStOrY_V2_");
    CHECK(lines[1] == "echo\\040old501");
    CHECK(lines.back() == "echo\\040old1498");
}
