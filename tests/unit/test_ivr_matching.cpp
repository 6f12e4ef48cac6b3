// IVR digit matching as Asterisk does it: Background and WaitExten go on at
// once when the digits can only mean one extension or none, and wait the
// inter-digit timeout only when a longer extension could still match. Also
// the core queries behind it (dialplan_can_match / dialplan_match_more).
#include "core_fixture.hpp"

#include <tandem/file.hpp>

#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <future>
#include <map>
#include <mutex>

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Counts the prompt's frames, so digits are sent once the prompt plays.
class CountingDriver final : public ChannelDriver {
public:
    explicit CountingDriver(std::shared_ptr<std::atomic<int>> n) : n_(std::move(n)) {}
    void write(Channel&, const Frame& f) override {
        if (f.kind == FrameKind::voice) ++*n_;
    }

private:
    std::shared_ptr<std::atomic<int>> n_;
};

// A core with one 1 s prompt, whose channels report variable R via events.
struct IvrCore {
    test::TestCore tc;
    std::mutex mu;
    std::map<std::string, std::string> result;  // channel -> R
    Registration sub;

    explicit IvrCore(const std::string& dialplan) : tc(dialplan, false) {
        auto sounds = tc.dir / "sounds";
        fs::create_directories(sounds / "en");
        std::ofstream(tc.dir / "etc" / "tandem.conf", std::ios::app) << "sounds => " << sounds.string() << "\n";
        std::vector<std::string> problems;
        REQUIRE(tc.core->start(problems));
        std::string err;
        auto w = tc.core->create_media(sounds / "en" / "hello.wav", Format::slin8, err);
        REQUIRE_MESSAGE(w, err);
        std::int16_t buf[160];
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::slin8);
        f.samples = 160;
        for (int i = 0; i < 50; ++i) {
            for (int k = 0; k < 160; ++k)
                buf[k] = static_cast<std::int16_t>(6000 * std::sin(2 * M_PI * 440 * (i * 160 + k) / 8000));
            f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(buf), sizeof buf));
            REQUIRE(w->write(f));
        }
        REQUIRE(w->commit(err));
        sub = tc.core->events().subscribe([this](const Event& e) {
            if (auto* v = std::get_if<event::VariableSet>(&e); v && v->name == "R") {
                std::lock_guard l(mu);
                result[v->channel] = v->value;
            }
        });
    }

    // Calls s@m, dials `digits` once the prompt plays, and returns R and the
    // time from the digits to R.
    std::pair<std::string, std::chrono::milliseconds> run(const std::string& digits) {
        auto frames = std::make_shared<std::atomic<int>>(0);
        auto chan = tc.core->create_channel("Trace", "Trace/ivr", std::make_unique<CountingDriver>(frames),
                                            tc.core->pick_loop());
        REQUIRE(chan);
        std::promise<void> ready;
        boost::asio::post(chan->executor(), [&] {
            chan->set_native_format(Format::slin8);
            chan->set_position("m", "s", 1);
            ready.set_value();
        });
        ready.get_future().wait();
        tc.core->start_pbx(chan);
        if (!digits.empty()) REQUIRE(tc.wait_for([&] { return *frames > 2; }));
        boost::asio::post(chan->executor(), [chan, digits] {
            for (char d : digits) chan->on_frame(Frame::digit(FrameKind::dtmf_end, d, 100));
        });
        auto sent = std::chrono::steady_clock::now();
        auto name = chan->name();
        bool got = tc.wait_for(
            [&] {
                std::lock_guard l(mu);
                return result.count(name) != 0;
            },
            15s);
        auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - sent);
        REQUIRE(got);
        std::lock_guard l(mu);
        return {result[name], took};
    }
};

const char* ivr_plan =
    "[m]\n"
    "exten => s,1,Set(TIMEOUT(digit)=2)\n"
    " same => n,Background(hello)\n"
    " same => n,WaitExten(10)\n"
    "exten => 1,1,Set(R=one)\n"
    "exten => 100,1,Set(R=hundred)\n"
    "exten => 23,1,Set(R=twothree)\n"
    "exten => _7X.,1,Set(R=seven:${EXTEN})\n"
    "exten => i,1,Set(R=invalid:${INVALID_EXTEN})\n"
    "exten => t,1,Set(R=timeout)\n"
    "include => more\n"
    "[more]\n"
    "exten => 45,1,Set(R=fortyfive)\n";

}  // namespace

TEST_CASE("ivr: the core tells whether digits can match and whether more could") {
    IvrCore a(ivr_plan);
    auto& c = *a.tc.core;
    CHECK(c.dialplan_can_match("m", "1", ""));
    CHECK(c.dialplan_match_more("m", "1", ""));  // 100
    CHECK(c.dialplan_can_match("m", "10", ""));
    CHECK_FALSE(c.dialplan_can_match("m", "9", ""));
    CHECK_FALSE(c.dialplan_match_more("m", "9", ""));
    CHECK(c.dialplan_can_match("m", "23", ""));
    CHECK_FALSE(c.dialplan_match_more("m", "23", ""));
    CHECK_FALSE(c.dialplan_can_match("m", "24", ""));
    CHECK(c.dialplan_match_more("m", "4", ""));  // through the include
    CHECK(c.dialplan_can_match("m", "45", ""));
    CHECK_FALSE(c.dialplan_match_more("m", "45", ""));
    CHECK(c.dialplan_match_more("m", "71", ""));  // '.' wants more
    CHECK(c.dialplan_match_more("m", "712", ""));
    CHECK_FALSE(c.dialplan_can_match("nosuch", "1", ""));
}

TEST_CASE("ivr: Background goes on at once unless a longer extension could still match") {
    IvrCore a(ivr_plan);
    // The digit timeout is 2 s (TIMEOUT(digit)); "at once" is well under it.
    auto [r1, t1] = a.run("9");
    CHECK(r1 == "invalid:9");
    CHECK(t1 < 1s);
    auto [r2, t2] = a.run("24");
    CHECK(r2 == "invalid:24");
    CHECK(t2 < 1s);
    auto [r3, t3] = a.run("23");
    CHECK(r3 == "twothree");
    CHECK(t3 < 1s);
    auto [r4, t4] = a.run("100");
    CHECK(r4 == "hundred");
    CHECK(t4 < 1s);
    auto [r5, t5] = a.run("45");  // from the included context
    CHECK(r5 == "fortyfive");
    CHECK(t5 < 1s);
    // "1" is an extension, but "100" could follow: one digit timeout.
    auto [r6, t6] = a.run("1");
    CHECK(r6 == "one");
    CHECK(t6 > 1500ms);
    CHECK(t6 < 3500ms);
    // "10" can only become "100": the timeout, then 'i'.
    auto [r7, t7] = a.run("10");
    CHECK(r7 == "invalid:10");
    CHECK(t7 > 1500ms);
    CHECK(t7 < 3500ms);
}

TEST_CASE("ivr: TIMEOUT() reads back and rejects what it cannot use") {
    IvrCore a("[m]\nexten => s,1,Set(TIMEOUT(digit)=1.5)\n same => n,Set(R=${TIMEOUT(digit)}/${TIMEOUT(response)})\n");
    auto [r, t] = a.run("");
    CHECK(r == "1.5/10");
}
