// Media files: prompts, recordings, music — readers, writers and the file
// format registry.
//
// A format module (format_sndfile) registers one FileFormat per kind of file
// ("wav", "ulaw", "gsm", "mp3", ...): the extensions it owns, the media Format
// it holds, and factories that open a MediaReader or create a MediaWriter.
// The core picks among them: Core::open_sound() finds the variants of a prompt
// (`hello.ulaw`, `hello.wav`, ...) and opens the one that is cheapest to
// translate to what the channel speaks; Core::create_media() makes a writer
// from a file name's extension.
//
// Crash safety: a MediaWriter writes to `<final name>.tmp`; only commit()
// (which flushes, fsyncs and renames) makes the final file appear. A writer
// destroyed without commit() removes its temporary file, and a process that
// dies mid-recording leaves at most a `*.tmp` file — never a truncated file
// under the final name.
//
// Threading and blocking: file I/O blocks. Opening a file, probing variants,
// reading and committing are blocking calls, so an application runs them on
// the worker pool (tandem::run_blocking) and never on an event loop. Readers
// and writers are not thread-safe but may move between threads: one thread at
// a time (the pattern is "read a chunk of frames on the worker pool, play it
// from the channel's loop"). Playback reads about one second ahead per
// worker-pool trip, so a slow disk delays a refill, never the loop; writers are
// fed from the loop in small writes (one frame, buffered by the C library) and
// committed on the worker pool. Registering and looking up formats is safe
// from any thread.
#pragma once

#include <tandem/channel.hpp>
#include <tandem/frame.hpp>
#include <tandem/media.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// Reads voice frames from one open file.
class MediaReader {
public:
    virtual ~MediaReader() = default;
    // The format of the frames read() produces.
    virtual Format format() const = 0;
    // Samples per second of those frames.
    virtual std::uint32_t sample_rate() const = 0;
    // Fills `out` with a voice frame of up to `samples` samples (fewer at the
    // end of the file; whole codec blocks for block codecs such as GSM, where
    // `samples` is rounded down to a multiple of the block, at least one).
    // Returns false at the end of the file or on a read error.
    virtual bool read(Frame& out, std::uint32_t samples) = 0;
    // Moves to `position` from the start (clamped to the length). False when
    // the file cannot seek.
    virtual bool seek(std::chrono::milliseconds position) = 0;
    // Total duration; 0 when unknown.
    virtual std::chrono::milliseconds length() const = 0;
    // Where the next read() starts.
    virtual std::chrono::milliseconds position() const = 0;
    // The file being read.
    virtual const std::filesystem::path& path() const = 0;
};

// Writes voice frames to a temporary file that commit() turns into the final one.
class MediaWriter {
public:
    virtual ~MediaWriter() = default;
    // The format write() expects.
    virtual Format format() const = 0;
    // Appends a voice frame in format(); other frames are ignored. False on a
    // write error (disk full), after which commit() fails.
    virtual bool write(const Frame& f) = 0;
    // Finishes the file (headers), fsyncs it and renames it to its final
    // name. False with `error` set when anything failed; the temporary file is
    // then removed.
    virtual bool commit(std::string& error) = 0;
    // Removes the temporary file; nothing is left on disk.
    virtual void abort() = 0;
    // Samples written so far.
    virtual std::uint64_t samples() const = 0;
    // The final name (the temporary one is this plus ".tmp").
    virtual const std::filesystem::path& path() const = 0;
};

// The registry entry of a file format, registered under a short name ("wav").
struct FileFormat {
    std::string description;
    // File name extensions without the dot, lower case ("wav", "ulaw", "ul").
    std::vector<std::string> extensions;
    // The media format the files hold. For a container whose header decides
    // (WAV with PCM, µ-law, A-law or GSM), the format a new file gets by default.
    Format format = Format::none;
    bool can_read = false;
    bool can_write = false;
    // Optional, blocking: the Format a reader of this file would produce,
    // from its header, or Format::none when it cannot be read. Without it,
    // `format` is assumed.
    std::function<Format(const std::filesystem::path&)> probe;
    // Blocking: opens a file, or returns nullptr with a message in `error`.
    std::function<std::unique_ptr<MediaReader>(const std::filesystem::path&, std::string& error)> open;
    // Blocking: creates `<path>.tmp` for frames in `format` (Format::none: the
    // entry's default), or returns nullptr with a message in `error`.
    std::function<std::unique_ptr<MediaWriter>(const std::filesystem::path&, Format format, std::string& error)> create;
};

// --- playing prompts on a channel ------------------------------------------

// How a play_sound() ended.
struct PlaybackResult {
    enum class Status { finished, interrupted, failed, hungup };
    Status status = Status::finished;
    char digit = 0;     // interrupted: the DTMF digit that stopped it
    std::string error;  // failed: why (missing file, unreadable)
    bool ok() const { return status == Status::finished || status == Status::interrupted; }
};

// Every DTMF digit, for `stop_digits`.
inline constexpr std::string_view any_dtmf = "0123456789*#ABCD";

// Plays one prompt (found as Core::open_sound does, in the channel's language
// and cheapest for its native format) on the channel's loop: one 20 ms frame
// per tick of a timer scheduled from the start time, so pacing never drifts.
// Frames are written in the file's format; the channel translates them when
// its native format differs. The file is opened and read one second ahead on
// the worker pool. A DTMF digit in `stop_digits` ends it early (the digit is
// consumed and returned). A hangup while it waits unwinds the caller as any
// awaited operation does.
awaitable<PlaybackResult> play_sound(Channel& chan, std::string_view name, std::string_view stop_digits = {});

}  // namespace tandem
