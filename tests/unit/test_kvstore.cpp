// Unit tests for tandem::KvStore, the SQLite-backed store behind ${DB(...)}.
// Every test works on real files in its own temporary directory.
#include <doctest/doctest.h>

#include <tandem/kvstore.hpp>

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using tandem::KvStore;
using tandem::KvStoreOptions;

namespace {

// A unique scratch directory under the system temp dir, removed on scope exit
// (permissions restored first, so a test that write-protected it cannot
// leave it behind).
class TempDir {
public:
    TempDir() {
        static std::atomic<unsigned> counter{0};
        std::random_device rd;
        const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        root_ = fs::temp_directory_path() / ("tandem-kvstore-test-" + std::to_string(rd()) + "-" +
                                             std::to_string(stamp) + "-" + std::to_string(counter++));
        fs::create_directories(root_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add, ec);
        for (auto it = fs::recursive_directory_iterator(root_, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec))
            fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(root_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const fs::path& root() const { return root_; }
    fs::path operator/(const std::string& rel) const { return root_ / rel; }

private:
    fs::path root_;
};

// Collects the reports a store sends from its writer thread. Declare it
// before the store: the store's destructor may still report.
class ErrorLog {
public:
    KvStore::ErrorCallback callback() {
        return [this](const std::string& message) {
            std::lock_guard lock(mu_);
            messages_.push_back(message);
            cv_.notify_all();
        };
    }
    // Waits until at least `n` reports have arrived; false on timeout.
    bool wait_for(std::size_t n, milliseconds timeout) {
        std::unique_lock lock(mu_);
        return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
    }
    std::vector<std::string> messages() const {
        std::lock_guard lock(mu_);
        return messages_;
    }
    std::size_t count() const {
        std::lock_guard lock(mu_);
        return messages_.size();
    }

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::string> messages_;
};

// A second, independent connection to a store's file, as another process
// (the sqlite3 shell, a backup script) would have.
class RawDb {
public:
    explicit RawDb(const fs::path& file) {
        REQUIRE(sqlite3_open(file.c_str(), &db_) == SQLITE_OK);
        sqlite3_busy_timeout(db_, 3000);
    }
    ~RawDb() { sqlite3_close(db_); }
    RawDb(const RawDb&) = delete;
    RawDb& operator=(const RawDb&) = delete;

    void exec(const std::string& sql) {
        char* msg = nullptr;
        const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
        const std::string text = msg ? msg : "";
        sqlite3_free(msg);
        INFO(sql << ": " << text);
        REQUIRE(rc == SQLITE_OK);
    }

    // The first column of the first row, or nullopt when there is no row.
    std::optional<std::string> scalar(const std::string& sql, const std::vector<std::string>& params = {}) {
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
        for (std::size_t i = 0; i < params.size(); ++i)
            sqlite3_bind_text(st, static_cast<int>(i + 1), params[i].data(), static_cast<int>(params[i].size()),
                              SQLITE_TRANSIENT);
        std::optional<std::string> out;
        const int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
            out = std::string(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(st, 0)));
        }
        sqlite3_finalize(st);
        CHECK((rc == SQLITE_ROW || rc == SQLITE_DONE));
        return out;
    }

    std::optional<std::string> value(const std::string& family, const std::string& key) {
        return scalar("SELECT value FROM kv WHERE family = ?1 AND key = ?2", {family, key});
    }

private:
    sqlite3* db_ = nullptr;
};

// Short delays so that failure tests finish quickly.
KvStoreOptions fast_options() {
    KvStoreOptions o;
    o.busy_timeout = 10ms;
    o.retry_initial = 20ms;
    o.retry_max = 80ms;
    o.shutdown_timeout = 2000ms;
    return o;
}

std::unique_ptr<KvStore> open_ok(const fs::path& file, const KvStoreOptions& options = fast_options()) {
    std::string error;
    auto store = KvStore::open(file, options, error);
    INFO("open error: " << error);
    REQUIRE(store != nullptr);
    CHECK(error.empty());
    return store;
}

std::vector<std::string> paths(const std::vector<KvStore::Entry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.first);
    return out;
}

// The delay announced in a failure report ("... retrying in 40 ms"), or -1.
long retry_delay(const std::string& message) {
    const auto at = message.rfind("retrying in ");
    if (at == std::string::npos) return -1;
    return std::stol(message.substr(at + 12));
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

void write_bytes(const fs::path& file, const std::string& bytes) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << bytes;
}

std::string read_bytes(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("kvstore: default options follow the documented retry policy") {
    const KvStoreOptions o;
    CHECK(o.retry_initial == 100ms);
    CHECK(o.retry_max == 5000ms);
    CHECK(o.busy_timeout > 0ms);
    CHECK(o.shutdown_timeout > 0ms);
}

TEST_CASE("kvstore: put, get, exists and del") {
    TempDir dir;
    const fs::path file = dir / "var/lib/tandem/astdb.sqlite3";
    auto store = open_ok(file);
    CHECK(fs::is_regular_file(file));  // parent directories were created
    CHECK(store->path() == file);

    CHECK_FALSE(store->get("dnd", "1001").has_value());
    CHECK_FALSE(store->exists("dnd", "1001"));

    CHECK(store->put("dnd", "1001", "on"));
    CHECK(store->get("dnd", "1001") == "on");
    CHECK(store->exists("dnd", "1001"));

    std::string error = "stale";
    CHECK(store->put("dnd", "1001", "off", &error));
    CHECK(error.empty());
    CHECK(store->get("dnd", "1001") == "off");

    CHECK(store->put("cfwd", "1002", ""));  // an empty value is a value
    CHECK(store->exists("cfwd", "1002"));
    CHECK(store->get("cfwd", "1002") == "");

    CHECK(store->del("dnd", "1001"));
    CHECK_FALSE(store->del("dnd", "1001"));
    CHECK_FALSE(store->get("dnd", "1001").has_value());
    CHECK_FALSE(store->exists("dnd", "1001"));
    CHECK_FALSE(store->del("nosuch", "key"));

    CHECK(store->flush_for(5s));
    CHECK(store->pending() == 0);
    RawDb raw(file);
    CHECK(raw.value("cfwd", "1002") == "");
    CHECK_FALSE(raw.value("dnd", "1001").has_value());
}

TEST_CASE("kvstore: list is sorted by /family/key and selects a family tree") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    const std::vector<std::string> everything = {
        "/A/z", "/CFWD-old/x", "/CFWD/1000", "/CFWD/1001", "/CFWD/busy/1001", "/CFWD2/1001", "/DND/1001",
    };
    {
        auto store = open_ok(file);
        CHECK(store->list().empty());
        REQUIRE(store->put("DND", "1001", "1"));
        REQUIRE(store->put("CFWD", "1001", "2000"));
        REQUIRE(store->put("CFWD2", "1001", "x"));
        REQUIRE(store->put("CFWD/busy", "1001", "3000"));
        REQUIRE(store->put("CFWD", "1000", "2001"));
        REQUIRE(store->put("CFWD-old", "x", "y"));
        REQUIRE(store->put("A", "z", "last"));

        const auto all = store->list();
        CHECK(paths(all) == everything);
        CHECK(all.front().second == "last");

        const auto cfwd = store->list("CFWD");
        CHECK(paths(cfwd) == std::vector<std::string>{"/CFWD/1000", "/CFWD/1001", "/CFWD/busy/1001"});
        CHECK(cfwd[1].second == "2000");
        CHECK(paths(store->list("CFWD/busy")) == std::vector<std::string>{"/CFWD/busy/1001"});
        CHECK(store->list("CF").empty());  // a family is matched whole, not as a prefix
        CHECK(store->list("ZZZ").empty());
    }
    auto reopened = open_ok(file);
    CHECK(paths(reopened->list()) == everything);
}

TEST_CASE("kvstore: keys whose paths read the same stay distinct") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    {
        auto store = open_ok(file);
        REQUIRE(store->put("a", "b/c", "key with a slash"));
        REQUIRE(store->put("a/b", "c", "sub-family"));
        CHECK(store->get("a", "b/c") == "key with a slash");
        CHECK(store->get("a/b", "c") == "sub-family");
        CHECK(store->list().size() == 2);
        CHECK(store->list("a").size() == 2);
        const auto sub = store->list("a/b");
        REQUIRE(sub.size() == 1);
        CHECK(sub[0].second == "sub-family");
    }
    auto store = open_ok(file);
    CHECK(store->get("a", "b/c") == "key with a slash");
    CHECK(store->get("a/b", "c") == "sub-family");
    CHECK(store->del("a", "b/c"));
    CHECK(store->get("a/b", "c") == "sub-family");
}

TEST_CASE("kvstore: del_tree removes a family tree or a key prefix") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    {
        auto store = open_ok(file);
        for (const char* key : {"1001/device", "1001/since", "10010/device", "1002/device"})
            REQUIRE(store->put("hotdesk", key, "v"));
        REQUIRE(store->put("hotdesk/archive", "x", "v"));
        REQUIRE(store->put("hotdesk2", "y", "v"));

        CHECK(store->del_tree("hotdesk", "1001/") == 2);
        CHECK_FALSE(store->exists("hotdesk", "1001/device"));
        CHECK_FALSE(store->exists("hotdesk", "1001/since"));
        CHECK(store->exists("hotdesk", "10010/device"));
        CHECK(store->del_tree("hotdesk", "nomatch") == 0);
        CHECK(store->del_tree("hotdesk", "archive") == 0);  // a sub-family is not a key prefix
        CHECK(store->del_tree("missing") == 0);
        CHECK(store->del_tree("") == 0);

        CHECK(store->del_tree("hotdesk") == 3);  // 10010/device, 1002/device, archive/x
        CHECK(paths(store->list()) == std::vector<std::string>{"/hotdesk2/y"});
    }
    auto store = open_ok(file);
    CHECK(paths(store->list()) == std::vector<std::string>{"/hotdesk2/y"});
}

TEST_CASE("kvstore: data survives close and reopen") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    const std::string long_key(KvStore::max_key_size, 'k');
    std::string big_value(KvStore::max_value_size, 'x');
    big_value.front() = '<';
    big_value.back() = '>';
    const std::vector<std::pair<std::string, std::string>> odd = {
        {"quote", "it's \"quoted\""},
        {"sql", "'); DROP TABLE kv; --"},
        {"utf8",
         "Gr\xc3\xbc\xc3\x9f"
         "e \xe2\x98\x8e"},
        {"bytes", "\x01\x7f\xfe\xff"},
        {long_key, big_value},
    };
    {
        auto store = open_ok(file);
        for (int i = 0; i < 100; ++i) REQUIRE(store->put("ext", std::to_string(i), "v" + std::to_string(i)));
        REQUIRE(store->put("ext", "7", "changed"));
        REQUIRE(store->del("ext", "8"));
        CHECK(store->del_tree("ext", "9") == 11);  // 9, 90..99
        for (const auto& [key, value] : odd) REQUIRE(store->put("odd", key, value));
        // No flush: the destructor must save everything.
    }
    auto store = open_ok(file);
    CHECK(store->get("ext", "0") == "v0");
    CHECK(store->get("ext", "89") == "v89");
    CHECK(store->get("ext", "7") == "changed");
    CHECK_FALSE(store->exists("ext", "8"));
    CHECK_FALSE(store->exists("ext", "9"));
    CHECK_FALSE(store->exists("ext", "95"));
    CHECK(store->list("ext").size() == 88);
    for (const auto& entry : odd) {
        INFO("key " << entry.first);
        CHECK(store->get("odd", entry.first) == entry.second);
    }

    RawDb raw(file);
    CHECK(raw.scalar("PRAGMA journal_mode") == "wal");
    CHECK(raw.scalar("SELECT count(*) FROM kv") == "93");
}

TEST_CASE("kvstore: rows already in the file are loaded") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    {
        RawDb raw(file);
        raw.exec("CREATE TABLE kv(family TEXT, key TEXT, value TEXT, PRIMARY KEY(family,key))");
        raw.exec("INSERT INTO kv VALUES('nightmode', 'main', 'on'), ('dnd', '1001', 'yes')");
    }
    auto store = open_ok(file);
    CHECK(store->get("nightmode", "main") == "on");
    CHECK(paths(store->list()) == std::vector<std::string>{"/dnd/1001", "/nightmode/main"});
    CHECK(store->pending() == 0);
    RawDb raw(file);
    CHECK(raw.scalar("PRAGMA journal_mode") == "wal");  // switched on open
}

TEST_CASE("kvstore: flush makes changes visible to another connection") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    auto store = open_ok(file);
    RawDb raw(file);

    REQUIRE(store->put("dnd", "1001", "on"));
    store->flush();
    CHECK(store->pending() == 0);
    CHECK(raw.value("dnd", "1001") == "on");

    REQUIRE(store->put("dnd", "1001", "off"));
    REQUIRE(store->put("dnd", "1002", "on"));
    REQUIRE(store->del("dnd", "1002"));
    store->flush();
    CHECK(raw.value("dnd", "1001") == "off");
    CHECK_FALSE(raw.value("dnd", "1002").has_value());

    store->flush();  // nothing queued: returns at once
    CHECK(store->flush_for(0ms));
}

TEST_CASE("kvstore: a read sees its write at once, before it is saved") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    ErrorLog errors;
    auto store = open_ok(file);
    store->on_error(errors.callback());
    REQUIRE(store->put("keep", "me", "1"));
    store->flush();

    RawDb raw(file);
    raw.exec("BEGIN EXCLUSIVE");  // nothing the store writes can land now

    REQUIRE(store->put("dnd", "1001", "on"));
    CHECK(store->get("dnd", "1001") == "on");
    REQUIRE(store->put("dnd", "1001", "off"));
    REQUIRE(store->put("dnd", "1001", "on again"));
    CHECK(store->get("dnd", "1001") == "on again");
    CHECK(store->pending() == 1);  // changes to one key collapse
    CHECK(store->del("keep", "me"));
    CHECK_FALSE(store->exists("keep", "me"));
    CHECK(store->pending() == 2);
    CHECK_FALSE(store->flush_for(30ms));
    CHECK_FALSE(raw.value("dnd", "1001").has_value());  // really not saved yet

    raw.exec("COMMIT");
    CHECK(store->flush_for(5s));
    CHECK(store->pending() == 0);
    CHECK(raw.value("dnd", "1001") == "on again");
    CHECK_FALSE(raw.value("keep", "me").has_value());
}

TEST_CASE("kvstore: concurrent writers and readers, then reopen") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    constexpr int writers = 8;
    constexpr int keys_per_writer = 250;
    const auto expected_value = [](int w, int k) { return "w" + std::to_string(w) + ":" + std::to_string(k); };
    const auto deleted = [](int k) { return k % 5 == 0; };
    {
        auto store = open_ok(file);
        std::atomic<int> bad_reads{0};
        std::atomic<int> bad_writes{0};
        std::atomic<bool> done{false};

        std::vector<std::thread> threads;
        for (int w = 0; w < writers; ++w) {
            threads.emplace_back([&, w] {
                const std::string family = "t" + std::to_string(w);
                for (int k = 0; k < keys_per_writer; ++k) {
                    const std::string key = std::to_string(k);
                    if (!store->put(family, key, "draft")) ++bad_writes;
                    if (!store->put(family, key, expected_value(w, k))) ++bad_writes;
                    if (store->get(family, key) != expected_value(w, k)) ++bad_reads;
                    if (deleted(k) && !store->del(family, key)) ++bad_writes;
                }
            });
        }
        for (int r = 0; r < 4; ++r) {
            threads.emplace_back([&, r] {
                std::mt19937 rng(static_cast<unsigned>(r));
                while (!done.load()) {
                    const int w = static_cast<int>(rng() % writers);
                    const int k = static_cast<int>(rng() % keys_per_writer);
                    const auto v = store->get("t" + std::to_string(w), std::to_string(k));
                    if (v && *v != "draft" && *v != expected_value(w, k)) ++bad_reads;
                    for (const auto& [path, value] : store->list("t" + std::to_string(w)))
                        if (value != "draft" && !contains(value, "w" + std::to_string(w) + ":")) ++bad_reads;
                    (void)store->pending();
                    if (rng() % 64 == 0) (void)store->flush_for(1ms);
                }
            });
        }
        for (int w = 0; w < writers; ++w) threads[static_cast<std::size_t>(w)].join();
        done = true;
        for (std::size_t i = writers; i < threads.size(); ++i) threads[i].join();

        CHECK(bad_reads.load() == 0);
        CHECK(bad_writes.load() == 0);
        store->flush();
        CHECK(store->pending() == 0);
    }
    auto store = open_ok(file);
    int missing = 0;
    int resurrected = 0;
    for (int w = 0; w < writers; ++w) {
        for (int k = 0; k < keys_per_writer; ++k) {
            const auto v = store->get("t" + std::to_string(w), std::to_string(k));
            if (deleted(k) && v) ++resurrected;
            if (!deleted(k) && v != expected_value(w, k)) ++missing;
        }
    }
    CHECK(missing == 0);
    CHECK(resurrected == 0);
    CHECK(store->list().size() == static_cast<std::size_t>(writers * keys_per_writer * 4 / 5));
}

TEST_CASE("kvstore: failed writes are reported, kept and retried until they land") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    KvStoreOptions options;  // the default 100 ms .. 5 s retry policy
    options.busy_timeout = 10ms;
    ErrorLog errors;
    auto store = open_ok(file, options);
    store->on_error(errors.callback());

    RawDb raw(file);
    raw.exec("BEGIN EXCLUSIVE");
    REQUIRE(store->put("dnd", "1001", "on"));
    REQUIRE(store->put("cfwd", "1001", "2000"));

    REQUIRE(errors.wait_for(3, 3s));
    const auto messages = errors.messages();
    for (const auto& m : messages) {
        INFO(m);
        CHECK(contains(m, file.string()));
        CHECK(contains(m, "database is locked"));
    }
    CHECK(retry_delay(messages[0]) == 100);
    CHECK(retry_delay(messages[1]) == 200);
    CHECK(retry_delay(messages[2]) == 400);
    CHECK(store->pending() == 2);
    CHECK(store->get("dnd", "1001") == "on");
    CHECK_FALSE(store->flush_for(20ms));

    raw.exec("COMMIT");  // release the lock
    CHECK(store->flush_for(5s));
    CHECK(store->pending() == 0);
    CHECK(raw.value("dnd", "1001") == "on");
    CHECK(raw.value("cfwd", "1001") == "2000");

    store.reset();
    auto reopened = open_ok(file);
    CHECK(reopened->get("cfwd", "1001") == "2000");
}

TEST_CASE("kvstore: the retry delay doubles up to retry_max") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    KvStoreOptions options = fast_options();
    options.retry_initial = 10ms;
    options.retry_max = 40ms;
    options.busy_timeout = 1ms;
    ErrorLog errors;
    auto store = open_ok(file, options);
    store->on_error(errors.callback());

    RawDb raw(file);
    raw.exec("BEGIN EXCLUSIVE");
    REQUIRE(store->put("night", "mode", "on"));
    REQUIRE(errors.wait_for(6, 3s));
    raw.exec("ROLLBACK");

    const auto messages = errors.messages();
    std::vector<long> delays;
    for (std::size_t i = 0; i < 6; ++i) delays.push_back(retry_delay(messages[i]));
    CHECK(delays == std::vector<long>{10, 20, 40, 40, 40, 40});
    CHECK(store->flush_for(5s));
    CHECK(raw.value("night", "mode") == "on");
}

TEST_CASE("kvstore: a change made during a failing write is not undone by the retry") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    KvStoreOptions options = fast_options();
    options.busy_timeout = 200ms;  // the writer sits in its attempt for a while
    ErrorLog errors;
    auto store = open_ok(file, options);
    store->on_error(errors.callback());
    REQUIRE(store->put("gone", "soon", "1"));
    store->flush();

    RawDb raw(file);
    raw.exec("BEGIN EXCLUSIVE");
    REQUIRE(store->put("dnd", "1001", "first"));
    REQUIRE(store->put("gone", "soon", "2"));
    std::this_thread::sleep_for(50ms);  // most likely inside the failing attempt
    REQUIRE(store->put("dnd", "1001", "second"));
    REQUIRE(store->del("gone", "soon"));
    REQUIRE(errors.wait_for(1, 3s));
    raw.exec("COMMIT");

    CHECK(store->flush_for(5s));
    CHECK(raw.value("dnd", "1001") == "second");
    CHECK_FALSE(raw.value("gone", "soon").has_value());
    CHECK(store->get("dnd", "1001") == "second");
}

TEST_CASE("kvstore: shutdown stops retrying after shutdown_timeout and reports the loss") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    KvStoreOptions options = fast_options();
    options.shutdown_timeout = 300ms;
    ErrorLog errors;
    auto store = open_ok(file, options);
    store->on_error(errors.callback());

    RawDb raw(file);
    raw.exec("BEGIN EXCLUSIVE");
    REQUIRE(store->put("dnd", "1001", "on"));
    REQUIRE(errors.wait_for(1, 3s));

    const auto started = std::chrono::steady_clock::now();
    store.reset();
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took >= 250ms);
    CHECK(took < 2s);

    const auto messages = errors.messages();
    REQUIRE_FALSE(messages.empty());
    INFO(messages.back());
    CHECK(contains(messages.back(), "1 change(s) not saved"));
    CHECK(contains(messages.back(), file.string()));
    raw.exec("ROLLBACK");
}

TEST_CASE("kvstore: on_error can be replaced, and reports stop once it returns") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    ErrorLog first;
    ErrorLog second;
    auto store = open_ok(file);
    store->on_error(first.callback());

    RawDb raw(file);
    raw.exec("BEGIN EXCLUSIVE");
    REQUIRE(store->put("dnd", "1001", "on"));
    REQUIRE(first.wait_for(1, 3s));
    store->on_error(second.callback());
    const std::size_t first_count = first.count();
    REQUIRE(second.wait_for(1, 3s));
    CHECK(first.count() == first_count);
    raw.exec("COMMIT");
    CHECK(store->flush_for(5s));
}

TEST_CASE("kvstore: a read-only database serves reads and keeps writes queued") {
    if (::geteuid() == 0) {
        MESSAGE("skipped: file permissions do not bind root (see the BEGIN EXCLUSIVE tests)");
        return;
    }
    TempDir dir;
    const fs::path db_dir = dir / "ro";
    const fs::path file = db_dir / "kv.sqlite3";
    {
        auto store = open_ok(file);
        REQUIRE(store->put("dnd", "1001", "on"));
    }
    fs::permissions(file, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    fs::permissions(db_dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
    {
        ErrorLog errors;
        auto store = open_ok(file);
        store->on_error(errors.callback());
        CHECK(store->get("dnd", "1001") == "on");
        REQUIRE(store->put("dnd", "1002", "on"));
        CHECK(store->get("dnd", "1002") == "on");
        REQUIRE(errors.wait_for(1, 3s));
        INFO(errors.messages().front());
        CHECK(contains(errors.messages().front(), file.string()));
        CHECK(contains(errors.messages().front(), "read-only"));
        CHECK(store->pending() == 1);
        CHECK_FALSE(store->flush_for(50ms));

        // Fixing the permissions lets the queued change land.
        fs::permissions(db_dir, fs::perms::owner_all, fs::perm_options::add);
        fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
        CHECK(store->flush_for(5s));
        CHECK(store->pending() == 0);
    }
    auto store = open_ok(file);
    CHECK(store->get("dnd", "1002") == "on");
    store.reset();

    // A file that cannot even be read does not open.
    fs::permissions(file, fs::perms::none);
    std::string error;
    CHECK(KvStore::open(file, fast_options(), error) == nullptr);
    INFO(error);
    CHECK(contains(error, file.string()));
    fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
}

TEST_CASE("kvstore: a corrupt or unusable file is refused with a message naming it") {
    TempDir dir;
    std::string error;

    SUBCASE("junk bytes") {
        const fs::path file = dir / "junk.sqlite3";
        std::string junk;
        for (int i = 0; i < 8192; ++i) junk += static_cast<char>((i * 7919 + 13) % 251);
        write_bytes(file, junk);
        CHECK(KvStore::open(file, fast_options(), error) == nullptr);
        INFO(error);
        CHECK(contains(error, file.string()));
        CHECK(contains(error, "not a database"));
        CHECK(read_bytes(file) == junk);  // left untouched for inspection
    }
    SUBCASE("a valid header over a damaged body") {
        const fs::path file = dir / "damaged.sqlite3";
        {
            auto store = open_ok(file);
            for (int i = 0; i < 200; ++i) REQUIRE(store->put("f", std::to_string(i), std::string(200, 'v')));
        }
        std::string bytes = read_bytes(file);
        REQUIRE(bytes.size() > 8192);
        for (std::size_t i = 100; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ i);
        write_bytes(file, bytes);
        CHECK(KvStore::open(file, fast_options(), error) == nullptr);
        INFO(error);
        CHECK(contains(error, file.string()));
    }
    SUBCASE("a directory where the file should be") {
        const fs::path file = dir / "is-a-dir";
        fs::create_directories(file);
        CHECK(KvStore::open(file, fast_options(), error) == nullptr);
        INFO(error);
        CHECK(contains(error, file.string()));
    }
    SUBCASE("a parent directory that cannot be created") {
        write_bytes(dir / "plain-file", "x");
        const fs::path file = dir / "plain-file/sub/kv.sqlite3";
        CHECK(KvStore::open(file, fast_options(), error) == nullptr);
        INFO(error);
        CHECK(contains(error, file.string()));
    }
    SUBCASE("a table with the wrong shape") {
        const fs::path file = dir / "other.sqlite3";
        {
            RawDb raw(file);
            raw.exec("CREATE TABLE kv(name TEXT)");
        }
        CHECK(KvStore::open(file, fast_options(), error) == nullptr);
        INFO(error);
        CHECK(contains(error, file.string()));
        CHECK(contains(error, "column"));
    }
    SUBCASE("no path at all") {
        CHECK(KvStore::open(fs::path(), fast_options(), error) == nullptr);
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("kvstore: invalid input is rejected and nothing is stored") {
    TempDir dir;
    const fs::path file = dir / "kv.sqlite3";
    auto store = open_ok(file);
    using namespace std::string_literals;
    const std::string nul_text = "a\0b"s;
    const std::string long_name(KvStore::max_family_size + 1, 'n');
    const std::string long_value(KvStore::max_value_size + 1, 'v');

    std::string error;
    CHECK_FALSE(store->put("", "k", "v", &error));
    CHECK(contains(error, "family"));
    CHECK_FALSE(store->put("f", "", "v", &error));
    CHECK(contains(error, "key"));
    CHECK_FALSE(store->put(nul_text, "k", "v", &error));
    CHECK(contains(error, "NUL"));
    CHECK_FALSE(store->put("f", nul_text, "v", &error));
    CHECK(contains(error, "NUL"));
    CHECK_FALSE(store->put("f", "k", nul_text, &error));
    CHECK(contains(error, "value"));
    CHECK_FALSE(store->put(long_name, "k", "v", &error));
    CHECK(contains(error, "255"));
    CHECK_FALSE(store->put("f", std::string(KvStore::max_key_size + 1, 'k'), "v", &error));
    CHECK(contains(error, "key"));
    CHECK_FALSE(store->put("f", "k", long_value, &error));
    CHECK(contains(error, "65536"));
    CHECK_FALSE(store->put("", "k", "v"));  // no error out-parameter needed

    CHECK_FALSE(store->get("", "k").has_value());
    CHECK_FALSE(store->exists(nul_text, "k"));
    CHECK_FALSE(store->del("f", ""));
    CHECK(store->del_tree("") == 0);
    CHECK(store->del_tree(nul_text) == 0);
    CHECK(store->list().empty());
    CHECK(store->pending() == 0);

    // Exactly at the limits is fine.
    const std::string family(KvStore::max_family_size, 'f');
    const std::string key(KvStore::max_key_size, 'k');
    const std::string value(KvStore::max_value_size, 'v');
    CHECK(store->put(family, key, value, &error));
    CHECK(error.empty());
    CHECK(store->get(family, key) == value);
    store->flush();
    RawDb raw(file);
    CHECK(raw.scalar("SELECT count(*) FROM kv") == "1");
}
