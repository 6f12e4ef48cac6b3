// app_hello: the smallest useful Tandem module, built outside the tree.
//
// It registers one dialplan application, Hello([name]), which sets ${HELLO}
// to a greeting, and one CLI command, `hello count`. Everything it registers
// is a Registration member: unloading the module removes it all.
#include <tandem/module.hpp>

#include <atomic>

namespace {

class HelloModule final : public tandem::Module {
public:
    void load(tandem::Host& host) override {
        auto opts = host.read_config("hello.conf");
        greeting_ = "Hello";
        if (auto* s = opts.file.section("general"))
            if (auto* v = s->find("greeting")) greeting_ = v->value;

        app_ = host.add(
            "Hello",
            tandem::Application{
                "Greet the caller", "Hello([name])",
                "Sets ${HELLO} to \"<greeting>, <name>!\" (name defaults to the caller's number).", 0, 1,
                [this](tandem::Channel& chan, const tandem::AppArgs& args) -> tandem::awaitable<tandem::AppResult> {
                    auto who = args[0].empty() ? chan.caller().number : args[0];
                    chan.set_variable("HELLO", greeting_ + ", " + who + "!");
                    ++count_;
                    co_return tandem::AppResult::next;
                }});

        cli_ = host.add(tandem::CliCommand{{"hello", "count"},
                                           "How many times Hello() ran",
                                           "Usage: hello count",
                                           [this](tandem::CliRequest& r) -> tandem::awaitable<int> {
                                               r.out.print("Hello() ran {} times\n", count_.load());
                                               co_return 0;
                                           }});
    }

private:
    std::string greeting_;
    std::atomic<long> count_{0};
    tandem::Registration app_, cli_;
};

}  // namespace

TANDEM_MODULE(HelloModule)
