// A descriptor from "another SDK". Its factory aborts: the loader must refuse
// the module on the ABI tag without ever calling it.
#include <tandem/module.hpp>

#include <cstdlib>

static tandem::Module* never_called() {
    std::abort();
}

extern "C" __attribute__((visibility("default"))) const tandem_module_descriptor tandem_module = {
    tandem::module_magic,
    sizeof(tandem_module_descriptor),
    "tandem-sdk-0.0r0/gcc9/boost1_74",
    "test_mod_bad_abi",
    "Test module built against another SDK",
    "test",
    "",
    "",
    &never_called,
};
