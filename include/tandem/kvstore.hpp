// tandem/kvstore.hpp - the persistent key/value store behind ${DB(family/key)}.
//
// Per-user state (do-not-disturb, call forwarding, hot-desk logins, night
// mode) lives here as (family, key) -> value strings. The dialplan reaches it
// through DB(), DB_EXISTS and DB_DELETE, the CLI through `database show|put|del`,
// and modules through this header. The data is kept in an SQLite file, but the
// whole table is also held in memory: reads never touch the disk, and writes
// change memory at once and are queued for a dedicated writer thread that
// commits them to SQLite in batched transactions.
//
// Threading: every member function may be called from any thread at the same
// time. get(), exists(), list(), put(), del(), del_tree() and pending() never
// wait for disk I/O, so they are safe on call-handling event loops; they take
// an in-memory lock for microseconds. flush(), flush_for() and the destructor
// wait for the writer thread, and on_error() for a report in progress, so
// keep those off event loops. A write is visible to every reader as soon as
// the call returns, before it is durable.
//
// Failures: a change that SQLite refuses (disk full, read-only file, a lock
// held by another process) is never dropped. It stays queued and is retried
// with a growing delay (100 ms, doubling up to 5 s by default), and every
// failed attempt is reported through the on_error() callback. The only way a
// queued change is lost is a shutdown that keeps failing past
// KvStoreOptions::shutdown_timeout, and that is reported too.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem {

// Tuning knobs for KvStore::open(). The defaults suit a running PBX; tests
// shorten them.
struct KvStoreOptions {
    // How long one write attempt waits for a lock held by another connection
    // before the attempt counts as failed. Only the writer thread waits.
    std::chrono::milliseconds busy_timeout{1000};
    // Delay before the first retry after a failed write; it doubles after each
    // further failure up to retry_max, and resets after a success.
    std::chrono::milliseconds retry_initial{100};
    std::chrono::milliseconds retry_max{5000};
    // How long the destructor keeps retrying queued changes that SQLite keeps
    // refusing before it gives up on them (and reports how many were lost).
    std::chrono::milliseconds shutdown_timeout{10000};
};

class KvStore {
public:
    // Input limits, in bytes. Family and key must also be non-empty, and no
    // family, key or value may contain a NUL byte.
    static constexpr std::size_t max_family_size = 255;
    static constexpr std::size_t max_key_size = 255;
    static constexpr std::size_t max_value_size = 64 * 1024;

    using ErrorCallback = std::function<void(const std::string& message)>;
    using Entry = std::pair<std::string, std::string>;  // ("/family/key", value)

    // Opens (creating if needed, parent directories included) the database
    // file, switches it to WAL mode with synchronous=NORMAL, creates the table
    // kv(family, key, value) if missing and loads every row into memory.
    //
    // Returns nullptr and sets `error` (naming the path and SQLite's message)
    // when the file cannot be read: not a database, corrupt, no permission to
    // read, directory cannot be created. A file that can be read but not
    // written opens normally: reads work, and writes are kept in memory and
    // reported as failures until the file becomes writable.
    static std::unique_ptr<KvStore> open(const std::filesystem::path& db_file, std::string& error);
    static std::unique_ptr<KvStore> open(const std::filesystem::path& db_file, const KvStoreOptions& options,
                                         std::string& error);

    // Flushes, waiting as long as options.shutdown_timeout for a failing
    // database to recover, then stops the writer thread.
    ~KvStore();

    KvStore(const KvStore&) = delete;
    KvStore& operator=(const KvStore&) = delete;
    KvStore(KvStore&&) = delete;
    KvStore& operator=(KvStore&&) = delete;

    // --- reads: from memory, never block on I/O ---------------------------

    // The value, or nullopt when absent (or when family/key is invalid).
    std::optional<std::string> get(std::string_view family, std::string_view key) const;
    bool exists(std::string_view family, std::string_view key) const;

    // Entries as ("/family/key", value), sorted by that path (byte order).
    // An empty `family` lists everything; otherwise the entries of that
    // family and of the families below it ("CFWD" lists "CFWD" and
    // "CFWD/busy", but not "CFWD2"), as `database show CFWD` does.
    std::vector<Entry> list(std::string_view family = {}) const;

    // --- writes: memory now, SQLite soon ----------------------------------

    // Stores `value` under family/key. Returns false, changes nothing and,
    // when `error` is not null, sets it to the reason if the input breaks the
    // limits above. An empty value is allowed.
    bool put(std::string_view family, std::string_view key, std::string_view value, std::string* error = nullptr);

    // Removes family/key. Returns whether it existed (false for invalid input).
    bool del(std::string_view family, std::string_view key);

    // Removes a subtree and returns how many entries went. With an empty
    // `key_prefix` it removes exactly what list(family) shows: the family and
    // every family below it. Otherwise it removes the keys of `family` itself
    // whose key starts with `key_prefix` (a plain byte prefix, so pass
    // "1001/" rather than "1001" to stop "10010" matching). 0 for an invalid
    // family.
    std::size_t del_tree(std::string_view family, std::string_view key_prefix = {});

    // --- durability and monitoring ------------------------------------------

    // Blocks until every change made before the call is committed to SQLite.
    // With synchronous=NORMAL a commit survives a crash of the process; a
    // power cut may still lose the last commits. While SQLite keeps failing
    // this waits indefinitely; see flush_for().
    void flush();
    // As flush(), but gives up after `timeout`; returns whether everything
    // made before the call is durable.
    bool flush_for(std::chrono::milliseconds timeout);

    // Changes not yet committed (queued, or in the transaction being written).
    // Changes to the same family/key collapse into one.
    std::size_t pending() const;

    // Sets the receiver of error reports (each a one-line message naming the
    // database path and SQLite's error). It is called on the writer thread,
    // one report at a time, and must return quickly; it must not call
    // on_error(), flush(), flush_for() or destroy the store. Once on_error()
    // returns, the previous callback is no longer running and will not be
    // called again. An empty callback (the default) reports on stderr.
    void on_error(ErrorCallback callback);

    const std::filesystem::path& path() const;

private:
    struct Impl;
    explicit KvStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
