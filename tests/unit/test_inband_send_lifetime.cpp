// The in-band DTMF sender's lifetime (chan_sip, dtmfmode=inband): a driver
// that still owns a sender when its channel goes without a hangup destroys
// it while the channel is half destroyed. The sender must then leave the
// channel's tap alone (it finds the channel through a weak_ptr that no
// longer locks), and nothing of it may run afterwards. The sanitizer build
// sees a breach as a use after free.
#include "chan_sip/inband_dtmf.hpp"
#include "core_fixture.hpp"
#include "fake_driver.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

using namespace tandem;
using namespace std::chrono_literals;

namespace {

using test::on_loop;

// Owns a sender as SipDriver does, and never drops it at hangup.
class SendingDriver final : public ChannelDriver {
public:
    explicit SendingDriver(std::shared_ptr<std::atomic<int>> frames) : frames_(std::move(frames)) {}
    void start(Channel& chan) {
        sender_ = std::make_unique<sip::InbandDtmfSender>(chan, [frames = frames_](const Frame&) { ++*frames; });
        sender_->send('7', 1000ms);
    }

private:
    std::shared_ptr<std::atomic<int>> frames_;
    std::unique_ptr<sip::InbandDtmfSender> sender_;
};

}  // namespace

TEST_CASE("inband dtmf: a channel destroyed without hangup while a digit plays") {
    test::TestCore tc;
    auto frames = std::make_shared<std::atomic<int>>(0);
    auto driver = std::make_unique<SendingDriver>(frames);
    auto* d = driver.get();
    // Made directly, not by create_channel(): no channel table holds it, so
    // dropping the last reference destroys it without end_channel().
    auto lease = tc.core->technologies().find("Trace");
    REQUIRE(lease);
    auto chan = std::make_shared<Channel>(*tc.core, tc.core->pick_loop(), "Trace/lifetime", "1.1", std::move(driver),
                                          std::move(lease));
    auto& loop = chan->loop();
    // A waiter on the channel (as a bridge has): untapping a half-destroyed
    // channel would wake it through the freed list of waiters.
    EventWaiter waiter(loop);
    on_loop(*chan, [&] {
        chan->set_native_format(Format::slin8);
        chan->add_waiter(waiter);
        d->start(*chan);
    });
    REQUIRE(tc.wait_for([&] { return frames->load() >= 3; }, 2s));
    CHECK(on_loop(*chan, [&] { return chan->audio_tapped(); }));
    // The last owner goes on the loop: the driver, and its sender, die
    // inside ~Channel.
    std::weak_ptr<Channel> weak = chan;
    std::promise<void> gone;
    boost::asio::post(loop, [&gone, c = std::move(chan)]() mutable {
        c.reset();
        gone.set_value();
    });
    gone.get_future().get();
    CHECK(weak.expired());
    // The sender's timer was cancelled with it: no frame after.
    auto n = frames->load();
    std::this_thread::sleep_for(100ms);
    CHECK(frames->load() == n);
}
