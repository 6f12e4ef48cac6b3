// Declares a dependency on a module that does not exist (see CMakeLists.txt).
#include <tandem/module.hpp>

namespace {
class NeedsMissing final : public tandem::Module {
public:
    void load(tandem::Host&) override {}
};
}  // namespace

TANDEM_MODULE(NeedsMissing)
