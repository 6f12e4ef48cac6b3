#include "console/console.hpp"

#include "cli/protocol.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

// Last: it defines a few macros (CTRL, RUBOUT, ...).
#include <editline/readline.h>

namespace tandem::cli {

namespace {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Small text helpers

std::string errno_text(int e) {
    return std::generic_category().message(e);
}

std::string_view trim(std::string_view s) {
    const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (!s.empty() && ws(s.front())) s.remove_prefix(1);
    while (!s.empty() && ws(s.back())) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool is_exit(std::string_view line) {
    auto l = lower(line);
    return l == "exit" || l == "quit";
}

// The status in an 'R' payload; anything but a plain decimal number counts as
// a failure.
int parse_status(std::string_view s) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return 1;
    return v;
}

// Lower-cased level name, empty for "leave it off"; false if unknown.
bool normalize_level(std::string_view in, std::string& out) {
    static constexpr std::string_view names[] = {"trace", "debug", "info", "notice", "warning", "error", "off"};
    out = lower(trim(in));
    if (out.empty()) return true;
    return std::find(std::begin(names), std::end(names), out) != std::end(names);
}

std::string describe(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
    return std::to_string(d.count()) + " ms";
}

std::string too_long_message(std::size_t size) {
    return "Command too long (" + std::to_string(size) + " bytes, at most " + std::to_string(max_payload_length) +
           ")\n";
}

// Terminal columns taken by UTF-8 text, counting one per code point.
std::size_t display_width(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xc0) != 0x80) ++n;
    return n;
}

// ---------------------------------------------------------------------------
// The connection

class Connection {
public:
    enum class Read { data, closed };

    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() {
        if (fd_ >= 0) ::close(fd_);
    }

    // 0, or the errno value that explains the failure.
    int open(const std::string& path) {
        sockaddr_un addr{};
        if (path.empty()) return ENOENT;
        if (path.size() >= sizeof addr.sun_path) return ENAMETOOLONG;
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, path.data(), path.size());
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return errno;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            int e = errno;
            // An interrupted connect() goes on by itself; wait for its outcome.
            if (e == EINTR) e = finish_connect(fd);
            if (e != 0) {
                ::close(fd);
                return e;
            }
        }
        fd_ = fd;
        return 0;
    }

    int fd() const { return fd_; }

    bool send(FrameType type, std::string_view payload) {
        const std::string frame = encode(type, payload);
        std::size_t done = 0;
        while (done < frame.size()) {
            const ssize_t n = ::send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                pollfd p{fd_, POLLOUT, 0};
                ::poll(&p, 1, -1);
            } else {
                return false;
            }
        }
        return true;
    }

    // One read into the decoder; call it when poll() reports the socket.
    Read receive() {
        char buf[16384];
        for (;;) {
            const ssize_t n = ::read(fd_, buf, sizeof buf);
            if (n > 0) {
                decoder_.feed(buf, static_cast<std::size_t>(n));
                return Read::data;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Read::data;
            return Read::closed;
        }
    }

    std::optional<Frame> next() { return decoder_.next(); }
    // The PBX sent something that is not a frame stream.
    bool broken() const { return decoder_.failed(); }

private:
    static int finish_connect(int fd) {
        pollfd p{fd, POLLOUT, 0};
        while (::poll(&p, 1, -1) < 0)
            if (errno != EINTR) return errno;
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
        return err;
    }

    int fd_ = -1;
    Decoder decoder_;
};

enum class Wait { frame, closed, broken, timeout };

// The next frame, waiting on the socket alone (signals do not interrupt it).
Wait wait_frame(Connection& conn, Frame& out, std::optional<Clock::time_point> deadline) {
    for (;;) {
        if (auto f = conn.next()) {
            out = std::move(*f);
            return Wait::frame;
        }
        if (conn.broken()) return Wait::broken;
        int timeout = -1;
        if (deadline) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
            if (left <= 0) return Wait::timeout;
            timeout = static_cast<int>(std::min<long long>(left, INT_MAX));
        }
        pollfd p{conn.fd(), POLLIN, 0};
        const int r = ::poll(&p, 1, timeout);
        if (r < 0) {
            if (errno == EINTR) continue;
            return Wait::closed;
        }
        if (r > 0 && conn.receive() == Connection::Read::closed) return Wait::closed;
    }
}

void report_protocol_error(const std::string& path, std::ostream& err) {
    err << "Protocol error from Tandem at " << path << '\n';
}

// Connects and waits for the greeting. nullopt when greeted (its text in
// `greeting`); otherwise the status to return, the reason written to `err`.
std::optional<int> connect_and_greet(Connection& conn, const std::string& path, const ClientOptions& options,
                                     std::ostream& err, std::string& greeting) {
    if (const int e = conn.open(path); e != 0) {
        err << "Unable to connect to Tandem at " << path << ": " << errno_text(e) << " (is tandem running?)\n";
        return 1;
    }
    const auto deadline = Clock::now() + options.greeting_timeout;
    std::string refusal;  // a PBX that turns us away says why, then sends 'R'
    for (;;) {
        Frame f;
        switch (wait_frame(conn, f, deadline)) {
            case Wait::frame:
                break;
            case Wait::closed:
                err << refusal << "Tandem at " << path << " closed the connection\n";
                return 1;
            case Wait::broken:
                report_protocol_error(path, err);
                return 1;
            case Wait::timeout:
                err << "Tandem at " << path << " did not answer within " << describe(options.greeting_timeout) << '\n';
                return 1;
        }
        switch (f.type) {
            case FrameType::greeting:
                greeting = std::move(f.payload);
                return std::nullopt;
            case FrameType::output:
                refusal += f.payload;
                break;
            case FrameType::result: {
                if (!refusal.empty() && refusal.back() != '\n') refusal += '\n';
                err << refusal;
                const int status = parse_status(f.payload);
                return status == 0 ? 1 : status;
            }
            default:
                break;
        }
    }
}

// ---------------------------------------------------------------------------
// Plain line input for scripts

class LineReader {
public:
    explicit LineReader(int fd) : fd_(fd), eof_(fd < 0) {}

    // A complete line if one is buffered (at end of input, the unterminated rest).
    std::optional<std::string> take() {
        const auto nl = buf_.find('\n');
        if (nl == std::string::npos) {
            if (!eof_ || buf_.empty()) return std::nullopt;
            return std::exchange(buf_, {});
        }
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
    }

    // Nothing buffered and nothing more to come.
    bool finished() const { return eof_ && buf_.empty(); }

    // One read; call it when poll() reports the descriptor.
    void fill() {
        char chunk[4096];
        for (;;) {
            const ssize_t n = ::read(fd_, chunk, sizeof chunk);
            if (n > 0) {
                buf_.append(chunk, static_cast<std::size_t>(n));
                return;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            eof_ = true;
            return;
        }
    }

    int fd() const { return fd_; }

private:
    int fd_;
    bool eof_;
    std::string buf_;
};

// ---------------------------------------------------------------------------
// Which request each reply belongs to. The server answers in request order, so
// a queue is enough; a request we stopped waiting for stays in the queue so
// its late reply can be recognized and dropped.

class Replies {
public:
    enum class Kind { command, completion };
    enum class Route { ignore, output, result, log, matches };

    void expect(Kind kind) { queue_.push_back({kind, true}); }
    // Stop waiting for the newest request.
    void abandon_newest() {
        if (!queue_.empty()) queue_.back().wanted = false;
    }

    Route route(const Frame& f) {
        switch (f.type) {
            case FrameType::log:
                return Route::log;
            case FrameType::output:
                return !queue_.empty() && queue_.front().kind == Kind::command && queue_.front().wanted ? Route::output
                                                                                                        : Route::ignore;
            case FrameType::result:
                return pop(Kind::command) ? Route::result : Route::ignore;
            case FrameType::matches:
                return pop(Kind::completion) ? Route::matches : Route::ignore;
            default:
                return Route::ignore;
        }
    }

private:
    struct Entry {
        Kind kind;
        bool wanted;
    };

    bool pop(Kind kind) {
        if (queue_.empty() || queue_.front().kind != kind) return false;
        const bool wanted = queue_.front().wanted;
        queue_.pop_front();
        return wanted;
    }

    std::deque<Entry> queue_;
};

// ---------------------------------------------------------------------------
// The interactive console

// Set by the signal handlers, which also write a byte to g_wake_fd so that a
// signal arriving just before poll() still wakes it up.
volatile std::sig_atomic_t g_interrupted = 0;
volatile std::sig_atomic_t g_resized = 0;
volatile std::sig_atomic_t g_wake_fd = -1;

void wake_up() {
    const int saved = errno;
    if (g_wake_fd >= 0) {
        const char c = 0;
        [[maybe_unused]] const auto n = ::write(g_wake_fd, &c, 1);
    }
    errno = saved;
}

void on_sigint(int) {
    g_interrupted = 1;
    wake_up();
}

void on_sigwinch(int) {
    g_resized = 1;
    wake_up();
}

class Interactive {
public:
    Interactive(Connection& conn, const std::string& path, const std::string& history_file,
                const ClientOptions& options)
        : conn_(conn), path_(path), history_file_(history_file), options_(options) {}

    int run(const std::string& greeting, const std::string& level);

private:
    enum class Outcome { ok, eof, disconnected, broken };

    // libedit calls these; there is one console per process.
    static void line_handler(char* line);
    static char** completion_handler(const char* text, int start, int end);
    static Interactive* current_;

    void setup_editline();
    void load_history();
    void remember(std::string_view line);

    Outcome read_line(std::string& line);
    Outcome run_line(std::string_view command);
    std::vector<std::string> complete(std::string_view line);

    void handle(const Frame& f);
    void flush_logs();

    void show_prompt();
    void hide_prompt();
    std::size_t cursor_row(std::size_t point) const;
    void erase_input();
    void redraw_input(std::size_t row);
    void discard_input();
    void write_out(std::string_view text);
    void write_err(std::string_view text);
    void drain_wake_pipe();

    Connection& conn_;
    const std::string& path_;
    const std::string& history_file_;
    const ClientOptions& options_;
    Replies replies_;
    int wake_[2] = {-1, -1};  // the signal handlers' pipe

    bool ansi_ = true;           // the terminal takes ANSI cursor movement
    bool prompt_shown_ = false;  // libedit has the terminal (raw mode, prompt drawn)
    bool input_empty_ = true;    // nothing typed since the prompt was drawn
    bool in_editline_ = false;   // inside rl_callback_read_char()
    bool at_line_start_ = true;  // our own output ended with a newline
    bool disconnected_ = false;
    bool broken_ = false;

    std::string logs_;  // log lines not yet shown
    std::optional<int> result_;
    std::optional<std::string> matches_;

    bool line_done_ = false;
    std::optional<std::string> line_;        // nullopt: end of input
    std::optional<std::size_t> redraw_row_;  // the line changed behind libedit's back

    std::string last_history_;
    bool history_warned_ = false;
};

Interactive* Interactive::current_ = nullptr;

void Interactive::line_handler(char* line) {
    auto* self = current_;
    if (line) {
        if (self) self->line_ = std::string(line);
        std::free(line);
    } else if (self) {
        self->line_.reset();
    }
    if (self) self->line_done_ = true;
}

char** Interactive::completion_handler(const char* text, int, int end) {
    // Never fall back to libedit's file name completion.
    rl_attempted_completion_over = 1;
    auto* self = current_;
    if (!self || !rl_line_buffer || end < 0 || end > rl_end) return nullptr;
    auto candidates = self->complete(std::string_view(rl_line_buffer, static_cast<std::size_t>(end)));
    if (candidates.empty()) {
        if (!g_interrupted) self->write_out("\a");
        return nullptr;
    }
    const std::string_view typed = text ? text : "";

    // One candidate extending the word: insert the rest ourselves. Handing it
    // to libedit would work too, but libedit rings the bell after completing
    // a single match; without matches it leaves the screen alone, so the line
    // is redrawn once libedit returns.
    if (candidates.size() == 1 && candidates.front().compare(0, typed.size(), typed) == 0) {
        self->input_empty_ = false;
        self->redraw_row_ = self->cursor_row(static_cast<std::size_t>(end));
        const std::string rest = candidates.front().substr(typed.size()) + ' ';
        rl_insert_text(rest.c_str());
        return nullptr;
    }

    // libedit wants [replacement, candidate..., NULL], the replacement being
    // what the word becomes now: the longest common prefix.
    std::string common = candidates.front();
    for (const auto& c : candidates) {
        std::size_t i = 0;
        while (i < common.size() && i < c.size() && common[i] == c[i]) ++i;
        common.resize(i);
    }
    if (common.empty() && text) common = text;

    auto** matches = static_cast<char**>(std::malloc((candidates.size() + 2) * sizeof(char*)));
    if (!matches) return nullptr;
    std::size_t n = 0;
    matches[n++] = ::strdup(common.c_str());
    for (const auto& c : candidates) matches[n++] = ::strdup(c.c_str());
    matches[n] = nullptr;
    for (std::size_t i = 0; i < n; ++i) {
        if (!matches[i]) {
            for (std::size_t j = 0; j < n; ++j) std::free(matches[j]);
            std::free(matches);
            return nullptr;
        }
    }
    return matches;
}

void Interactive::setup_editline() {
    rl_readline_name = "tandem";
    // libedit's own handlers put the terminal back to normal before a signal
    // reaches us (or stops or ends the process) and redraw after SIGCONT.
    rl_catch_signals = 1;
    rl_attempted_completion_function = &completion_handler;
    // Words are what the server's tokenizer splits on.
    rl_basic_word_break_characters = " \t";
    rl_completion_append_character = ' ';
}

void Interactive::load_history() {
    // Also creates libedit's state on first use; clear what a previous console
    // in this process may have left.
    clear_history();
    stifle_history(console_history_size);
    if (history_file_.empty()) return;
    if (::access(history_file_.c_str(), F_OK) == 0) {
        read_history(history_file_.c_str());
        return;
    }
    const int fd = ::open(history_file_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
    if (const int e = write_history(history_file_.c_str()); e != 0) {
        write_err("Cannot write history file " + history_file_ + ": " + errno_text(e) + "\n");
        history_warned_ = true;
    }
}

void Interactive::remember(std::string_view line) {
    if (line == last_history_) return;
    last_history_ = std::string(line);
    add_history(last_history_.c_str());
    if (history_file_.empty()) return;
    // Saved every time: a console closed with its terminal keeps its history.
    if (const int e = write_history(history_file_.c_str()); e != 0 && !history_warned_) {
        write_err("Cannot write history file " + history_file_ + ": " + errno_text(e) + "\n");
        history_warned_ = true;
    }
}

void Interactive::write_out(std::string_view text) {
    if (text.empty()) return;
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    at_line_start_ = text.back() == '\n';
}

void Interactive::drain_wake_pipe() {
    char buf[64];
    while (::read(wake_[0], buf, sizeof buf) > 0) {
    }
}

void Interactive::write_err(std::string_view text) {
    std::fflush(stdout);
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
}

void Interactive::show_prompt() {
    if (!at_line_start_) write_out("\n");
    // Installing prepares the terminal, resets the line and draws the prompt.
    rl_callback_handler_install(console_prompt, &line_handler);
    prompt_shown_ = true;
    input_empty_ = true;
}

void Interactive::hide_prompt() {
    if (!prompt_shown_) return;
    rl_callback_handler_remove();
    prompt_shown_ = false;
}

// The screen row, counted from the prompt's, of offset `point` in the line.
std::size_t Interactive::cursor_row(std::size_t point) const {
    int cols = 0;
    rl_get_screen_size(nullptr, &cols);
    if (cols <= 0) cols = 80;
    std::size_t column = display_width(console_prompt);
    if (!input_empty_ && rl_line_buffer && rl_end >= 0)
        column += display_width(std::string_view(rl_line_buffer, std::min(point, static_cast<std::size_t>(rl_end))));
    return column / static_cast<std::size_t>(cols);
}

// Moves the cursor from `row` to the start of the prompt and clears from
// there down.
void Interactive::redraw_input(std::size_t row) {
    if (!ansi_) {
        // No cursor movement: go on below instead.
        write_out("\n");
        return;
    }
    std::string seq = "\r";
    if (row > 0) seq += "\033[" + std::to_string(row) + "A";
    seq += "\033[J";
    write_out(seq);
    at_line_start_ = true;
}

void Interactive::erase_input() {
    redraw_input(cursor_row(rl_point > 0 ? static_cast<std::size_t>(rl_point) : 0));
}

// Ctrl-C at the prompt: keep what was typed on screen, start a fresh line.
void Interactive::discard_input() {
    std::string tail;
    if (!input_empty_ && rl_line_buffer && rl_point >= 0 && rl_point < rl_end)
        tail.assign(rl_line_buffer + rl_point, rl_line_buffer + rl_end);
    hide_prompt();
    write_out(tail + "^C\n");
    show_prompt();
}

void Interactive::flush_logs() {
    if (logs_.empty() || in_editline_) return;
    if (prompt_shown_) {
        erase_input();
        write_out(logs_);
        // Redraw the prompt and the line being typed below the new text.
        rl_forced_update_display();
    } else {
        write_out(logs_);
    }
    logs_.clear();
}

void Interactive::handle(const Frame& f) {
    switch (replies_.route(f)) {
        case Replies::Route::log:
            if (f.payload.empty()) break;
            logs_ += f.payload;
            if (logs_.back() != '\n') logs_ += '\n';
            break;
        case Replies::Route::output:
            flush_logs();
            write_out(f.payload);
            break;
        case Replies::Route::result:
            result_ = parse_status(f.payload);
            break;
        case Replies::Route::matches:
            matches_ = f.payload;
            break;
        case Replies::Route::ignore:
            break;
    }
}

Interactive::Outcome Interactive::read_line(std::string& line) {
    line_done_ = false;
    show_prompt();
    for (;;) {
        if (line_done_) {
            // libedit has already restored the terminal and, for a line (not
            // for end of input), moved to the next one.
            hide_prompt();
            at_line_start_ = true;
            if (!line_) {
                // libedit shows the Ctrl-D as "^D"; put the bare prompt back.
                write_out(ansi_ ? "\r\033[K" + std::string(console_prompt) + "\n" : "\n");
                return Outcome::eof;
            }
            line = std::move(*line_);
            return Outcome::ok;
        }
        while (auto f = conn_.next()) handle(*f);
        if (conn_.broken()) broken_ = true;
        flush_logs();
        if (broken_ || disconnected_) {
            erase_input();
            hide_prompt();
            return broken_ ? Outcome::broken : Outcome::disconnected;
        }
        if (g_interrupted) {
            g_interrupted = 0;
            discard_input();
            continue;
        }
        if (g_resized) {
            // libedit only takes the new size (and forgets what is on the
            // screen); draw the line again from the prompt.
            g_resized = 0;
            rl_resize_terminal();
            erase_input();
            rl_forced_update_display();
        }
        pollfd p[3] = {{STDIN_FILENO, POLLIN, 0}, {conn_.fd(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (::poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            hide_prompt();
            return Outcome::eof;
        }
        if (p[2].revents) {
            drain_wake_pipe();
            continue;
        }
        if (p[1].revents && conn_.receive() == Connection::Read::closed) {
            disconnected_ = true;
            continue;
        }
        if (p[0].revents & POLLIN) {
            in_editline_ = true;
            rl_callback_read_char();
            in_editline_ = false;
            input_empty_ = false;
            if (redraw_row_ && !line_done_) {
                redraw_input(*redraw_row_);
                rl_forced_update_display();
            }
            redraw_row_.reset();
        } else if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
            // The terminal went away.
            hide_prompt();
            at_line_start_ = false;
            return Outcome::eof;
        }
    }
}

Interactive::Outcome Interactive::run_line(std::string_view command) {
    if (command.size() > max_payload_length) {
        write_err(too_long_message(command.size()));
        return Outcome::ok;
    }
    if (!conn_.send(FrameType::command, command)) return Outcome::disconnected;
    replies_.expect(Replies::Kind::command);
    result_.reset();
    for (;;) {
        while (!result_) {
            auto f = conn_.next();
            if (!f) break;
            handle(*f);
        }
        flush_logs();
        if (result_) break;
        if (conn_.broken()) return Outcome::broken;
        if (g_interrupted) {
            g_interrupted = 0;
            replies_.abandon_newest();
            write_out("\n(the command goes on in Tandem; its output will not be shown)\n");
            break;
        }
        pollfd p[2] = {{conn_.fd(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (::poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return Outcome::disconnected;
        }
        if (p[1].revents) drain_wake_pipe();
        if (p[0].revents && conn_.receive() == Connection::Read::closed) return Outcome::disconnected;
    }
    if (!at_line_start_) write_out("\n");
    return Outcome::ok;
}

std::vector<std::string> Interactive::complete(std::string_view line) {
    if (disconnected_ || broken_ || line.size() > max_payload_length) return {};
    if (!conn_.send(FrameType::complete, line)) {
        disconnected_ = true;
        return {};
    }
    replies_.expect(Replies::Kind::completion);
    matches_.reset();
    const auto deadline = Clock::now() + options_.completion_timeout;
    for (;;) {
        while (!matches_) {
            auto f = conn_.next();
            if (!f) break;
            handle(*f);  // log lines wait until libedit is done
        }
        if (matches_) break;
        if (conn_.broken()) {
            broken_ = true;
            return {};
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
        // On Ctrl-C the flag stays set: the main loop discards the line.
        if (g_interrupted || left <= 0) {
            replies_.abandon_newest();
            return {};
        }
        pollfd p[2] = {{conn_.fd(), POLLIN, 0}, {wake_[0], POLLIN, 0}};
        const int r = ::poll(p, 2, static_cast<int>(std::min<long long>(left, INT_MAX)));
        if (r < 0 && errno != EINTR) {
            disconnected_ = true;
            return {};
        }
        if (r > 0 && p[1].revents) drain_wake_pipe();
        if (r > 0 && p[0].revents && conn_.receive() == Connection::Read::closed) {
            disconnected_ = true;
            return {};
        }
    }
    std::vector<std::string> out;
    std::string_view rest = *matches_;
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const auto item = rest.substr(0, nl);
        if (!item.empty()) out.emplace_back(item);
        if (nl == std::string_view::npos) break;
        rest.remove_prefix(nl + 1);
    }
    matches_.reset();
    return out;
}

int Interactive::run(const std::string& greeting, const std::string& level) {
    current_ = this;
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
        write_err("Cannot start the console: " + errno_text(errno) + "\n");
        current_ = nullptr;
        return 1;
    }
    g_wake_fd = wake_[1];
    g_interrupted = 0;
    g_resized = 0;
    const char* term = std::getenv("TERM");
    ansi_ = term && *term && std::strcmp(term, "dumb") != 0;
    // No SA_RESTART: poll() must return on Ctrl-C and on a window resize.
    // libedit's own handlers, active at the prompt, pass these on to ours.
    struct sigaction sa {};
    struct sigaction old_sigint {};
    struct sigaction old_sigwinch {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = &on_sigint;
    ::sigaction(SIGINT, &sa, &old_sigint);
    sa.sa_handler = &on_sigwinch;
    ::sigaction(SIGWINCH, &sa, &old_sigwinch);

    setup_editline();
    load_history();
    write_out(greeting + "\n");

    int status = 0;
    Outcome outcome = Outcome::ok;
    if (!level.empty() && !conn_.send(FrameType::verbosity, level)) outcome = Outcome::disconnected;
    while (outcome == Outcome::ok) {
        std::string line;
        outcome = read_line(line);
        if (outcome != Outcome::ok) break;
        const auto command = trim(line);
        if (command.empty()) continue;
        if (is_exit(command)) break;
        remember(command);
        outcome = run_line(command);
    }
    switch (outcome) {
        case Outcome::ok:
            break;
        case Outcome::eof:
            if (!at_line_start_) write_out("\n");
            break;
        case Outcome::disconnected:
            if (!at_line_start_) write_out("\n");
            write_err("Disconnected from Tandem\n");
            status = 1;
            break;
        case Outcome::broken:
            if (!at_line_start_) write_out("\n");
            write_err("Protocol error from Tandem at " + path_ + "\nDisconnected from Tandem\n");
            status = 1;
            break;
    }
    hide_prompt();
    ::sigaction(SIGINT, &old_sigint, nullptr);
    ::sigaction(SIGWINCH, &old_sigwinch, nullptr);
    g_wake_fd = -1;
    ::close(wake_[0]);
    ::close(wake_[1]);
    g_interrupted = 0;
    g_resized = 0;
    current_ = nullptr;
    return status;
}

}  // namespace

// ---------------------------------------------------------------------------

int run_command(const std::string& socket_path, const std::string& command, std::ostream& out, std::ostream& err,
                const ClientOptions& options) {
    if (command.size() > max_payload_length) {
        err << too_long_message(command.size());
        return 1;
    }
    Connection conn;
    std::string greeting;
    if (auto status = connect_and_greet(conn, socket_path, options, err, greeting)) return *status;
    if (!conn.send(FrameType::command, command)) {
        err << "Disconnected from Tandem before the command could be sent\n";
        return 1;
    }
    for (;;) {
        Frame f;
        switch (wait_frame(conn, f, std::nullopt)) {
            case Wait::frame:
                break;
            case Wait::closed:
            case Wait::timeout:
                out.flush();
                err << "Disconnected from Tandem before the command finished\n";
                return 1;
            case Wait::broken:
                out.flush();
                report_protocol_error(socket_path, err);
                return 1;
        }
        if (f.type == FrameType::output) {
            out << f.payload;
            out.flush();
        } else if (f.type == FrameType::result) {
            return parse_status(f.payload);
        }
    }
}

int run_script(const std::string& socket_path, const std::string& verbosity, int in_fd, std::ostream& out,
               std::ostream& err, const ClientOptions& options) {
    std::string level;
    if (!normalize_level(verbosity, level)) {
        err << "Unknown verbosity '" << verbosity << "' (use trace, debug, info, notice, warning, error or off)\n";
        return 2;
    }
    Connection conn;
    std::string greeting;
    if (auto status = connect_and_greet(conn, socket_path, options, err, greeting)) return *status;
    out << greeting << '\n';
    out.flush();

    const auto disconnected = [&] {
        out.flush();
        err << "Disconnected from Tandem\n";
        return 1;
    };
    const auto broken = [&] {
        out.flush();
        report_protocol_error(socket_path, err);
        return 1;
    };
    if (!level.empty() && !conn.send(FrameType::verbosity, level)) return disconnected();

    LineReader input(in_fd);
    int last = 0;
    for (;;) {
        // Wait for a line; log lines are shown meanwhile.
        std::optional<std::string> line;
        for (;;) {
            while (auto f = conn.next()) {
                if (f->type == FrameType::log) out << f->payload;
            }
            out.flush();
            if (conn.broken()) return broken();
            if ((line = input.take())) break;
            if (input.finished()) return last;
            pollfd p[2] = {{input.fd(), POLLIN, 0}, {conn.fd(), POLLIN, 0}};
            if (::poll(p, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return disconnected();
            }
            if (p[1].revents && conn.receive() == Connection::Read::closed) return disconnected();
            if (p[0].revents) input.fill();
        }

        const auto command = trim(*line);
        if (command.empty() || command.front() == '#') continue;
        if (is_exit(command)) return last;
        if (command.size() > max_payload_length) {
            err << too_long_message(command.size());
            last = 1;
            continue;
        }
        if (!conn.send(FrameType::command, command)) return disconnected();
        for (bool done = false; !done;) {
            Frame f;
            switch (wait_frame(conn, f, std::nullopt)) {
                case Wait::frame:
                    break;
                case Wait::closed:
                case Wait::timeout:
                    return disconnected();
                case Wait::broken:
                    return broken();
            }
            switch (f.type) {
                case FrameType::output:
                case FrameType::log:
                    out << f.payload;
                    out.flush();
                    break;
                case FrameType::result:
                    last = parse_status(f.payload);
                    done = true;
                    break;
                default:
                    break;
            }
        }
    }
}

int run_console(const std::string& socket_path, const std::string& verbosity, const std::string& history_file) {
    if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO))
        return run_script(socket_path, verbosity, STDIN_FILENO, std::cout, std::cerr);

    std::string level;
    if (!normalize_level(verbosity, level)) {
        std::cerr << "Unknown verbosity '" << verbosity
                  << "' (use trace, debug, info, notice, warning, error or off)\n";
        return 2;
    }
    const ClientOptions options;
    Connection conn;
    std::string greeting;
    if (auto status = connect_and_greet(conn, socket_path, options, std::cerr, greeting)) return *status;
    Interactive console(conn, socket_path, history_file, options);
    return console.run(greeting, level);
}

}  // namespace tandem::cli
