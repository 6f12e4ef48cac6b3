// Framing on the control socket, shared by the server (cli/server.cpp) and the
// console client (console/console.cpp).
//
// Every message is one frame:
//
//   +----------------------+------+-------------------------+
//   | N: 4 bytes, big end. | type | payload: N - 1 bytes    |
//   +----------------------+------+-------------------------+
//
// N counts the type byte and the payload, so it is at least 1 and at most
// max_frame_length (1 MiB). Payloads are UTF-8 text. A length of 0 or above the
// limit is a protocol error: the reader stops and the connection is closed.
//
// Server -> client
//   'G' greeting   sent first on connect, "Tandem <version>"
//   'O' output     a chunk of command output (any number of lines)
//   'R' result     ends the reply to one command; decimal exit status
//                  (0 ok, 1 failed, 2 usage error, 127 no such command)
//   'L' log        one formatted log line ending in '\n'; may arrive at any
//                  time, between replies or in the middle of one
//   'M' matches    the reply to a 'T': candidates separated by '\n', each a
//                  full replacement for the last word of the line; may be empty
// Client -> server
//   'C' command    a command line; the reply is zero or more 'O', then one 'R'
//   'T' complete   the line typed so far (cursor at its end); the reply is one 'M'
//   'V' verbosity  trace|debug|info|notice|warning|error|off: stream log lines
//                  at or above that level ('L'); a connection starts at off
//
// The server answers requests in the order it receives them, so replies ('O'*
// 'R' for a 'C', 'M' for a 'T') come back in request order; 'L' frames may be
// interleaved anywhere.
//
// A frame whose type byte is not one of the above is still a well-formed frame:
// the Decoder returns it and readers skip types they do not know, which lets a
// newer peer add frame types without breaking an older one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tandem::cli {

enum class FrameType : char {
    // server -> client
    greeting = 'G',
    output = 'O',
    result = 'R',
    log = 'L',
    matches = 'M',
    // client -> server
    command = 'C',
    complete = 'T',
    verbosity = 'V',
};

// The largest allowed N (type byte + payload), and so the largest payload.
inline constexpr std::size_t max_frame_length = std::size_t{1} << 20;
inline constexpr std::size_t max_payload_length = max_frame_length - 1;
// Bytes before the type byte.
inline constexpr std::size_t frame_header_length = 4;

struct Frame {
    FrameType type{};
    std::string payload;

    bool operator==(const Frame&) const = default;
};

// True for the eight types listed above.
bool is_known(FrameType type);

// One frame, ready to write. encode() never produces an invalid frame: an
// 'O' or 'L' payload longer than max_payload_length becomes several
// consecutive frames of that type (the reader sees the same bytes, in more
// chunks); an 'M' payload is cut after the last whole candidate that fits;
// any other payload is cut at the limit. Senders of 'C' and 'T' should
// refuse longer lines themselves rather than rely on the cut.
std::string encode(FrameType type, std::string_view payload);

// Incremental reader: feed() whatever bytes arrived, then call next() until it
// returns nothing. Frames may be split anywhere across feeds. Once the stream
// is found malformed (length 0 or above the limit), failed() stays true, the
// buffered bytes are dropped and further input is ignored.
class Decoder {
public:
    void feed(const char* data, std::size_t size);
    void feed(std::string_view data) { feed(data.data(), data.size()); }
    std::optional<Frame> next();
    bool failed() const { return failed_; }
    // Bytes received but not yet returned as frames.
    std::size_t pending() const { return buf_.size() - pos_; }

private:
    std::string buf_;
    std::size_t pos_ = 0;  // start of the first unread frame in buf_
    bool failed_ = false;
};

}  // namespace tandem::cli
