// The console client: `tandem -rx "cmd"`, `tandem -r` and `tandem -c` talk to a
// running PBX through its control socket (framing: cli/protocol.hpp).
//
// Plain POSIX sockets and poll(); the interactive console uses libedit through
// its readline-compatible callback interface, so log lines streamed by the PBX
// can be printed while the operator is typing.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <string>

namespace tandem::cli {

inline constexpr const char* console_prompt = "tandem*CLI> ";
// Entries kept in the history file.
inline constexpr int console_history_size = 1000;

struct ClientOptions {
    // A PBX whose event loop is stuck still accepts connections (the kernel
    // does that); give up if the greeting does not come within this time.
    std::chrono::milliseconds greeting_timeout{std::chrono::seconds(10)};
    // How long Tab waits for completion candidates before giving up quietly.
    std::chrono::milliseconds completion_timeout{std::chrono::seconds(3)};
};

// `tandem -rx`: connects, runs one command, copies its output to `out` as it
// arrives and returns its exit status (0 ok, 1 failed, 2 usage, 127 no such
// command). Connection problems are reported on `err` and return 1:
//   Unable to connect to Tandem at <path>: <reason> (is tandem running?)
// A command may run as long as it likes; there is no timeout once it is sent.
int run_command(const std::string& socket_path, const std::string& command, std::ostream& out, std::ostream& err,
                const ClientOptions& options = {});

// `tandem -r` / `tandem -c`: prints the greeting, asks for log lines at
// `verbosity` (trace|debug|info|notice|warning|error|off, case-insensitive;
// empty leaves the connection at off) and runs commands typed at the
// `tandem*CLI> ` prompt until `exit`, `quit` or end of input, which leave the
// PBX running.
//
// With a terminal on stdin and stdout: libedit line editing, history kept in
// `history_file` (created when absent, at most console_history_size entries,
// saved after every command; empty = no history file), Tab completion asked
// of the PBX, log lines shown above the line being typed. Ctrl-C discards the
// line being typed; during a command it stops waiting for the reply (the
// command itself goes on in the PBX and its remaining output is dropped).
// Otherwise this is run_script() on stdin/stdout/stderr.
//
// Returns 0 after exit/quit/end of input, 1 if the PBX cannot be reached or
// goes away ("Disconnected from Tandem"), 2 for an unknown verbosity.
int run_console(const std::string& socket_path, const std::string& verbosity, const std::string& history_file);

// The console without a terminal: reads command lines from `in_fd` (plain
// reads, no line editing) and runs them one by one, writing the greeting,
// command output and log lines to `out` and problems to `err`. Blank lines and
// lines starting with '#' are skipped; `exit`/`quit` stop early. Returns the
// status of the last command run (0 if none), 1 if the PBX cannot be reached
// or goes away, 2 for an unknown verbosity.
int run_script(const std::string& socket_path, const std::string& verbosity, int in_fd, std::ostream& out,
               std::ostream& err, const ClientOptions& options = {});

}  // namespace tandem::cli
