// The media applications on real channels of a TestCore: Playback pacing,
// Read, Background/WaitExten matching, Say*, Record, Playtones, Milliwatt.
#include "../../apps/app_playback/split_list.hpp"
#include "../../apps/app_say/say.hpp"
#include "../../apps/app_tones/tones.hpp"
#include "core_fixture.hpp"
#include "fake_driver.hpp"
#include "dialplan/engine.hpp"

#include <tandem/file.hpp>

#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <mutex>

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::vector<std::int16_t> samples_of(const std::vector<Frame>& frames) {
    std::vector<std::int16_t> out;
    for (auto& f : frames) {
        auto p = f.payload();
        auto at = out.size();
        out.resize(at + p.size() / 2);
        std::memcpy(out.data() + at, p.data(), p.size() / 2 * 2);
    }
    return out;
}

// A core with its own prompts folder and dialplan, and channel variables
// observed through events (channel state is only read on its loop).
struct AppCore {
    test::TestCore tc;
    fs::path sounds;
    std::mutex mu;
    std::map<std::string, std::map<std::string, std::string>> vars;  // channel -> name -> value
    Registration sub;

    explicit AppCore(const std::string& dialplan) : tc(dialplan, false) {
        sounds = tc.dir / "sounds";
        fs::create_directories(sounds / "en");
        std::ofstream(tc.dir / "etc" / "tandem.conf", std::ios::app) << "sounds => " << sounds.string() << "\n";
        std::vector<std::string> problems;
        REQUIRE(tc.core->start(problems));
        sub = tc.core->events().subscribe([this](const Event& e) {
            if (auto* v = std::get_if<event::VariableSet>(&e)) {
                std::lock_guard l(mu);
                vars[v->channel][v->name] = v->value;
            }
        });
    }
    CoreImpl& core() { return *tc.core; }

    std::string var(const std::string& chan, const std::string& name) {
        std::lock_guard l(mu);
        return vars[chan][name];
    }
    bool wait_var(const std::string& chan, const std::string& name, std::chrono::milliseconds t = 10s) {
        return tc.wait_for(
            [&] {
                std::lock_guard l(mu);
                return vars[chan].count(name) != 0;
            },
            t);
    }

    // A prompt of `frames` 20 ms frames of a tone, as slin8 WAV.
    void prompt(const std::string& name, int frames, double hz = 440, const std::string& lang = "en") {
        auto p = sounds / lang / (name + ".wav");
        fs::create_directories(p.parent_path());
        std::string err;
        auto w = core().create_media(p, Format::slin8, err);
        REQUIRE_MESSAGE(w, err);
        std::int16_t buf[160];
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::slin8);
        f.samples = 160;
        for (int i = 0; i < frames; ++i) {
            for (int k = 0; k < 160; ++k)
                buf[k] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * hz * (i * 160 + k) / 8000));
            f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(buf), sizeof buf));
            REQUIRE(w->write(f));
        }
        REQUIRE(w->commit(err));
    }

    // A channel at exten@context with a capturing driver, started.
    std::shared_ptr<Channel> call(const std::string& context, const std::string& exten,
                                  std::shared_ptr<test::Recorded> cap, Format native = Format::slin8,
                                  const std::string& language = "en") {
        auto chan = core().create_channel("Trace", "Trace/" + exten, std::make_unique<test::RecordingDriver>(cap),
                                          core().pick_loop());
        REQUIRE(chan);
        std::promise<void> ready;
        boost::asio::post(chan->executor(), [&] {
            chan->set_native_format(native);
            chan->language() = language;
            chan->set_position(context, exten, 1);
            ready.set_value();
        });
        ready.get_future().wait();
        core().start_pbx(chan);
        return chan;
    }

    void digits(const std::shared_ptr<Channel>& chan, const std::string& ds) {
        boost::asio::post(chan->executor(), [chan, ds] {
            for (char d : ds) chan->on_frame(Frame::digit(FrameKind::dtmf_end, d, 100));
        });
    }
};

}  // namespace

TEST_CASE("apps: say lists the building blocks per language") {
    using say::Files;
    CHECK(say::number(1984, "en") ==
          Files{"digits/1", "digits/thousand", "digits/9", "digits/hundred", "digits/80", "digits/4"});
    CHECK(say::number(21, "en") == Files{"digits/20", "digits/1"});
    CHECK(say::number(71, "en") == Files{"digits/70", "digits/1"});
    CHECK(say::number(80, "en") == Files{"digits/80"});
    CHECK(say::number(1000000, "en") == Files{"digits/1", "digits/million"});
    CHECK(say::number(-5, "en") == Files{"digits/minus", "digits/5"});
    CHECK(say::number(0, "fr") == Files{"digits/0"});

    CHECK(say::number(1984, "fr") == Files{"digits/thousand", "digits/9", "digits/hundred", "digits/80", "digits/4"});
    CHECK(say::number(21, "fr") == Files{"digits/20", "digits/et", "digits/1"});
    CHECK(say::number(71, "fr") == Files{"digits/60", "digits/et", "digits/11"});
    CHECK(say::number(75, "fr") == Files{"digits/60", "digits/15"});
    CHECK(say::number(80, "fr") == Files{"digits/80"});
    CHECK(say::number(81, "fr") == Files{"digits/80", "digits/1"});
    CHECK(say::number(99, "fr") == Files{"digits/80", "digits/19"});
    CHECK(say::number(1000000, "fr") == Files{"digits/1", "digits/million"});
    CHECK(say::number(200, "fr") == Files{"digits/2", "digits/hundred"});
    CHECK(say::number(1, "fr", "f") == Files{"digits/1F"});

    CHECK(say::number(28, "it") == Files{"digits/28"});
    CHECK(say::number(48, "it") == Files{"digits/48"});
    CHECK(say::number(45, "it") == Files{"digits/40", "digits/5"});
    CHECK(say::number(2000, "it") == Files{"digits/2", "digits/thousands"});
    CHECK(say::number(1000, "it") == Files{"digits/thousand"});

    CHECK(say::number(100, "es") == Files{"digits/100"});
    CHECK(say::number(101, "es") == Files{"digits/100-and", "digits/1"});
    CHECK(say::number(35, "es") == Files{"digits/30", "digits/y", "digits/5"});
    CHECK(say::number(1000000, "es") == Files{"digits/1M", "digits/million"});

    CHECK(say::characters("1*#", false) == Files{"digits/1", "digits/star", "digits/pound"});
    CHECK(say::characters("aB@.", true) == Files{"letters/a", "letters/b", "letters/at", "letters/dot"});

    std::tm t{};
    t.tm_year = 84;
    t.tm_mon = 0;
    t.tm_mday = 1;
    t.tm_wday = 0;
    t.tm_hour = 13;
    t.tm_min = 5;
    CHECK(say::datetime(t, "ABdY 'digits/at' IMp", "en") == Files{"digits/day-0", "digits/mon-0", "digits/h-1",
                                                                  "digits/19", "digits/80", "digits/4", "digits/at",
                                                                  "digits/1", "digits/oh", "digits/5", "digits/p-m"});
    CHECK(say::datetime(t, "dB", "fr") == Files{"digits/h-1", "digits/mon-0"});
}

TEST_CASE("apps: prompt lists split on &, blanks trimmed, empty items dropped") {
    using Items = std::vector<std::string>;
    CHECK(apps::split_list("welcome&press&digits/1", '&') == Items{"welcome", "press", "digits/1"});
    CHECK(apps::split_list(" hello & &bye& ", '&') == Items{"hello", "bye"});
    CHECK(apps::split_list("noanswer", '&') == Items{"noanswer"});
    CHECK(apps::split_list("", '&').empty());
    CHECK(apps::split_list("&&", '&').empty());
    CHECK(apps::split_list("a b&c", '&') == Items{"a b", "c"});
}

TEST_CASE("apps: Playback and Read play every prompt of an & list, in order") {
    AppCore a(
        "[t]\nexten => p,1,Playback(hello& &bye )\n same => n,Set(DONE=${PLAYBACKSTATUS})\n"
        "exten => r,1,Read(NUM,hello &bye,,,1,0.3)\n same => n,Set(DONE=${READSTATUS})\n");
    a.prompt("hello", 3, 440);
    a.prompt("bye", 4, 1000);
    for (auto exten : {"p", "r"}) {
        CAPTURE(exten);
        auto cap = std::make_shared<test::Recorded>();
        auto chan = a.call("t", exten, cap);
        REQUIRE(a.wait_var(chan->name(), "DONE"));
        CHECK(a.var(chan->name(), "DONE") == (exten == std::string("p") ? "SUCCESS" : "TIMEOUT"));
        auto frames = cap->copy();
        REQUIRE(frames.size() == 7);
        // hello (440 Hz) then bye (1000 Hz).
        auto first = samples_of(std::vector<Frame>(frames.begin(), frames.begin() + 3));
        auto last = samples_of(std::vector<Frame>(frames.begin() + 3, frames.end()));
        CHECK(tones::goertzel(first.data(), first.size(), 440, 8000) >
              100 * tones::goertzel(first.data(), first.size(), 1000, 8000));
        CHECK(tones::goertzel(last.data(), last.size(), 1000, 8000) >
              100 * tones::goertzel(last.data(), last.size(), 440, 8000));
    }
}

TEST_CASE("apps: tone lists parse like Asterisk's and the generator makes the right frequencies") {
    CHECK_FALSE(tones::parse("busy"));
    CHECK_FALSE(tones::parse(""));
    auto p = tones::parse("!950/330,!1400/330,480+620/500,0/500");
    REQUIRE(p);
    REQUIRE(p->size() == 4);
    CHECK((*p)[0].once);
    CHECK((*p)[2].f1 == 480);
    CHECK((*p)[2].f2 == 620);
    CHECK((*p)[3].ms == 500);

    tones::Generator gen(*tones::parse("350+440"), 7000);
    Frame f;
    std::vector<Frame> frames;
    for (int i = 0; i < 10; ++i) {
        REQUIRE(gen.next(f));
        frames.push_back(f);
    }
    auto s = samples_of(frames);
    double p350 = tones::goertzel(s.data(), s.size(), 350, 8000);
    double p440 = tones::goertzel(s.data(), s.size(), 440, 8000);
    double p620 = tones::goertzel(s.data(), s.size(), 620, 8000);
    CHECK(p350 > 100 * p620);
    CHECK(p440 > 100 * p620);

    // '!' parts play once; a list of only such parts ends.
    tones::Generator once(*tones::parse("!1000/100"), 7000);
    int n = 0;
    while (once.next(f)) ++n;
    CHECK(n == 5);
}

TEST_CASE("apps: Playback paces 20 ms frames from the file, in the channel's format when it has one") {
    AppCore a(
        "[t]\nexten => p,1,Playback(hello&hello)\n same => n,Set(DONE=${PLAYBACKSTATUS})\n"
        "exten => m,1,Playback(missing)\n same => n,Set(DONE=${PLAYBACKSTATUS})\n");
    a.prompt("hello", 25);  // 0.5 s
    auto cap = std::make_shared<test::Recorded>();
    auto start = std::chrono::steady_clock::now();
    auto chan = a.call("t", "p", cap);
    REQUIRE(a.wait_var(chan->name(), "DONE"));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(a.var(chan->name(), "DONE") == "SUCCESS");
    CHECK(a.var(chan->name(), "PLAYBACKSTATUS") == "SUCCESS");
    {
        std::lock_guard l(cap->mu);
        REQUIRE(cap->frames.size() == 50);
        for (auto& f : cap->frames) {
            CHECK(f.subclass == static_cast<std::uint32_t>(Format::slin8));
            CHECK(f.samples == 160);
        }
        // 50 frames one tick apart: 49 intervals of 20 ms, with no drift.
        auto span = std::chrono::duration_cast<std::chrono::milliseconds>(cap->times.back() - cap->times.front());
        CHECK(span.count() >= 960);
        CHECK(span.count() <= 1100);
        // Frames arrive with the timer: never two seconds' worth at once.
        auto first_half = std::chrono::duration_cast<std::chrono::milliseconds>(cap->times[25] - cap->times[0]);
        CHECK(first_half.count() >= 480);
    }
    CHECK(took >= 980ms);

    auto cap2 = std::make_shared<test::Recorded>();
    auto chan2 = a.call("t", "m", cap2);
    REQUIRE(a.wait_var(chan2->name(), "DONE"));
    CHECK(a.var(chan2->name(), "DONE") == "FAILED");
    CHECK(cap2->count() == 0);

    // A mu-law channel gets the mu-law variant as it is stored.
    {
        std::string err;
        auto w = a.core().create_media(a.sounds / "en" / "hello.ulaw", Format::ulaw, err);
        REQUIRE(w);
        std::vector<std::uint8_t> bytes(160, 0x55);
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::ulaw);
        f.samples = 160;
        f.set_payload(bytes);
        for (int i = 0; i < 10; ++i) w->write(f);
        REQUIRE(w->commit(err));
    }
    auto cap3 = std::make_shared<test::Recorded>();
    auto chan3 = a.call("t", "p", cap3, Format::ulaw);
    REQUIRE(a.wait_var(chan3->name(), "DONE"));
    std::lock_guard l(cap3->mu);
    REQUIRE(cap3->frames.size() == 20);
    for (auto& f : cap3->frames) {
        CHECK(f.subclass == static_cast<std::uint32_t>(Format::ulaw));
        CHECK(f.payload()[0] == 0x55);
    }
}

TEST_CASE("apps: Read stops at maxdigits, at # and on timeout") {
    AppCore a(
        "[t]\nexten => r,1,Read(NUM,,4,,1,1)\n same => n,Set(DONE=1)\n"
        "exten => p,1,Read(NUM,hello,,,2,1)\n same => n,Set(DONE=1)\n");
    a.prompt("hello", 50);
    auto run = [&](const std::string& exten, const std::string& digits, std::chrono::milliseconds after = 200ms) {
        auto cap = std::make_shared<test::Recorded>();
        auto chan = a.call("t", exten, cap);
        REQUIRE(a.tc.wait_for([&] { return a.var(chan->name(), "NUM").empty(); }));
        std::this_thread::sleep_for(after);  // Read() is listening by now
        a.digits(chan, digits);
        REQUIRE(a.wait_var(chan->name(), "DONE"));
        return std::pair(a.var(chan->name(), "NUM"), a.var(chan->name(), "READSTATUS"));
    };
    CHECK(run("r", "123456") == std::pair<std::string, std::string>("1234", "OK"));
    CHECK(run("r", "12#9") == std::pair<std::string, std::string>("12", "OK"));
    CHECK(run("r", "7") == std::pair<std::string, std::string>("7", "OK"));  // then 1 s without a digit
    CHECK(run("r", "") == std::pair<std::string, std::string>("", "TIMEOUT"));
    // A digit during the prompt interrupts it and counts.
    auto start = std::chrono::steady_clock::now();
    CHECK(run("p", "42#", 300ms) == std::pair<std::string, std::string>("42", "OK"));
    CHECK(std::chrono::steady_clock::now() - start < 900ms);
}

TEST_CASE("apps: Background and WaitExten jump to the extension dialled, i and t") {
    AppCore a(
        "[m]\nexten => s,1,Background(hello)\n same => n,WaitExten(1)\n same => n,Set(R=fell-through)\n"
        "exten => 1,1,Set(R=one)\nexten => 23,1,Set(R=twothree)\n"
        "exten => i,1,Set(R=invalid:${INVALID_EXTEN})\nexten => t,1,Set(R=timeout)\n");
    a.prompt("hello", 50);  // 1 s
    auto run = [&](const std::string& digits, std::chrono::milliseconds after) {
        auto cap = std::make_shared<test::Recorded>();
        auto chan = a.call("m", "s", cap);
        if (!digits.empty()) {
            REQUIRE(a.tc.wait_for([&] { return cap->count() > 2; }));
            std::this_thread::sleep_for(after);
            a.digits(chan, digits);
        }
        REQUIRE(a.wait_var(chan->name(), "R", 15s));
        return a.var(chan->name(), "R");
    };
    auto start = std::chrono::steady_clock::now();
    CHECK(run("1", 100ms) == "one");
    CHECK(std::chrono::steady_clock::now() - start < 800ms);  // the prompt stopped
    CHECK(run("23", 100ms) == "twothree");
    CHECK(run("", 0ms) == "timeout");        // 1 s prompt + 1 s WaitExten
    CHECK(run("9", 1200ms) == "invalid:9");  // dialled during WaitExten; 5 s for more
}

TEST_CASE("apps: SayNumber plays each building block, falling back to English per prompt") {
    AppCore a(
        "[t]\nexten => n,1,SayNumber(71)\n same => n,Set(DONE=1)\n"
        "exten => d,1,SayDigits(12)\n same => n,Set(DONE=1)\n");
    // Each prompt a distinct length, so the frame count tells which were played.
    a.prompt("digits/60", 3);
    a.prompt("digits/et", 5);
    a.prompt("digits/11", 7);
    a.prompt("digits/70", 11);
    a.prompt("digits/1", 13);
    a.prompt("digits/2", 2);
    a.prompt("digits/11", 17, 440, "fr");  // only this one exists in French
    auto count = [&](const std::string& exten, const std::string& lang) {
        auto cap = std::make_shared<test::Recorded>();
        auto chan = a.call("t", exten, cap, Format::slin8, lang);
        REQUIRE(a.wait_var(chan->name(), "DONE"));
        return cap->count();
    };
    CHECK(count("n", "en") == 11 + 13);     // seventy one
    CHECK(count("n", "fr") == 3 + 5 + 17);  // soixante et onze, "onze" in French
    CHECK(count("d", "fr") == 13 + 2);
}

TEST_CASE("apps: Record keeps what the caller said; Milliwatt makes 1004 Hz at 0 dBm0") {
    AppCore a("[t]\nexten => mw,1,Milliwatt()\n");
    auto spool = a.core().paths().spool_dir;
    dialplan::OriginateTarget target;
    target.app = "Record";
    target.app_args = (spool / "mw.wav").string() + ",0,1,q";
    std::string error;
    REQUIRE(!dialplan::originate(a.core(), "Local/mw@t", target, error).empty());
    REQUIRE(a.tc.wait_for([&] { return fs::exists(spool / "mw.wav"); }, 10s));
    CHECK(a.tc.wait_for([&] { return a.core().channel_count() == 0; }));
    CHECK_FALSE(fs::exists(spool / "mw.wav.tmp"));
    std::string err;
    auto r = a.core().open_sound((spool / "mw.wav").string(), "en", Format::slin8, err);
    REQUIRE_MESSAGE(r, err);
    CHECK(r->format() == Format::slin8);
    // One second, give or take the frames in flight when the time was up.
    CHECK(r->length().count() >= 900);
    CHECK(r->length().count() <= 1100);
    std::vector<Frame> frames;
    Frame f;
    while (r->read(f, 160)) frames.push_back(f);
    auto s = samples_of(frames);
    REQUIRE(s.size() > 4000);
    double peak = 0;
    for (auto v : s) peak = std::max(peak, std::abs(double(v)));
    CHECK(peak == doctest::Approx(22767).epsilon(0.02));
    double p1004 = tones::goertzel(s.data(), 4000, 1004, 8000);
    double p800 = tones::goertzel(s.data(), 4000, 800, 8000);
    CHECK(p1004 > 1000 * p800);
}

TEST_CASE("apps: Record ends on # and drops the file on hangup") {
    AppCore a(
        "[t]\nexten => r,1,Record(${SPOOLFILE},0,10,q)\n same => n,Set(DONE=1)\n"
        "exten => h,1,Set(HUNG=1)\n");
    auto spool = a.core().paths().spool_dir;
    a.core().set_global_variable("SPOOLFILE", (spool / "msg%d.wav").string());
    auto cap = std::make_shared<test::Recorded>();
    auto chan = a.call("t", "r", cap);
    REQUIRE(a.wait_var(chan->name(), "RECORDED_FILE"));
    // 0.5 s of a tone, then '#'.
    std::promise<void> sent;
    boost::asio::post(chan->executor(), [&] {
        std::int16_t buf[160];
        for (int i = 0; i < 25; ++i) {
            for (int k = 0; k < 160; ++k)
                buf[k] = static_cast<std::int16_t>(6000 * std::sin(2 * M_PI * 700 * (i * 160 + k) / 8000));
            Frame f;
            f.kind = FrameKind::voice;
            f.subclass = static_cast<std::uint32_t>(Format::slin8);
            f.samples = 160;
            f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(buf), sizeof buf));
            chan->on_frame(f);
        }
        chan->on_frame(Frame::digit(FrameKind::dtmf_end, '#'));
        sent.set_value();
    });
    sent.get_future().wait();
    REQUIRE(a.wait_var(chan->name(), "DONE"));
    CHECK(a.var(chan->name(), "RECORD_STATUS") == "DTMF");
    CHECK(a.var(chan->name(), "RECORDED_FILE") == (spool / "msg0").string());
    // The read queue keeps the newest frames; at least 8 (160 ms) made it.
    std::error_code ec;
    CHECK(fs::file_size(spool / "msg0.wav", ec) >= 44 + 8 * 320);

    // Hangup while recording: no file, no temporary.
    auto chan2 = a.call("t", "r", std::make_shared<test::Recorded>());
    REQUIRE(a.wait_var(chan2->name(), "RECORDED_FILE"));
    CHECK(a.var(chan2->name(), "RECORDED_FILE") == (spool / "msg1").string());
    std::this_thread::sleep_for(200ms);
    chan2->request_hangup();
    REQUIRE(a.wait_var(chan2->name(), "HUNG"));
    CHECK(a.var(chan2->name(), "RECORD_STATUS") == "HANGUP");
    CHECK_FALSE(fs::exists(spool / "msg1.wav"));
    CHECK_FALSE(fs::exists(spool / "msg1.wav.tmp"));
}

TEST_CASE("apps: Playtones plays the country's tone in the background until StopPlaytones") {
    AppCore a(
        "[t]\nexten => b,1,Playtones(busy)\n same => n,Wait(1)\n same => n,StopPlaytones()\n"
        " same => n,Set(AT=stopped)\n same => n,Wait(0.5)\n same => n,Set(DONE=1)\n"
        "exten => x,1,Playtones(!425/100)\n same => n,Wait(0.5)\n same => n,Set(DONE=1)\n");
    auto cap = std::make_shared<test::Recorded>();
    auto chan = a.call("t", "b", cap);
    REQUIRE(a.wait_var(chan->name(), "DONE"));
    std::vector<Frame> frames;
    {
        std::lock_guard l(cap->mu);
        frames = cap->frames;
    }
    // About 1 s of frames, none after StopPlaytones.
    CHECK(frames.size() >= 45);
    CHECK(frames.size() <= 56);
    auto s = samples_of(std::vector<Frame>(frames.begin(), frames.begin() + 20));  // the first 400 ms: tone on
    double p480 = tones::goertzel(s.data(), s.size(), 480, 8000);
    double p620 = tones::goertzel(s.data(), s.size(), 620, 8000);
    double p350 = tones::goertzel(s.data(), s.size(), 350, 8000);
    CHECK(p480 > 100 * p350);
    CHECK(p620 > 100 * p350);
    auto off = samples_of(std::vector<Frame>(frames.begin() + 27, frames.begin() + 47));  // 540-940 ms: silence
    for (auto v : off) CHECK(v == 0);

    auto cap2 = std::make_shared<test::Recorded>();
    auto chan2 = a.call("t", "x", cap2);
    REQUIRE(a.wait_var(chan2->name(), "DONE"));
    CHECK(cap2->count() == 5);  // a '!' list ends by itself
}

TEST_CASE("apps: Echo sends the caller's frames back untranslated until #") {
    AppCore a("[t]\nexten => e,1,Echo()\n same => n,Set(DONE=1)\n");
    auto cap = std::make_shared<test::Recorded>();
    auto chan = a.call("t", "e", cap, Format::ulaw);
    REQUIRE(a.tc.wait_for([&] { return chan->state() == ChannelState::up; }));
    std::this_thread::sleep_for(100ms);  // Echo() is reading by now
    boost::asio::post(chan->executor(), [chan] {
        std::vector<std::uint8_t> bytes(160);
        for (int i = 0; i < 5; ++i) {
            std::fill(bytes.begin(), bytes.end(), static_cast<std::uint8_t>(0x10 + i));
            Frame f;
            f.kind = FrameKind::voice;
            f.subclass = static_cast<std::uint32_t>(Format::ulaw);
            f.samples = 160;
            f.set_payload(bytes);
            chan->on_frame(f);
        }
        chan->on_frame(Frame::digit(FrameKind::dtmf_end, '#'));
    });
    REQUIRE(a.wait_var(chan->name(), "DONE"));
    std::lock_guard l(cap->mu);
    REQUIRE(cap->frames.size() == 5);
    for (int i = 0; i < 5; ++i) {
        CHECK(cap->frames[i].subclass == static_cast<std::uint32_t>(Format::ulaw));
        CHECK(cap->frames[i].payload()[0] == 0x10 + i);
    }
}

TEST_CASE("apps: Record ends after the silence and leaves it out of the file") {
    AppCore a("[t]\nexten => r,1,Record(${SPOOLFILE},1,10,q)\n same => n,Set(DONE=1)\n");
    auto spool = a.core().paths().spool_dir;
    a.core().set_global_variable("SPOOLFILE", (spool / "quiet.wav").string());
    auto chan = a.call("t", "r", std::make_shared<test::Recorded>());
    REQUIRE(a.wait_var(chan->name(), "RECORDED_FILE"));
    // 0.5 s of tone then silence, fed in real time until Record gives up.
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 150 && a.var(chan->name(), "DONE").empty(); ++i) {
        boost::asio::post(chan->executor(), [chan, i] {
            std::int16_t buf[160] = {};
            if (i < 25)
                for (int k = 0; k < 160; ++k)
                    buf[k] = static_cast<std::int16_t>(6000 * std::sin(2 * M_PI * 700 * (i * 160 + k) / 8000));
            Frame f;
            f.kind = FrameKind::voice;
            f.subclass = static_cast<std::uint32_t>(Format::slin8);
            f.samples = 160;
            f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(buf), sizeof buf));
            chan->on_frame(f);
        });
        std::this_thread::sleep_until(start + (i + 1) * 20ms);
    }
    REQUIRE(a.wait_var(chan->name(), "DONE"));
    CHECK(a.var(chan->name(), "RECORD_STATUS") == "SILENCE");
    std::string err;
    auto r = a.core().open_sound((spool / "quiet.wav").string(), "en", Format::slin8, err);
    REQUIRE_MESSAGE(r, err);
    CHECK(r->length().count() >= 400);
    CHECK(r->length().count() <= 600);
}
