#include "cli/server.hpp"

#include "cli/protocol.hpp"
#include "runtime/core_impl.hpp"

#include <tandem/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <future>
#include <set>

namespace asio = boost::asio;
using asio::local::stream_protocol;
namespace fs = std::filesystem;

namespace tandem {

Registration add_command(Registry<CliCommand>& registry, CliCommand cmd, ModuleUse* owner) {
    std::string key;
    for (auto& w : cmd.words) key += (key.empty() ? "" : " ") + w;
    return registry.add(std::move(key), std::move(cmd), owner);
}

std::vector<std::string> tokenize_cli(std::string_view line) {
    std::vector<std::string> out;
    std::string cur;
    bool in_word = false, quoted = false;
    for (char c : line) {
        if (quoted) {
            if (c == '"')
                quoted = false;
            else
                cur.push_back(c);
        } else if (c == '"') {
            quoted = in_word = true;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (in_word) out.push_back(std::exchange(cur, {}));
            in_word = false;
        } else {
            cur.push_back(c);
            in_word = true;
        }
    }
    if (in_word) out.push_back(cur);
    return out;
}

namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
}

struct Found {
    Lease<CliCommand> cmd;
    std::size_t words = 0;
};

Found find_command(CoreImpl& core, const std::vector<std::string>& words) {
    for (std::size_t n = std::min<std::size_t>(words.size(), 8); n > 0; --n) {
        std::string key;
        for (std::size_t i = 0; i < n; ++i) key += (i ? " " : "") + lower(words[i]);
        if (auto c = core.cli_commands().find(key)) return {std::move(c), n};
    }
    return {};
}

}  // namespace

awaitable<int> run_cli_line(CoreImpl& core, std::string_view line, CliOutput& out) {
    auto words = tokenize_cli(line);
    if (words.empty()) co_return cli_status::ok;
    auto found = find_command(core, words);
    if (!found.cmd) {
        out.print("No such command '{}' (type 'help' for help)\n", std::string(line));
        co_return cli_status::not_found;
    }
    CliRequest req{std::vector<std::string>(words.begin() + static_cast<long>(found.words), words.end()), out};
    int status = cli_status::failure;
    try {
        status = co_await found.cmd->handler(req);
    } catch (const std::exception& e) {
        out.print("Command failed: {}\n", e.what());
        status = cli_status::failure;
    }
    if (status == cli_status::usage) out.print("{}\n", found.cmd->usage);
    co_return status;
}

std::vector<std::string> complete_cli_line(CoreImpl& core, std::string_view line) {
    auto words = tokenize_cli(line);
    std::string partial;
    if (!line.empty() && line.back() != ' ' && !words.empty()) {
        partial = words.back();
        words.pop_back();
    }
    std::set<std::string> out;
    auto lp = lower(partial);
    core.cli_commands().for_each([&](const std::string&, const CliCommand& cmd, const std::string&) {
        std::size_t i = 0;
        for (; i < words.size() && i < cmd.words.size(); ++i)
            if (lower(words[i]) != cmd.words[i]) return;
        if (i < cmd.words.size()) {
            if (i == words.size() && cmd.words[i].rfind(lp, 0) == 0) out.insert(cmd.words[i]);
            return;
        }
        if (!cmd.complete) return;
        std::vector<std::string> args(words.begin() + static_cast<long>(cmd.words.size()), words.end());
        for (auto& c : cmd.complete(args, args.size(), partial))
            if (c.rfind(partial, 0) == 0) out.insert(c);
    });
    return {out.begin(), out.end()};
}

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(CoreImpl& core, stream_protocol::socket sock)
        : core_(core), sock_(std::move(sock)), wake_(sock_.get_executor()) {
        wake_.expires_at(asio::steady_timer::time_point::max());
    }
    ~Session() {
        if (tap_ >= 0) core_.core_log().remove_tap(tap_);
    }

    void start() {
        auto self = shared_from_this();
        asio::co_spawn(sock_.get_executor(), writer(), asio::detached);
        asio::co_spawn(sock_.get_executor(), reader(), [self](std::exception_ptr) { self->shut(); });
    }

    // On the session's loop.
    void send(std::string frame) {
        if (closed_) return;
        queue_.push_back(std::move(frame));
        wake_.cancel();
    }

    // Any thread: a log line for this console; dropped when the console is far behind.
    void send_log(const std::string& line) {
        auto self = weak_from_this();
        asio::post(sock_.get_executor(), [self, f = cli::encode(cli::FrameType::log, line)]() mutable {
            if (auto s = self.lock())
                if (s->queue_.size() < 10000) s->send(std::move(f));
        });
    }

private:
    struct Output final : CliOutput {
        explicit Output(Session& s) : s(s) {}
        void write(std::string_view text) override {
            if (!text.empty()) s.send(cli::encode(cli::FrameType::output, text));
        }
        Session& s;
    };

    bool peer_allowed() {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(sock_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
        return cred.uid == 0 || cred.uid == geteuid();
    }

    awaitable<void> reader() {
        auto self = shared_from_this();
        if (!peer_allowed()) {
            send(cli::encode(cli::FrameType::output, "Permission denied\n"));
            send(cli::encode(cli::FrameType::result, "1"));
            co_return;
        }
        send(cli::encode(cli::FrameType::greeting, fmt::format("Tandem {}", TANDEM_VERSION)));
        cli::Decoder dec;
        char buf[4096];
        for (;;) {
            auto [ec, n] = co_await sock_.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            dec.feed(buf, n);
            while (auto f = dec.next()) co_await handle(*f);
            if (dec.failed()) co_return;
        }
    }

    awaitable<void> handle(const cli::Frame& f) {
        switch (f.type) {
            case cli::FrameType::command: {
                Output out(*this);
                int status = co_await run_cli_line(core_, f.payload, out);
                // Let log lines already posted for this console go out before the result.
                co_await asio::post(sock_.get_executor(), asio::use_awaitable);
                send(cli::encode(cli::FrameType::result, std::to_string(status)));
                break;
            }
            case cli::FrameType::complete: {
                std::string joined;
                for (auto& c : complete_cli_line(core_, f.payload)) joined += (joined.empty() ? "" : "\n") + c;
                send(cli::encode(cli::FrameType::matches, joined));
                break;
            }
            case cli::FrameType::verbosity: {
                LogLevel lvl;
                if (!parse_log_level(f.payload, lvl)) break;
                if (tap_ >= 0) {
                    core_.core_log().set_tap_level(tap_, lvl);
                } else if (lvl != LogLevel::off) {
                    std::weak_ptr<Session> weak = shared_from_this();
                    tap_ = core_.core_log().add_tap(lvl, [weak](const std::string& line) {
                        if (auto s = weak.lock()) s->send_log(line);
                    });
                }
                break;
            }
            default:
                break;
        }
        co_return;
    }

    awaitable<void> writer() {
        auto self = shared_from_this();
        for (;;) {
            while (queue_.empty() && !closed_) co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
            if (queue_.empty()) break;
            auto msg = std::move(queue_.front());
            queue_.pop_front();
            auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(msg), asio::as_tuple(asio::use_awaitable));
            if (ec) break;
        }
        boost::system::error_code ignored;
        sock_.shutdown(stream_protocol::socket::shutdown_both, ignored);
        sock_.close(ignored);
    }

    void shut() {
        // Let the writer flush what is queued, then close.
        closed_ = true;
        wake_.cancel();
        if (tap_ >= 0) {
            core_.core_log().remove_tap(tap_);
            tap_ = -1;
        }
    }

    CoreImpl& core_;
    stream_protocol::socket sock_;
    asio::steady_timer wake_;
    std::deque<std::string> queue_;
    bool closed_ = false;
    int tap_ = -1;
};

}  // namespace

CliServer::CliServer(CoreImpl& core, asio::io_context& loop) : core_(core), loop_(loop) {}

CliServer::~CliServer() {
    close();
}

bool CliServer::listen(const fs::path& path, std::string& error) {
    path_ = path;
    std::error_code fec;
    if (fs::exists(path, fec)) {
        // A live PBX answers on it; a stale socket from a crash does not.
        stream_protocol::socket probe(loop_);
        boost::system::error_code ec;
        probe.connect(stream_protocol::endpoint(path.string()), ec);
        if (!ec) {
            error = fmt::format("another Tandem is already running on {}", path.string());
            return false;
        }
        fs::remove(path, fec);
    }
    try {
        acceptor_ = std::make_unique<stream_protocol::acceptor>(loop_, stream_protocol::endpoint(path.string()));
    } catch (const std::exception& e) {
        error = fmt::format("cannot listen on {}: {}", path.string(), e.what());
        return false;
    }
    ::chmod(path.c_str(), 0660);
    asio::co_spawn(loop_, accept_loop(), asio::detached);
    return true;
}

awaitable<void> CliServer::accept_loop() {
    for (;;) {
        auto [ec, sock] = co_await acceptor_->async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor_->is_open()) co_return;
            continue;
        }
        std::make_shared<Session>(core_, std::move(sock))->start();
    }
}

void CliServer::close() {
    if (!acceptor_) return;
    // Close on the loop that owns the acceptor; wait so the socket file can go.
    std::promise<void> done;
    asio::post(loop_, [&] {
        boost::system::error_code ec;
        acceptor_->close(ec);
        done.set_value();
    });
    if (loop_.stopped())
        acceptor_->close();
    else
        done.get_future().wait();
    std::error_code fec;
    fs::remove(path_, fec);
    acceptor_.reset();
}

}  // namespace tandem
