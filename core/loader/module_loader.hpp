// The module loader: reads modules.conf, checks descriptors, orders modules by
// their declared dependencies, and loads, reloads and unloads them.
//
// The descriptor is read with dlsym and checked (magic, size, ABI tag) before
// any module function is called. Every call into a module is wrapped: an
// exception is reported with the module's name and never escapes.
#pragma once

#include <tandem/module.hpp>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tandem {

class CoreImpl;
class HostImpl;

struct ModuleInfo {
    std::string name, description, kind, path;
    std::vector<std::string> depends, optional;
    int use_count = 0;
    bool required = false;
};

class ModuleLoader {
public:
    explicit ModuleLoader(CoreImpl& core);
    ~ModuleLoader();

    // Loads what modules.conf asks for. Problems (declines, failures) are
    // appended; returns false only when a `require`d module failed.
    bool load_all(std::vector<std::string>& problems);
    // Loads one module by name ("chan_local", "chan_local.so") or by path.
    bool load(const std::string& name_or_path, std::string& message);
    // Refuses while the module is in use or needed by another loaded module.
    bool unload(const std::string& name, std::string& message);
    bool reload(const std::string& name, std::string& message);
    void reload_all(std::vector<std::string>& problems);
    void unload_all();

    std::vector<ModuleInfo> list() const;
    std::vector<std::string> available() const;  // .so files in the module directory
    std::size_t count() const;
    // Configuration problems modules reported through Host::config_error.
    std::vector<std::string> take_config_problems();

private:
    struct Loaded;
    struct Candidate;
    bool open_candidate(const std::string& name_or_path, Candidate& out, std::string& error);
    bool instantiate(Candidate& c, std::string& error);
    static std::string normalize(std::string name);

    CoreImpl& core_;
    mutable std::recursive_mutex mu_;
    // Set when the loops did not drain in time after an unload: later
    // unloads no longer wait for them (see module_loader.cpp).
    std::atomic<bool> loops_stuck_{false};
    std::vector<std::unique_ptr<Loaded>> loaded_;  // in load order
    std::vector<std::string> config_problems_;
    friend class HostImpl;
};

}  // namespace tandem
