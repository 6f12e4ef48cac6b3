// The persistent key/value store: the whole table in memory for readers, and
// one writer thread that commits queued changes to SQLite.
// See include/tandem/kvstore.hpp for the public contract.
//
// Locking: `data_mu`, a reader/writer lock, guards the in-memory table;
// `q_mu` guards the write queue and the writer's state; `cb_mu` guards the
// error callback and is held while it runs. A writer takes data_mu, then
// q_mu, and never the other way round; the writer thread holds at most one
// of q_mu and cb_mu and never data_mu. The SQLite connection belongs to the
// writer thread once it has started.
#include "tandem/kvstore.hpp"

#include <pthread.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <thread>

namespace tandem {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// --- keys and their order ----------------------------------------------------

struct KeyView {
    std::string_view family;
    std::string_view key;
};

struct Key {
    std::string family;
    std::string key;
    KeyView view() const { return {family, key}; }
};

// A key's path is "family/key" (list() adds the leading '/').
std::size_t path_size(KeyView k) {
    return k.family.size() + 1 + k.key.size();
}

unsigned char path_char(KeyView k, std::size_t i) {
    if (i < k.family.size()) return static_cast<unsigned char>(k.family[i]);
    if (i == k.family.size()) return '/';
    return static_cast<unsigned char>(k.key[i - k.family.size() - 1]);
}

// Orders keys by their path, byte by byte. Family "a" key "b/c" and family
// "a/b" key "c" share a path; the family breaks the tie so both can exist.
int compare_path(KeyView a, KeyView b) {
    const std::size_t common = std::min(a.family.size(), b.family.size());
    if (const int c = a.family.substr(0, common).compare(b.family.substr(0, common)); c != 0) return c;
    if (a.family.size() == b.family.size()) return a.key.compare(b.key);
    const std::size_t na = path_size(a), nb = path_size(b);
    for (std::size_t i = common; i < std::min(na, nb); ++i) {
        const unsigned char ca = path_char(a, i), cb = path_char(b, i);
        if (ca != cb) return ca < cb ? -1 : 1;
    }
    if (na != nb) return na < nb ? -1 : 1;
    return a.family.compare(b.family);
}

// Whether k's path begins with prefix's path.
bool path_starts_with(KeyView k, KeyView prefix) {
    const std::size_t n = path_size(prefix);
    if (path_size(k) < n) return false;
    for (std::size_t i = 0; i < n; ++i)
        if (path_char(k, i) != path_char(prefix, i)) return false;
    return true;
}

// Whether `family` is `top` or a family below it ("top/...").
bool family_in_tree(std::string_view family, std::string_view top) {
    return family.starts_with(top) && (family.size() == top.size() || family[top.size()] == '/');
}

struct PathLess {
    using is_transparent = void;
    static KeyView view(const Key& k) { return k.view(); }
    static KeyView view(KeyView k) { return k; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
        return compare_path(view(a), view(b)) < 0;
    }
};

using Table = std::map<Key, std::string, PathLess>;
// Queued changes, one per key: a value to store, or nullopt to delete.
using Batch = std::map<Key, std::optional<std::string>, PathLess>;

// --- locking -------------------------------------------------------------------

// A reader/writer lock that lets a waiting writer in ahead of new readers.
// std::shared_mutex on glibc prefers readers, so a steady stream of get()
// calls from busy event loops could hold off put() indefinitely.
class WriterFirstMutex {
public:
    WriterFirstMutex() {
        pthread_rwlockattr_t attr;
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        const int rc = pthread_rwlock_init(&rw_, &attr);
        pthread_rwlockattr_destroy(&attr);
        check(rc, "pthread_rwlock_init");
    }
    ~WriterFirstMutex() { pthread_rwlock_destroy(&rw_); }
    WriterFirstMutex(const WriterFirstMutex&) = delete;
    WriterFirstMutex& operator=(const WriterFirstMutex&) = delete;

    void lock() { check(pthread_rwlock_wrlock(&rw_), "pthread_rwlock_wrlock"); }
    void unlock() { pthread_rwlock_unlock(&rw_); }
    void lock_shared() { check(pthread_rwlock_rdlock(&rw_), "pthread_rwlock_rdlock"); }
    void unlock_shared() { pthread_rwlock_unlock(&rw_); }

private:
    static void check(int rc, const char* what) {
        if (rc != 0) throw std::system_error(rc, std::generic_category(), what);
    }
    pthread_rwlock_t rw_;
};

// --- input validation ---------------------------------------------------------

std::string check_text(const char* what, std::string_view s, std::size_t max, bool may_be_empty) {
    if (s.empty() && !may_be_empty) return std::string(what) + " is empty";
    if (s.size() > max)
        return std::string(what) + " is " + std::to_string(s.size()) + " bytes long (the limit is " +
               std::to_string(max) + ")";
    if (s.find('\0') != std::string_view::npos) return std::string(what) + " contains a NUL byte";
    return {};
}

std::string check_name(std::string_view family, std::string_view key) {
    std::string why = check_text("family", family, KvStore::max_family_size, false);
    if (why.empty()) why = check_text("key", key, KvStore::max_key_size, false);
    return why;
}

// --- SQLite helpers -----------------------------------------------------------

struct SqlError {
    int code = SQLITE_OK;  // primary result code
    std::string message;
    explicit operator bool() const { return code != SQLITE_OK; }
};

SqlError error_of(sqlite3* db, int rc) {
    SqlError e{rc & 0xff, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)};
    // For file-level failures the OS reason ("Permission denied", "No space
    // left on device") is what the administrator needs.
    const bool os_level =
        e.code == SQLITE_CANTOPEN || e.code == SQLITE_IOERR || e.code == SQLITE_FULL || e.code == SQLITE_READONLY;
    if (db && os_level) {
        if (const int os_error = sqlite3_system_errno(db); os_error != 0)
            e.message += " (" + std::error_code(os_error, std::generic_category()).message() + ")";
    }
    return e;
}

std::string quoted(const fs::path& p) {
    return "'" + p.string() + "'";
}

// Saturating now + d, so that "wait for ever" values do not overflow.
Clock::time_point deadline_after(milliseconds d) {
    const auto now = Clock::now();
    const auto room = std::chrono::duration_cast<milliseconds>(Clock::time_point::max() - now);
    return d >= room ? Clock::time_point::max() : now + d;
}

// A "file:" URI for `p` with query `params`, percent-encoding everything but
// unreserved characters and '/'.
std::string file_uri(const fs::path& p, const char* params) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out = "file:";
    for (const char ch : p.string()) {
        const auto c = static_cast<unsigned char>(ch);
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                           c == '.' || c == '_' || c == '~' || c == '/';
        if (plain) {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xf];
        }
    }
    out += '?';
    out += params;
    return out;
}

std::string column_text(sqlite3_stmt* st, int col) {
    const unsigned char* p = sqlite3_column_text(st, col);
    const int n = sqlite3_column_bytes(st, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n)) : std::string();
}

SqlError load_table(sqlite3* db, Table& out) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db, "SELECT family, key, value FROM kv", -1, &st, nullptr);
    if (rc != SQLITE_OK) return error_of(db, rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        out.insert_or_assign(Key{column_text(st, 0), column_text(st, 1)}, column_text(st, 2));
    SqlError err;
    if (rc != SQLITE_DONE) err = error_of(db, rc);
    sqlite3_finalize(st);
    return err;
}

// PRAGMA quick_check: catches damage that reading the table alone may miss
// (an index, the free list), so that a damaged file is refused at startup
// rather than failing every write later.
SqlError quick_check(sqlite3* db) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, nullptr);
    if (rc != SQLITE_OK) return error_of(db, rc);
    SqlError err;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const std::string verdict = column_text(st, 0);
        if (verdict != "ok") err = {SQLITE_CORRUPT, "integrity check failed: " + verdict};
    } else {
        err = error_of(db, rc);
    }
    sqlite3_finalize(st);
    return err;
}

// Opens `name` with `flags` and loads the table through that connection.
SqlError load_with(const std::string& name, int flags, Table& out) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(name.c_str(), &db, flags, nullptr);
    SqlError err = rc == SQLITE_OK ? load_table(db, out) : error_of(db, rc);
    sqlite3_close_v2(db);
    if (err) out.clear();
    return err;
}

// Loads a database this process may read but not write. A WAL database needs
// a writable "-shm" file beside it to be read normally; when there is none
// and no "-wal" file holds unmerged commits, the main file alone is the whole
// database and may be read as immutable.
SqlError load_read_only(const fs::path& file, Table& out) {
    const int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
    SqlError err = load_with(file_uri(file, "mode=ro"), flags, out);
    if (!err || (err.code != SQLITE_CANTOPEN && err.code != SQLITE_READONLY)) return err;
    fs::path wal = file;
    wal += "-wal";
    std::error_code ec;
    const auto wal_size = fs::file_size(wal, ec);
    if (!ec && wal_size > 0) return err;
    return load_with(file_uri(file, "mode=ro&immutable=1"), flags, out);
}

bool is_write_protection(int code) {
    return code == SQLITE_READONLY || code == SQLITE_CANTOPEN || code == SQLITE_PERM;
}

// The read-write connection. After KvStore::open() hands it over, only the
// writer thread touches it.
class Connection {
public:
    Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;
    ~Connection() { close(); }

    bool is_open() const { return db_ != nullptr; }
    sqlite3* handle() const { return db_; }

    // Opens `file` for writing and prepares it (WAL, synchronous=NORMAL, the
    // kv table, the statements). `create` allows creating a missing file.
    SqlError connect(const fs::path& file, const KvStoreOptions& options, bool create) {
        close();
        int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
        if (create) flags |= SQLITE_OPEN_CREATE;
        const int rc = sqlite3_open_v2(file.c_str(), &db_, flags, nullptr);
        if (rc != SQLITE_OK) return fail(rc);
        if (sqlite3_db_readonly(db_, "main") == 1) {
            close();
            return {SQLITE_READONLY, "the file is read-only for this process"};
        }
        const auto busy = std::clamp<milliseconds::rep>(options.busy_timeout.count(), 0, 3600000);
        sqlite3_busy_timeout(db_, static_cast<int>(busy));

        std::string mode;
        if (SqlError e = pragma("PRAGMA journal_mode=WAL", mode)) return fail(e);
        if (mode != "wal") {
            close();
            return {SQLITE_ERROR, "cannot switch to WAL journal mode (still '" + mode + "')"};
        }
        if (SqlError e = pragma("PRAGMA synchronous=NORMAL", mode)) return fail(e);
        if (SqlError e = exec("CREATE TABLE IF NOT EXISTS kv(family TEXT, key TEXT, value TEXT, "
                              "PRIMARY KEY(family,key))"))
            return fail(e);
        if (SqlError e = prepare("INSERT INTO kv(family, key, value) VALUES(?1, ?2, ?3) "
                                 "ON CONFLICT(family, key) DO UPDATE SET value = excluded.value",
                                 upsert_))
            return fail(e);
        if (SqlError e = prepare("DELETE FROM kv WHERE family = ?1 AND key = ?2", erase_)) return fail(e);
        return {};
    }

    // Applies `batch` in one transaction; all or nothing. After an error
    // other than a lock conflict the connection is closed, so that the next
    // attempt opens the file afresh (it may have been fixed or replaced).
    SqlError write(const fs::path& file, const KvStoreOptions& options, const Batch& batch) {
        if (!is_open()) {
            if (SqlError e = connect(file, options, false)) return e;
        }
        if (SqlError e = exec("BEGIN IMMEDIATE")) return abort(e);
        for (const auto& [k, v] : batch) {
            sqlite3_stmt* st = v ? upsert_ : erase_;
            bind(st, 1, k.family);
            bind(st, 2, k.key);
            if (v) bind(st, 3, *v);
            const int rc = sqlite3_step(st);
            SqlError e = rc == SQLITE_DONE ? SqlError{} : error_of(db_, rc);
            sqlite3_reset(st);
            if (e) return abort(e);
        }
        if (SqlError e = exec("COMMIT")) return abort(e);
        return {};
    }

    void close() {
        sqlite3_finalize(upsert_);
        sqlite3_finalize(erase_);
        upsert_ = erase_ = nullptr;
        sqlite3_close_v2(db_);
        db_ = nullptr;
    }

private:
    SqlError fail(int rc) { return fail(error_of(db_, rc)); }
    SqlError fail(SqlError e) {
        close();
        return e;
    }

    SqlError abort(SqlError e) {
        if (db_ && !sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        if (e.code != SQLITE_BUSY && e.code != SQLITE_LOCKED) close();
        return e;
    }

    SqlError exec(const char* sql) {
        const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
        return rc == SQLITE_OK ? SqlError{} : error_of(db_, rc);
    }

    // Runs a pragma and returns the first column of its first row, if any.
    SqlError pragma(const char* sql, std::string& result) {
        result.clear();
        sqlite3_stmt* st = nullptr;
        int rc = sqlite3_prepare_v2(db_, sql, -1, &st, nullptr);
        if (rc != SQLITE_OK) return error_of(db_, rc);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            if (result.empty()) result = column_text(st, 0);
        SqlError err = rc == SQLITE_DONE ? SqlError{} : error_of(db_, rc);
        sqlite3_finalize(st);
        return err;
    }

    SqlError prepare(const char* sql, sqlite3_stmt*& st) {
        const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
        return rc == SQLITE_OK ? SqlError{} : error_of(db_, rc);
    }

    // Input limits keep every length far below INT_MAX; the text outlives
    // the step, so SQLite need not copy it.
    static void bind(sqlite3_stmt* st, int index, const std::string& text) {
        sqlite3_bind_text(st, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
    }

    sqlite3* db_ = nullptr;
    sqlite3_stmt* upsert_ = nullptr;
    sqlite3_stmt* erase_ = nullptr;
};

}  // namespace

// --- the store ----------------------------------------------------------------

struct KvStore::Impl {
    Impl(fs::path file, const KvStoreOptions& opts) : path(std::move(file)), options(opts), where(quoted(path)) {}

    const fs::path path;
    const KvStoreOptions options;
    const std::string where;  // the path, quoted, for messages

    mutable WriterFirstMutex data_mu;
    Table data;  // guarded by data_mu

    // Guarded by q_mu.
    mutable std::mutex q_mu;
    std::condition_variable writer_cv;   // work queued, or stop requested
    std::condition_variable flushed_cv;  // durable_seq advanced, or writer exited
    Batch queue;                         // changes waiting for the next transaction
    // The changes in the transaction being written. Only the writer thread
    // changes it, always under q_mu; while it writes, it reads it unlocked
    // and other threads may only read it (under q_mu).
    Batch writing;
    std::size_t overlap = 0;        // keys in both `queue` and `writing`
    std::uint64_t queued_seq = 0;   // counts every change ever queued
    std::uint64_t durable_seq = 0;  // queued_seq as of the last committed batch
    bool failing = false;
    milliseconds backoff{0};
    Clock::time_point retry_at{};
    std::string last_error;
    bool stopping = false;
    Clock::time_point stop_deadline{};
    bool writer_exited = false;

    std::mutex cb_mu;
    ErrorCallback callback;  // guarded by cb_mu

    Connection conn;  // the writer thread's, once started
    std::thread thread;

    // Queues changes. The caller holds data_mu exclusively, so the queue
    // sees the changes to one key in the order the table did.
    void enqueue(Key key, std::optional<std::string> value) {
        std::lock_guard lock(q_mu);
        const bool was_idle = queue.empty();
        stage(std::move(key), std::move(value));
        if (was_idle) writer_cv.notify_one();
    }

    void enqueue_deletes(std::vector<Key>& keys) {
        if (keys.empty()) return;
        std::lock_guard lock(q_mu);
        const bool was_idle = queue.empty();
        for (Key& k : keys) stage(std::move(k), std::nullopt);
        if (was_idle) writer_cv.notify_one();
    }

    // With q_mu held.
    void stage(Key key, std::optional<std::string> value) {
        const auto [it, inserted] = queue.insert_or_assign(std::move(key), std::move(value));
        if (inserted && writing.contains(it->first)) ++overlap;
        ++queued_seq;
    }

    // Distinct keys with changes not yet committed. With q_mu held.
    std::size_t uncommitted() const { return queue.size() + writing.size() - overlap; }

    void report(const std::string& message) {
        std::lock_guard lock(cb_mu);
        if (!callback) {
            std::fprintf(stderr, "%s\n", message.c_str());
            return;
        }
        try {
            callback(message);
        } catch (...) {
            // A failing reporter must not take the writer thread down.
        }
    }

    void run() {
        std::unique_lock lock(q_mu);
        for (;;) {
            if (queue.empty()) {
                if (stopping) break;
                writer_cv.wait(lock);
                continue;
            }
            if (stopping && failing && Clock::now() >= stop_deadline) {
                const std::string message = "kvstore: shutting down with " + std::to_string(queue.size()) +
                                            " change(s) not saved to " + where + " after retrying for " +
                                            std::to_string(options.shutdown_timeout.count()) + " ms: " + last_error;
                lock.unlock();
                report(message);
                lock.lock();
                break;
            }
            if (Clock::now() < retry_at) {
                writer_cv.wait_until(lock, stopping ? std::min(retry_at, stop_deadline) : retry_at);
                continue;
            }

            writing.swap(queue);  // `writing` was empty: this empties the queue
            overlap = 0;
            const std::uint64_t seq = queued_seq;
            lock.unlock();
            SqlError err = conn.write(path, options, writing);
            lock.lock();

            if (!err) {
                Batch written;
                written.swap(writing);
                overlap = 0;
                durable_seq = seq;
                failing = false;
                backoff = milliseconds{0};
                retry_at = {};
                flushed_cv.notify_all();
                lock.unlock();
                written.clear();  // free a large batch without holding up put()
                lock.lock();
                continue;
            }
            // Keep the batch; a newer change to the same key, queued while
            // the batch was being written, wins (merge() skips those).
            queue.merge(writing);
            writing.clear();
            overlap = 0;
            const milliseconds floor{1};
            const milliseconds cap = std::max(options.retry_max, floor);
            backoff = !failing ? std::clamp(options.retry_initial, floor, cap) : backoff > cap / 2 ? cap : backoff * 2;
            failing = true;
            retry_at = deadline_after(backoff);
            last_error = err.message;
            const std::string message = "kvstore: cannot save " + std::to_string(queue.size()) + " change(s) to " +
                                        where + ": " + err.message + "; keeping them queued, retrying in " +
                                        std::to_string(backoff.count()) + " ms";
            lock.unlock();
            report(message);
            lock.lock();
        }
        writer_exited = true;
        flushed_cv.notify_all();
    }

    bool wait_durable(std::optional<milliseconds> timeout) {
        std::unique_lock lock(q_mu);
        const std::uint64_t target = queued_seq;
        const auto done = [&] { return durable_seq >= target || writer_exited; };
        if (timeout)
            flushed_cv.wait_until(lock, deadline_after(*timeout), done);
        else
            flushed_cv.wait(lock, done);
        return durable_seq >= target;
    }

    void shutdown() {
        {
            std::lock_guard lock(q_mu);
            stopping = true;
            stop_deadline = deadline_after(options.shutdown_timeout);
            retry_at = {};  // one immediate attempt, whatever the backoff
            writer_cv.notify_one();
        }
        if (thread.joinable()) thread.join();
        conn.close();
    }
};

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KvStore::~KvStore() {
    if (impl_) impl_->shutdown();
}

std::unique_ptr<KvStore> KvStore::open(const fs::path& db_file, std::string& error) {
    return open(db_file, KvStoreOptions{}, error);
}

std::unique_ptr<KvStore> KvStore::open(const fs::path& db_file, const KvStoreOptions& options, std::string& error) {
    error.clear();
    if (db_file.empty()) {
        error = "kvstore: no database file given";
        return nullptr;
    }
    if (const fs::path dir = db_file.parent_path(); !dir.empty()) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) {
            error = "kvstore: cannot open " + quoted(db_file) + ": cannot create directory " + quoted(dir) + ": " +
                    ec.message();
            return nullptr;
        }
    }

    auto impl = std::make_unique<Impl>(db_file, options);
    SqlError err = impl->conn.connect(db_file, options, true);
    if (!err) err = quick_check(impl->conn.handle());
    if (!err) err = load_table(impl->conn.handle(), impl->data);
    if (err) {
        impl->conn.close();
        impl->data.clear();
        std::error_code ec;
        if (!is_write_protection(err.code) || !fs::is_regular_file(db_file, ec)) {
            error = "kvstore: cannot open " + quoted(db_file) + ": " + err.message;
            return nullptr;
        }
        // Readable but not writable: serve what is there; the writer thread
        // reports each write it cannot save and retries until it can.
        if (SqlError ro = load_read_only(db_file, impl->data)) {
            error = "kvstore: cannot open " + quoted(db_file) + ": " + err.message;
            if (ro.message != err.message) error += "; read-only: " + ro.message;
            return nullptr;
        }
    }

    Impl* raw = impl.get();
    std::unique_ptr<KvStore> store(new KvStore(std::move(impl)));
    try {
        raw->thread = std::thread([raw] {
            pthread_setname_np(pthread_self(), "kvstore");
            raw->run();
        });
    } catch (const std::system_error& e) {
        error = "kvstore: cannot start the writer thread for " + quoted(db_file) + ": " + e.what();
        return nullptr;
    }
    return store;
}

std::optional<std::string> KvStore::get(std::string_view family, std::string_view key) const {
    if (!check_name(family, key).empty()) return std::nullopt;
    std::shared_lock lock(impl_->data_mu);
    const auto it = impl_->data.find(KeyView{family, key});
    if (it == impl_->data.end()) return std::nullopt;
    return it->second;
}

bool KvStore::exists(std::string_view family, std::string_view key) const {
    if (!check_name(family, key).empty()) return false;
    std::shared_lock lock(impl_->data_mu);
    return impl_->data.find(KeyView{family, key}) != impl_->data.end();
}

std::vector<KvStore::Entry> KvStore::list(std::string_view family) const {
    std::vector<Entry> out;
    const auto add = [&out](const Key& k, const std::string& value) {
        std::string path;
        path.reserve(path_size(k.view()) + 1);
        path += '/';
        path += k.family;
        path += '/';
        path += k.key;
        out.emplace_back(std::move(path), value);
    };
    std::shared_lock lock(impl_->data_mu);
    const Table& data = impl_->data;
    if (family.empty()) {
        out.reserve(data.size());
        for (const auto& [k, v] : data) add(k, v);
        return out;
    }
    // Everything in or below `family` has a path starting "family/", and
    // such paths are contiguous in the table's order.
    const KeyView start{family, {}};
    for (auto it = data.lower_bound(start); it != data.end() && path_starts_with(it->first.view(), start); ++it) {
        if (family_in_tree(it->first.family, family)) add(it->first, it->second);
    }
    return out;
}

bool KvStore::put(std::string_view family, std::string_view key, std::string_view value, std::string* error) {
    std::string why = check_name(family, key);
    if (why.empty()) why = check_text("value", value, max_value_size, true);
    if (!why.empty()) {
        if (error) *error = std::move(why);
        return false;
    }
    if (error) error->clear();

    Key queued{std::string(family), std::string(key)};
    std::optional<std::string> queued_value{std::in_place, value};
    std::unique_lock lock(impl_->data_mu);
    const auto it = impl_->data.find(KeyView{family, key});
    if (it != impl_->data.end()) {
        // Memory is what SQLite holds plus the queue, so an equal value is
        // already saved or on its way.
        if (it->second == value) return true;
        it->second.assign(value);
    } else {
        impl_->data.emplace(queued, std::string(value));
    }
    impl_->enqueue(std::move(queued), std::move(queued_value));
    return true;
}

bool KvStore::del(std::string_view family, std::string_view key) {
    if (!check_name(family, key).empty()) return false;
    std::unique_lock lock(impl_->data_mu);
    const auto it = impl_->data.find(KeyView{family, key});
    if (it == impl_->data.end()) return false;
    auto node = impl_->data.extract(it);
    impl_->enqueue(std::move(node.key()), std::nullopt);
    return true;
}

std::size_t KvStore::del_tree(std::string_view family, std::string_view key_prefix) {
    if (!check_text("family", family, max_family_size, false).empty()) return 0;
    std::vector<Key> removed;
    std::unique_lock lock(impl_->data_mu);
    Table& data = impl_->data;
    // Both kinds of subtree lie within the paths that start "family/key_prefix".
    const KeyView start{family, key_prefix};
    auto it = data.lower_bound(start);
    while (it != data.end() && path_starts_with(it->first.view(), start)) {
        const Key& k = it->first;
        const bool match = key_prefix.empty() ? family_in_tree(k.family, family)
                                              : (k.family == family && k.key.starts_with(key_prefix));
        if (match)
            removed.push_back(std::move(data.extract(it++).key()));
        else
            ++it;
    }
    impl_->enqueue_deletes(removed);
    return removed.size();
}

void KvStore::flush() {
    impl_->wait_durable(std::nullopt);
}

bool KvStore::flush_for(milliseconds timeout) {
    return impl_->wait_durable(timeout);
}

std::size_t KvStore::pending() const {
    std::lock_guard lock(impl_->q_mu);
    return impl_->uncommitted();
}

void KvStore::on_error(ErrorCallback callback) {
    std::lock_guard lock(impl_->cb_mu);
    impl_->callback = std::move(callback);
}

const fs::path& KvStore::path() const {
    return impl_->path;
}

}  // namespace tandem
