// Modules: the one exported descriptor, and the Module object it creates.
//
// A module is a shared object exporting one C symbol, `tandem_module`, a plain
// descriptor the loader reads with dlsym before running any module code: ABI
// tag, name, description, kind, dependencies, and the factory. The CMake helper
// `tandem_add_module()` writes the descriptor (dependencies are declared once,
// there); the module's source provides the class with TANDEM_MODULE(Class).
//
// Module::load() registers what the module offers and keeps the Registration
// handles as members; destroying the Module unregisters everything. To decline
// (e.g. missing config), throw ModuleDeclined; any other exception is a failure.
// The loader catches everything a module throws and names the module.
#pragma once

#include <tandem/host.hpp>
#include <tandem/version.hpp>

#include <cstdint>
#include <stdexcept>

namespace tandem {

class Module {
public:
    virtual ~Module() = default;
    virtual void load(Host& host) = 0;
    // Re-reads configuration. Throw to veto: the module keeps its old settings.
    virtual void reload(Host& /*host*/) {}
    // Extra "in use" reasons beyond leases (e.g. active calls of a driver).
    virtual int use_count() const { return 0; }
};

struct ModuleDeclined : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace tandem

extern "C" {
struct tandem_module_descriptor {
    std::uint32_t magic;  // tandem_module_magic
    std::uint32_t size;   // sizeof(tandem_module_descriptor)
    const char* abi_tag;  // TANDEM_ABI_TAG of the SDK the module was built with
    const char* name;
    const char* description;
    const char* kind;      // app, chan, codec, format, res, cdr, func, ...
    const char* depends;   // comma-separated module names that must load first
    const char* optional;  // comma-separated modules loaded first when present
    tandem::Module* (*create)();
};
}

namespace tandem {
inline constexpr std::uint32_t module_magic = 0x54414e44;  // "TAND"
}

// Provides the factory the generated descriptor calls.
#define TANDEM_MODULE(Class)                   \
    ::tandem::Module* tandem_create_module() { \
        return new Class();                    \
    }

::tandem::Module* tandem_create_module();
