// app_echo: Echo() — what the caller sends comes straight back: voice frames
// in the channel's native format (nothing is translated), and DTMF as DTMF.
// '#' ends it. Runs on the channel's loop.
#include <tandem/core.hpp>
#include <tandem/module.hpp>

namespace {

using namespace tandem;
using namespace std::chrono_literals;

awaitable<AppResult> echo(Channel& chan, const AppArgs&) {
    if (!co_await chan.answer()) co_return AppResult::hangup;
    auto saved_read = chan.read_format(), saved_write = chan.write_format();
    chan.set_read_format(Format::none);  // native in, native out
    chan.set_write_format(Format::none);
    while (!chan.hungup()) {
        auto f = co_await chan.read_frame(1s);
        if (!f) continue;
        if (f->kind == FrameKind::voice || f->kind == FrameKind::video) {
            chan.write(*f);
        } else if (f->kind == FrameKind::dtmf_end) {
            if (static_cast<char>(f->subclass) == '#') break;
            chan.send_digit(static_cast<char>(f->subclass),
                            std::chrono::milliseconds(f->duration_ms ? f->duration_ms : 100));
        }
    }
    if (chan.hungup()) co_return AppResult::hangup;
    chan.set_read_format(saved_read);
    chan.set_write_format(saved_write);
    co_return AppResult::next;
}

class EchoModule final : public Module {
public:
    void load(Host& host) override {
        app_ = host.add("Echo", Application{"Echo audio and digits back to the caller", "Echo()",
                                            "Answers, then sends back every voice frame and DTMF digit the caller\n"
                                            "sends, without translating, until '#' (then the dialplan continues)\n"
                                            "or hangup.",
                                            0, 0, echo});
    }

private:
    Registration app_;
};

}  // namespace

TANDEM_MODULE(EchoModule)
