// Registries and registration handles: how modules add things to the core.
//
// Everything a module registers (an application, a dialplan function, a CLI
// command, a channel technology, a CDR back-end, an event listener) goes into a
// Registry<T> and comes back as a move-only Registration. The module keeps the
// handle; dropping it removes the entry, so unloading a module can never leave
// anything of it behind. A lookup returns a Lease that pins the owning module:
// while any lease is alive the module refuses to unload.
//
// Threading: registries are safe to use from any thread. Lookups take a shared
// lock and copy one shared_ptr; they are meant for call set-up, not per frame.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem {

// Counts the live leases on everything one module registered. Owned by the
// core's module record; the core's own registrations use a record too.
struct ModuleUse {
    explicit ModuleUse(std::string n) : name(std::move(n)) {}
    std::string name;
    std::atomic<int> leases{0};
};

// A move-only handle; destroying it (or calling reset) unregisters.
class Registration {
public:
    Registration() = default;
    explicit Registration(std::function<void()> remove) : remove_(std::move(remove)) {}
    Registration(Registration&& o) noexcept : remove_(std::exchange(o.remove_, nullptr)) {}
    Registration& operator=(Registration&& o) noexcept {
        if (this != &o) {
            reset();
            remove_ = std::exchange(o.remove_, nullptr);
        }
        return *this;
    }
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration() { reset(); }

    void reset() noexcept {
        if (auto r = std::exchange(remove_, nullptr)) r();
    }
    explicit operator bool() const noexcept { return static_cast<bool>(remove_); }

private:
    std::function<void()> remove_;
};

// A lookup result that keeps the entry alive and its module loaded.
template <class T>
class Lease {
public:
    Lease() = default;
    Lease(std::shared_ptr<const T> item, ModuleUse* owner) : item_(std::move(item)), owner_(owner) {
        if (owner_) owner_->leases.fetch_add(1, std::memory_order_relaxed);
    }
    Lease(Lease&& o) noexcept : item_(std::move(o.item_)), owner_(std::exchange(o.owner_, nullptr)) {}
    Lease& operator=(Lease&& o) noexcept {
        if (this != &o) {
            release();
            item_ = std::move(o.item_);
            owner_ = std::exchange(o.owner_, nullptr);
        }
        return *this;
    }
    Lease(const Lease& o) : Lease(o.item_, o.owner_) {}
    Lease& operator=(const Lease& o) {
        if (this != &o) *this = Lease(o);
        return *this;
    }
    ~Lease() { release(); }

    const T* operator->() const noexcept { return item_.get(); }
    const T& operator*() const noexcept { return *item_; }
    explicit operator bool() const noexcept { return static_cast<bool>(item_); }
    const std::string& module() const {
        static const std::string none;
        return owner_ ? owner_->name : none;
    }

private:
    void release() noexcept {
        if (owner_) owner_->leases.fetch_sub(1, std::memory_order_relaxed);
        owner_ = nullptr;
        item_.reset();
    }
    std::shared_ptr<const T> item_;
    ModuleUse* owner_ = nullptr;
};

// Thrown by Registry::add when the name is taken.
struct DuplicateRegistration : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One registry per kind of extension point. Names are case-insensitive when
// the registry is created with `case_insensitive` (applications and functions
// are, as integrators expect from Asterisk).
template <class T>
class Registry {
public:
    explicit Registry(bool case_insensitive = false) : fold_(case_insensitive) {}
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    Registration add(std::string name, T item, ModuleUse* owner) {
        auto key = fold(name);
        {
            std::unique_lock lock(mu_);
            if (entries_.count(key)) throw DuplicateRegistration("'" + name + "' is already registered");
            entries_.emplace(key, Entry{std::move(name), std::make_shared<const T>(std::move(item)), owner});
            generation_.fetch_add(1, std::memory_order_release);
        }
        return Registration([this, key] {
            std::unique_lock lock(mu_);
            if (entries_.erase(key)) generation_.fetch_add(1, std::memory_order_release);
        });
    }

    Lease<T> find(std::string_view name) const {
        auto key = fold(name);
        std::shared_lock lock(mu_);
        auto it = entries_.find(key);
        if (it == entries_.end()) return {};
        return Lease<T>(it->second.item, it->second.owner);
    }

    bool contains(std::string_view name) const {
        auto key = fold(name);
        std::shared_lock lock(mu_);
        return entries_.count(key) != 0;
    }

    // Calls f(display_name, item, owner_name) for each entry, in name order.
    template <class F>
    void for_each(F&& f) const {
        std::vector<std::tuple<std::string, std::shared_ptr<const T>, std::string>> copy;
        {
            std::shared_lock lock(mu_);
            for (auto& [k, e] : entries_) copy.emplace_back(e.name, e.item, e.owner ? e.owner->name : std::string());
        }
        for (auto& [n, item, owner] : copy) f(n, *item, owner);
    }

    std::vector<std::string> names() const {
        std::vector<std::string> out;
        std::shared_lock lock(mu_);
        for (auto& [k, e] : entries_) out.push_back(e.name);
        return out;
    }

    size_t size() const {
        std::shared_lock lock(mu_);
        return entries_.size();
    }

    // Changes on every add and removal. Lets a cache built from the entries
    // (the translator graph's paths) tell cheaply that it is stale.
    std::uint64_t generation() const noexcept { return generation_.load(std::memory_order_acquire); }

private:
    struct Entry {
        std::string name;
        std::shared_ptr<const T> item;
        ModuleUse* owner;
    };
    std::string fold(std::string_view s) const {
        std::string k(s);
        if (fold_)
            for (auto& c : k) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        return k;
    }
    bool fold_;
    mutable std::shared_mutex mu_;
    std::map<std::string, Entry, std::less<>> entries_;
    std::atomic<std::uint64_t> generation_{0};
};

}  // namespace tandem
