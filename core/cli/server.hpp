// The control socket: consoles (`tandem -r`, `tandem -rx`) talk to the PBX here.
//
// A Unix stream socket in the run directory, mode 0660, accepting only root and
// the PBX's own user (checked with SO_PEERCRED). Framing is cli/protocol.hpp.
// Every session runs on one event loop as two coroutines: a reader that runs
// commands and completions, and a writer that drains the session's queue
// (command output and streamed log lines, which may come from any thread).
#pragma once

#include <tandem/cli.hpp>
#include <tandem/registry.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace tandem {

class CoreImpl;

class CliServer {
public:
    CliServer(CoreImpl& core, boost::asio::io_context& loop);
    ~CliServer();
    bool listen(const std::filesystem::path& path, std::string& error);
    void close();

private:
    awaitable<void> accept_loop();
    CoreImpl& core_;
    boost::asio::io_context& loop_;
    std::unique_ptr<boost::asio::local::stream_protocol::acceptor> acceptor_;
    std::filesystem::path path_;
};

// Registers a command under its words joined by spaces ("core show channels").
Registration add_command(Registry<CliCommand>& registry, CliCommand cmd, ModuleUse* owner);

// Splits a command line into words; double quotes group words.
std::vector<std::string> tokenize_cli(std::string_view line);
// Runs one command line; returns its status (cli_status).
awaitable<int> run_cli_line(CoreImpl& core, std::string_view line, CliOutput& out);
// Completion candidates for the last (possibly empty) word of `line`.
std::vector<std::string> complete_cli_line(CoreImpl& core, std::string_view line);

}  // namespace tandem
