// A well-behaved module: registers one application and one CLI command.
#include <tandem/module.hpp>

namespace {
class Good final : public tandem::Module {
public:
    void load(tandem::Host& host) override {
        app_ = host.add(
            "TestGood",
            tandem::Application{"Test application", "TestGood()", "Sets TESTGOOD=1.", 0, 0,
                                [](tandem::Channel& c, const tandem::AppArgs&) -> tandem::awaitable<tandem::AppResult> {
                                    c.set_variable("TESTGOOD", "1");
                                    co_return tandem::AppResult::next;
                                }});
        cmd_ = host.add(tandem::CliCommand{{"testgood", "hello"},
                                           "Say hello",
                                           "Usage: testgood hello",
                                           [](tandem::CliRequest& r) -> tandem::awaitable<int> {
                                               r.out.print("hello from test_mod_good\n");
                                               co_return 0;
                                           }});
    }

private:
    tandem::Registration app_, cmd_;
};
}  // namespace

TANDEM_MODULE(Good)
