#include "loader/module_loader.hpp"

#include "cli/server.hpp"
#include "runtime/core_impl.hpp"

#include <boost/asio/post.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fmt/format.h>
#include <set>

namespace fs = std::filesystem;

namespace tandem {

namespace {

// Sanitizer builds keep an unloaded module's code mapped (RTLD_NODELETE), so
// that a leak found at exit can still be traced to the module's source.
#ifdef TANDEM_SANITIZE
constexpr int kKeepCode = RTLD_NODELETE;
#else
constexpr int kKeepCode = 0;
#endif

std::vector<std::string> split_list(const char* s) {
    std::vector<std::string> out;
    if (!s) return out;
    std::string cur;
    for (const char* p = s;; ++p) {
        if (*p == ',' || *p == '\0') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
            if (!*p) break;
        } else if (*p != ' ') {
            cur.push_back(*p);
        }
    }
    return out;
}

// A module's code may still be needed after its object is gone: a handler it
// posted to a loop just before the unload, or the completion of a timer its
// destructor cancelled, can sit in a loop's queue, or a loop can still be
// returning from a handler of the module. Each loop runs its queue in order,
// so once every loop has run a marker posted now, nothing of the module is
// left and its code can be unmapped. (Timers still armed are not in a queue:
// the module must cancel them, and wait for them, before its unload returns.
// See docs/module-authoring.md.)
//
// Off the loops (the main thread at stop, a worker for `module unload`) the
// unload waits for the markers, so that the code is gone when it returns and
// the loops can be stopped at once. On a loop, whose own marker cannot run
// while it waits, or when the loops do not drain in time, the last marker
// unmaps the code; loops that stop first never run it, and the code then
// stays mapped until the process exits.
struct Drain {
    std::mutex mu;
    std::condition_variable done;
    std::size_t left = 0;
    bool marker_closes = false;  // the unloading thread gave up waiting
    void* handle = nullptr;
};

// `stuck` is shared by a loader's modules: once the loops failed to drain,
// the next unloads do not wait for them again.
void close_when_loops_drained(CoreImpl* core, void* handle, std::atomic<bool>* stuck) {
    std::size_t loops = core && core->loops_running() ? core->loop_count() : 0;
    if (loops == 0) {
        dlclose(handle);
        return;
    }
    bool on_a_loop = false;
    for (std::size_t i = 0; i < loops; ++i)
        on_a_loop = on_a_loop || core->loop(i).get_executor().running_in_this_thread();
    auto drain = std::make_shared<Drain>();
    drain->left = loops;
    drain->handle = handle;
    drain->marker_closes = on_a_loop || stuck->load();
    for (std::size_t i = 0; i < loops; ++i)
        boost::asio::post(core->loop(i), [drain] {
            std::lock_guard lock(drain->mu);
            if (--drain->left > 0) return;
            if (drain->marker_closes)
                dlclose(drain->handle);
            else
                drain->done.notify_all();
        });
    if (drain->marker_closes) return;
    std::unique_lock lock(drain->mu);
    if (drain->done.wait_for(lock, std::chrono::seconds(10), [&] { return drain->left == 0; })) {
        lock.unlock();
        dlclose(handle);
        return;
    }
    drain->marker_closes = true;
    stuck->store(true);
    core->log().warning("a module's code stays loaded: the event loops did not drain within 10 s");
}

}  // namespace

// What one module sees of the core.
class HostImpl final : public Host {
public:
    HostImpl(CoreImpl& core, ModuleLoader& loader, std::string name, ModuleUse& use)
        : core_(core), loader_(loader), name_(std::move(name)), use_(use), log_(core.log_sink(), name_) {}

    const std::string& module_name() const override { return name_; }
    Core& core() override { return core_; }
    Log& log() override { return log_; }
    bool checking() const override { return core_.options().checking; }

    config::ParseResult read_config(std::string_view file) override {
        auto path = core_.paths().config_dir / std::string(file);
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            config::ParseResult r;
            r.file.path = path.string();
            return r;
        }
        auto r = config::parse_file(path);
        for (auto& e : r.errors) config_error(e);
        return r;
    }
    void config_error(const config::Diagnostic& d) override {
        {
            std::lock_guard lock(loader_.mu_);
            loader_.config_problems_.push_back(d.str());
        }
        log_.error("{}", d.str());
    }

    Registration add(std::string name, Application app) override {
        return core_.applications().add(std::move(name), std::move(app), &use_);
    }
    Registration add(std::string name, Function fn) override {
        return core_.functions().add(std::move(name), std::move(fn), &use_);
    }
    Registration add(CliCommand cmd) override { return add_command(core_.cli_commands(), std::move(cmd), &use_); }
    Registration add(std::string name, ChannelTechnology tech) override {
        return core_.technologies().add(std::move(name), std::move(tech), &use_);
    }
    Registration add(std::string name, CdrBackend backend) override {
        return core_.cdr_backends().add(std::move(name), std::move(backend), &use_);
    }
    Registration add(TranslatorInfo translator) override {
        auto name = translator_name(translator.from, translator.to);
        return core_.translators().add(std::move(name), std::move(translator), &use_);
    }
    Registration add(std::string name, FileFormat format) override {
        return core_.file_formats().add(std::move(name), std::move(format), &use_);
    }
    Registration add(std::string name, MusicOnHold provider) override {
        return core_.music_on_hold().add(std::move(name), std::move(provider), &use_);
    }
    Registration subscribe(EventHandler handler) override {
        return core_.events().subscribe(std::move(handler), &use_);
    }

private:
    CoreImpl& core_;
    ModuleLoader& loader_;
    std::string name_;
    ModuleUse& use_;
    Log log_;
};

struct ModuleLoader::Candidate {
    std::string path;
    void* handle = nullptr;
    const tandem_module_descriptor* desc = nullptr;
    ModuleInfo info;
};

struct ModuleLoader::Loaded {
    ModuleInfo info;
    void* handle = nullptr;
    std::unique_ptr<ModuleUse> use;
    std::unique_ptr<HostImpl> host;
    std::unique_ptr<Module> module;
    CoreImpl* core = nullptr;
    std::atomic<bool>* loops_stuck = nullptr;
    ~Loaded() {
        // The module's registrations go first, then its host, then its code.
        module.reset();
        host.reset();
        if (handle) close_when_loops_drained(core, handle, loops_stuck);
    }
};

ModuleLoader::ModuleLoader(CoreImpl& core) : core_(core) {}
ModuleLoader::~ModuleLoader() {
    unload_all();
}

std::string ModuleLoader::normalize(std::string name) {
    if (auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
    if (name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0) name.resize(name.size() - 3);
    return name;
}

std::vector<std::string> ModuleLoader::available() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (auto it = fs::directory_iterator(core_.paths().module_dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
        if (it->path().extension() == ".so") out.push_back(it->path().stem().string());
    std::sort(out.begin(), out.end());
    return out;
}

bool ModuleLoader::open_candidate(const std::string& name_or_path, Candidate& c, std::string& error) {
    c.path = name_or_path.find('/') != std::string::npos
                 ? name_or_path
                 : (core_.paths().module_dir / (normalize(name_or_path) + ".so")).string();
    std::error_code ec;
    if (!fs::exists(c.path, ec)) {
        error = fmt::format("module {}: no such file {}", normalize(name_or_path), c.path);
        return false;
    }
    c.handle = dlopen(c.path.c_str(), RTLD_NOW | RTLD_LOCAL | kKeepCode);
    if (!c.handle) {
        error = fmt::format("module {}: cannot open: {}", normalize(name_or_path), dlerror());
        return false;
    }
    auto* d = static_cast<const tandem_module_descriptor*>(dlsym(c.handle, "tandem_module"));
    auto fail = [&](std::string msg) {
        error = std::move(msg);
        dlclose(c.handle);
        c.handle = nullptr;
        return false;
    };
    if (!d) return fail(fmt::format("module {}: not a Tandem module (no tandem_module descriptor)", c.path));
    if (d->magic != module_magic || d->size < sizeof(tandem_module_descriptor))
        return fail(fmt::format("module {}: damaged or foreign descriptor", c.path));
    if (!d->abi_tag || std::strcmp(d->abi_tag, TANDEM_ABI_TAG) != 0)
        return fail(
            fmt::format("module {} was built against SDK '{}' but this core is '{}': rebuild it against "
                        "Tandem SDK {}",
                        d->name ? d->name : c.path, d->abi_tag ? d->abi_tag : "?", TANDEM_ABI_TAG, TANDEM_VERSION));
    if (!d->name || !d->create) return fail(fmt::format("module {}: descriptor without name or factory", c.path));
    c.desc = d;
    c.info.name = d->name;
    c.info.description = d->description ? d->description : "";
    c.info.kind = d->kind ? d->kind : "";
    c.info.depends = split_list(d->depends);
    c.info.optional = split_list(d->optional);
    c.info.path = c.path;
    return true;
}

bool ModuleLoader::instantiate(Candidate& c, std::string& error) {
    auto l = std::make_unique<Loaded>();
    l->info = c.info;
    l->handle = std::exchange(c.handle, nullptr);
    l->core = &core_;
    l->loops_stuck = &loops_stuck_;
    l->use = std::make_unique<ModuleUse>(c.info.name);
    l->host = std::make_unique<HostImpl>(core_, *this, c.info.name, *l->use);
    try {
        l->module.reset(c.desc->create());
        if (!l->module) throw std::runtime_error("factory returned nothing");
        l->module->load(*l->host);
    } catch (const ModuleDeclined& e) {
        error = fmt::format("module {} declined to load: {}", c.info.name, e.what());
        return false;
    } catch (const std::exception& e) {
        error = fmt::format("module {} failed to load: {}", c.info.name, e.what());
        return false;
    } catch (...) {
        error = fmt::format("module {} failed to load: unknown exception", c.info.name);
        return false;
    }
    core_.log().info("loaded module {} ({})", c.info.name, c.info.description);
    std::lock_guard lock(mu_);
    loaded_.push_back(std::move(l));
    core_.events().publish(event::ModuleChanged{c.info.name, true});
    return true;
}

bool ModuleLoader::load_all(std::vector<std::string>& problems) {
    auto parsed = config::parse_file(core_.paths().config_dir / "modules.conf");
    for (auto& e : parsed.errors) problems.push_back(e.str());
    bool autoload = true;
    std::vector<std::string> wanted;
    std::set<std::string> noload, required;
    if (auto* s = parsed.file.section("modules")) {
        for (auto& v : s->variables) {
            if (v.name == "autoload") {
                autoload = v.value == "yes" || v.value == "true" || v.value == "1";
            } else if (v.name == "load") {
                wanted.push_back(normalize(v.value));
            } else if (v.name == "noload") {
                noload.insert(normalize(v.value));
            } else if (v.name == "require") {
                wanted.push_back(normalize(v.value));
                required.insert(normalize(v.value));
            } else {
                problems.push_back(fmt::format("{}: unknown modules.conf option '{}'", v.where.str(), v.name));
            }
        }
    }
    if (autoload)
        for (auto& n : available()) wanted.push_back(n);

    // Open every candidate and read its descriptor (no module code runs yet).
    std::map<std::string, Candidate> cands;
    bool fatal = false;
    for (auto& n : wanted) {
        if (noload.count(n) || cands.count(n)) continue;
        Candidate c;
        std::string err;
        if (!open_candidate(n, c, err)) {
            problems.push_back(err);
            if (required.count(n)) fatal = true;
            continue;
        }
        cands.emplace(n, std::move(c));
    }

    // Order by dependencies; a module whose dependency is missing or failed is refused.
    std::set<std::string> done, failed;
    std::function<bool(const std::string&, std::vector<std::string>&)> visit =
        [&](const std::string& n, std::vector<std::string>& chain) -> bool {
        if (done.count(n)) return true;
        if (failed.count(n)) return false;
        auto it = cands.find(n);
        if (it == cands.end()) return false;
        if (std::find(chain.begin(), chain.end(), n) != chain.end()) {
            problems.push_back(fmt::format("module {}: dependency cycle", n));
            failed.insert(n);
            return false;
        }
        chain.push_back(n);
        auto& c = it->second;
        for (auto& d : c.info.depends) {
            if (!visit(d, chain)) {
                problems.push_back(fmt::format("module {} not loaded: it needs {}, which is {}", n, d,
                                               cands.count(d) ? "not loaded" : "not available"));
                failed.insert(n);
                chain.pop_back();
                if (required.count(n)) fatal = true;
                return false;
            }
        }
        for (auto& d : c.info.optional) visit(d, chain);
        chain.pop_back();
        c.info.required = required.count(n) != 0;
        std::string err;
        if (!instantiate(c, err)) {
            problems.push_back(err);
            failed.insert(n);
            if (required.count(n)) {
                problems.push_back(fmt::format("module {} is required: cannot run without it", n));
                fatal = true;
            }
            return false;
        }
        done.insert(n);
        return true;
    };
    for (auto& [n, c] : cands) {
        std::vector<std::string> chain;
        visit(n, chain);
    }
    for (auto& [n, c] : cands)
        if (c.handle) dlclose(c.handle);
    return !fatal;
}

bool ModuleLoader::load(const std::string& name_or_path, std::string& message) {
    auto name = normalize(name_or_path);
    {
        std::lock_guard lock(mu_);
        for (auto& l : loaded_)
            if (l->info.name == name) {
                message = fmt::format("module {} is already loaded", name);
                return false;
            }
    }
    Candidate c;
    if (!open_candidate(name_or_path, c, message)) return false;
    for (auto& d : c.info.depends) {
        bool ok = false;
        std::lock_guard lock(mu_);
        for (auto& l : loaded_) ok = ok || l->info.name == d;
        if (!ok) {
            message = fmt::format("module {} needs {}: load it first", c.info.name, d);
            dlclose(c.handle);
            return false;
        }
    }
    if (!instantiate(c, message)) {
        if (c.handle) dlclose(c.handle);
        return false;
    }
    message = fmt::format("loaded {}", c.info.name);
    return true;
}

bool ModuleLoader::unload(const std::string& n, std::string& message) {
    auto name = normalize(n);
    std::unique_lock lock(mu_);
    auto it = std::find_if(loaded_.begin(), loaded_.end(), [&](auto& l) { return l->info.name == name; });
    if (it == loaded_.end()) {
        message = fmt::format("module {} is not loaded", name);
        return false;
    }
    for (auto& l : loaded_)
        for (auto& d : l->info.depends)
            if (d == name) {
                message = fmt::format("module {} is needed by {}: unload that first", name, l->info.name);
                return false;
            }
    auto& l = **it;
    int uses = l.use->leases.load() + l.module->use_count();
    if (uses > 0) {
        message = fmt::format("module {} is in use ({}): not unloaded", name, uses);
        return false;
    }
    // The module goes outside the lock: its unload waits for the loops
    // (close_when_loops_drained), which may be running a command that lists
    // the modules.
    auto gone = std::move(*it);
    loaded_.erase(it);
    lock.unlock();
    gone.reset();
    core_.events().publish(event::ModuleChanged{name, false});
    message = fmt::format("unloaded {}", name);
    core_.log().info("{}", message);
    return true;
}

bool ModuleLoader::reload(const std::string& n, std::string& message) {
    auto name = normalize(n);
    std::lock_guard lock(mu_);
    for (auto& l : loaded_) {
        if (l->info.name != name) continue;
        try {
            l->module->reload(*l->host);
            message = fmt::format("reloaded {}", name);
            return true;
        } catch (const std::exception& e) {
            message = fmt::format("module {} kept its old configuration: {}", name, e.what());
            return false;
        }
    }
    message = fmt::format("module {} is not loaded", name);
    return false;
}

void ModuleLoader::reload_all(std::vector<std::string>& problems) {
    std::lock_guard lock(mu_);
    for (auto& l : loaded_) {
        std::string msg;
        if (!reload(l->info.name, msg)) problems.push_back(msg);
    }
}

void ModuleLoader::unload_all() {
    // Reverse load order (dependants first), each module destroyed outside
    // the lock, as in unload().
    for (;;) {
        std::unique_ptr<Loaded> gone;
        {
            std::lock_guard lock(mu_);
            if (loaded_.empty()) return;
            gone = std::move(loaded_.back());
            loaded_.pop_back();
        }
    }
}

std::vector<ModuleInfo> ModuleLoader::list() const {
    std::lock_guard lock(mu_);
    std::vector<ModuleInfo> out;
    for (auto& l : loaded_) {
        auto i = l->info;
        i.use_count = l->use->leases.load() + l->module->use_count();
        out.push_back(std::move(i));
    }
    return out;
}

std::vector<std::string> ModuleLoader::take_config_problems() {
    std::lock_guard lock(mu_);
    return std::exchange(config_problems_, {});
}

std::size_t ModuleLoader::count() const {
    std::lock_guard lock(mu_);
    return loaded_.size();
}

}  // namespace tandem
