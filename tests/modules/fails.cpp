// A module whose load() throws after registering something: the loader must
// report it by name and leave nothing registered.
#include <tandem/module.hpp>

#include <stdexcept>

namespace {
class Fails final : public tandem::Module {
public:
    void load(tandem::Host& host) override {
        app_ = host.add(
            "TestFails",
            tandem::Application{"never stays", "TestFails()", "", 0, 0,
                                [](tandem::Channel&, const tandem::AppArgs&) -> tandem::awaitable<tandem::AppResult> {
                                    co_return tandem::AppResult::next;
                                }});
        throw std::runtime_error("cannot open /nonexistent/device");
    }

private:
    tandem::Registration app_;
};
}  // namespace

TANDEM_MODULE(Fails)
