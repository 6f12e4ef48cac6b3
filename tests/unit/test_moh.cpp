// res_musiconhold on a real core: classes from musiconhold.conf and their
// errors, MusicOnHold pacing and content, StartMusicOnHold/StopMusicOnHold,
// hold and unhold through Channel::indicate, a class with nothing to play,
// and a reload while music plays.
#include "cli/server.hpp"
#include "core_fixture.hpp"
#include "fake_driver.hpp"
#include "loader/module_loader.hpp"

#include <tandem/bridge.hpp>
#include <tandem/moh.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
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

// Mean energy of the slin8 samples of some frames.
double energy(const std::vector<Frame>& frames, std::size_t from, std::size_t to) {
    double sum = 0;
    std::size_t n = 0;
    for (std::size_t i = from; i < to && i < frames.size(); ++i) {
        auto p = frames[i].payload();
        for (std::size_t k = 0; k + 1 < p.size(); k += 2) {
            std::int16_t v;
            std::memcpy(&v, p.data() + k, 2);
            sum += double(v) * v;
            ++n;
        }
    }
    return n ? sum / n : 0;
}

using test::on_loop;

struct StringOutput final : CliOutput {
    std::string text;
    void write(std::string_view t) override { text += t; }
};

// A core with its own sounds folder, musiconhold.conf and dialplan; log
// lines at warning and above are kept.
struct MohCore {
    test::TestCore tc;
    fs::path sounds;
    std::mutex mu;
    std::vector<std::string> log;
    std::map<std::string, std::map<std::string, std::string>> vars;
    Registration sub;

    MohCore(const std::string& dialplan, const std::string& moh_conf) : tc(dialplan, false) {
        sounds = tc.dir / "sounds";
        fs::create_directories(sounds / "music");
        fs::create_directories(sounds / "empty");
        std::ofstream(tc.dir / "etc" / "tandem.conf", std::ios::app) << "sounds => " << sounds.string() << "\n";
        std::ofstream(tc.dir / "etc" / "musiconhold.conf") << moh_conf;
        // Two pieces of different pitch, written before the module scans the folder.
        write_piece(sounds / "music" / "a.wav", 500, 25);
        write_piece(sounds / "music" / "b.wav", 700, 25);
        tc.core->core_log().add_tap(LogLevel::warning, [this](const std::string& line) {
            std::lock_guard l(mu);
            log.push_back(line);
        });
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

    // A slin8 WAV of `frames` 20 ms frames of a tone (written without the
    // format module, which is not loaded yet).
    static void write_piece(const fs::path& p, double hz, int frames) {
        std::vector<std::int16_t> s(static_cast<std::size_t>(frames) * 160);
        for (std::size_t i = 0; i < s.size(); ++i)
            s[i] = static_cast<std::int16_t>(8000 * std::sin(2 * M_PI * hz * static_cast<double>(i) / 8000));
        std::ofstream f(p, std::ios::binary);
        auto u32 = [&](std::uint32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
        auto u16 = [&](std::uint16_t v) { f.write(reinterpret_cast<const char*>(&v), 2); };
        auto bytes = static_cast<std::uint32_t>(s.size() * 2);
        f.write("RIFF", 4);
        u32(36 + bytes);
        f.write("WAVEfmt ", 8);
        u32(16);
        u16(1);
        u16(1);
        u32(8000);
        u32(16000);
        u16(2);
        u16(16);
        f.write("data", 4);
        u32(bytes);
        f.write(reinterpret_cast<const char*>(s.data()), bytes);
    }

    bool logged(const std::string& text) {
        std::lock_guard l(mu);
        for (auto& line : log)
            if (line.find(text) != std::string::npos) return true;
        return false;
    }
    std::string all_log() {
        std::lock_guard l(mu);
        std::string out;
        for (auto& line : log) out += line + "\n";
        return out;
    }
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

    std::shared_ptr<Channel> channel(std::shared_ptr<test::Recorded> cap, Format native = Format::slin8) {
        auto chan = core().create_channel("Trace", "Trace/moh", std::make_unique<test::RecordingDriver>(cap),
                                          core().pick_loop());
        REQUIRE(chan);
        on_loop(chan, [&] { chan->set_native_format(native); });
        return chan;
    }
    std::shared_ptr<Channel> call(const std::string& exten, std::shared_ptr<test::Recorded> cap) {
        auto chan = channel(cap);
        on_loop(chan, [&] { chan->set_position("t", exten, 1); });
        core().start_pbx(chan);
        return chan;
    }

    std::pair<int, std::string> cli(const std::string& line) {
        auto out = std::make_shared<StringOutput>();
        auto f = boost::asio::co_spawn(core().pick_loop(), run_cli_line(core(), line, *out), boost::asio::use_future);
        int status = f.get();
        return {status, out->text};
    }
    void end(const std::shared_ptr<Channel>& chan) {
        on_loop(chan, [&] { core().end_channel(chan); });
    }
};

const char* const moh_conf =
    "[default]\nmode = files\ndirectory = music\nsort = alpha\n"
    "[empty]\ndirectory = empty\n"
    "[missing]\ndirectory = nowhere\n"
    "[odd]\nmode = custom\ndirectory = music\nannouncement = hello\n";

}  // namespace

TEST_CASE("moh: classes from musiconhold.conf, with clear errors for bad ones") {
    MohCore m("[t]\nexten => s,1,Wait(1)\n", moh_conf);
    auto [status, out] = m.cli("moh show classes");
    CHECK(status == 0);
    INFO(out);
    CHECK(out.find("default") != std::string::npos);
    CHECK(out.find("4 classes") != std::string::npos);
    // The folder's two pieces are found.
    CHECK(out.find((m.sounds / "music").string()) != std::string::npos);
    INFO(m.all_log());
    // Missing and empty folders: one error each, naming the class and file:line.
    CHECK(m.logged("musiconhold.conf:7: music on hold class [missing]: directory " + (m.sounds / "nowhere").string() +
                   " is missing"));
    CHECK(m.logged("musiconhold.conf:5: music on hold class [empty]: directory " + (m.sounds / "empty").string() +
                   " holds no playable file"));
    // A mode that does not exist is a configuration error; an Asterisk option we lack is a warning.
    CHECK(m.logged("musiconhold.conf:10"));
    CHECK(m.logged("custom"));
    CHECK(m.logged("option 'announcement' is not supported"));
    // The provider is registered in the core.
    CHECK(m.core().music_on_hold().contains(moh_provider));
}

TEST_CASE("moh: MusicOnHold(class,duration) writes paced frames of the music, then goes on") {
    MohCore m("[t]\nexten => m,1,MusicOnHold(default,1)\n same => n,Set(DONE=1)\n", moh_conf);
    auto cap = std::make_shared<test::Recorded>();
    auto start = std::chrono::steady_clock::now();
    auto chan = m.call("m", cap);
    REQUIRE(m.wait_var(chan->name(), "DONE"));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 990ms);
    std::this_thread::sleep_for(100ms);
    auto frames = cap->copy();
    // About one second of 20 ms frames, and none once the application ended.
    CHECK(frames.size() >= 48);
    CHECK(frames.size() <= 52);
    {
        std::lock_guard l(cap->mu);
        auto span = std::chrono::duration_cast<std::chrono::milliseconds>(cap->times.back() - cap->times.front());
        CHECK(span.count() >= 900);
        CHECK(span.count() <= 1100);
        auto half = std::chrono::duration_cast<std::chrono::milliseconds>(cap->times[25] - cap->times[0]);
        CHECK(half.count() >= 460);
    }
    for (auto& f : frames) CHECK(f.samples == 160);
    // Music, not silence: the first piece (a.wav, 0.5 s) then the second.
    CHECK(energy(frames, 0, 25) > 1e6);
    CHECK(energy(frames, 25, 48) > 1e6);
    CHECK(m.tc.wait_for([&] { return m.core().channels().empty(); }));
}

TEST_CASE("moh: StartMusicOnHold plays in the background until StopMusicOnHold; others' audio is dropped") {
    MohCore m(
        "[t]\nexten => s,1,StartMusicOnHold()\n same => n,Set(STARTED=1)\n same => n,Wait(0.6)\n"
        " same => n,StopMusicOnHold()\n same => n,Set(STOPPED=1)\n same => n,Wait(0.5)\n same => n,Set(DONE=1)\n",
        moh_conf);
    auto cap = std::make_shared<test::Recorded>();
    auto chan = m.call("s", cap);
    REQUIRE(m.wait_var(chan->name(), "STARTED"));
    CHECK(on_loop(chan, [&] { return chan->music_playing() && chan->audio_tapped(); }));
    // A frame someone else writes meanwhile (a bridge forwarding the other party) is not heard.
    std::vector<std::uint8_t> marker(320, 0x11);
    on_loop(chan, [&] {
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::slin8);
        f.samples = 160;
        f.set_payload(marker);
        chan->write(f);
    });
    REQUIRE(m.wait_var(chan->name(), "STOPPED"));
    auto at_stop = cap->count();
    CHECK(!on_loop(chan, [&] { return chan->music_playing() || chan->audio_tapped(); }));
    CHECK(at_stop >= 27);
    CHECK(at_stop <= 33);
    for (auto& f : cap->copy()) CHECK(f.payload()[0] != 0x11);
    // After the music the channel's audio is its own again.
    on_loop(chan, [&] {
        Frame f;
        f.kind = FrameKind::voice;
        f.subclass = static_cast<std::uint32_t>(Format::slin8);
        f.samples = 160;
        f.set_payload(marker);
        chan->write(f);
    });
    CHECK(cap->count() == at_stop + 1);
    REQUIRE(m.wait_var(chan->name(), "DONE"));
    CHECK(cap->count() == at_stop + 1);  // no music after StopMusicOnHold
}

TEST_CASE("moh: hold on a bridged party starts the channel's class, unhold stops it") {
    MohCore m("[t]\nexten => s,1,Wait(1)\n", moh_conf);
    auto cap = std::make_shared<test::Recorded>();
    // A mu-law channel: the slin8 music is translated on the way out.
    auto chan = m.channel(cap, Format::ulaw);
    on_loop(chan, [&] { chan->indicate(Indication::hold); });
    CHECK(on_loop(chan, [&] { return music_on_hold_active(*chan) && chan->audio_tapped(); }));
    std::this_thread::sleep_for(500ms);
    on_loop(chan, [&] { chan->indicate(Indication::unhold); });
    auto n = cap->count();
    CHECK(n >= 20);
    CHECK(n <= 30);
    for (auto& f : cap->copy()) {
        CHECK(f.subclass == static_cast<std::uint32_t>(Format::ulaw));
        CHECK(f.samples == 160);
    }
    CHECK(!on_loop(chan, [&] { return chan->music_playing() || chan->audio_tapped(); }));
    std::this_thread::sleep_for(100ms);
    CHECK(cap->count() == n);

    // CHANNEL(musicclass) picks the class; one that plays silence still plays.
    on_loop(chan, [&] {
        chan->music_class() = "missing";
        chan->indicate(Indication::hold);
    });
    std::this_thread::sleep_for(300ms);
    on_loop(chan, [&] { chan->indicate(Indication::unhold); });
    auto silent = cap->copy();
    REQUIRE(silent.size() > n + 10);
    // Silence in mu-law: 0xFF (or 0x7F) bytes only.
    for (std::size_t i = n; i < silent.size(); ++i)
        for (auto b : silent[i].payload()) CHECK((b == 0xFF || b == 0x7F));
    m.end(chan);
}

TEST_CASE("moh: in a bridge, the held party's peer hears music and not the held party until unhold or the end") {
    MohCore m("[t]\nexten => s,1,Wait(1)\n", moh_conf);
    auto cap_a = std::make_shared<test::Recorded>();
    auto cap_b = std::make_shared<test::Recorded>();
    auto a = m.channel(cap_a);
    auto b = m.core().create_channel("Trace", "Trace/b", std::make_unique<test::RecordingDriver>(cap_b), a->loop());
    REQUIRE(b);
    auto ended = boost::asio::co_spawn(a->loop(), bridge(*a, *b, {}), boost::asio::use_future);
    std::vector<std::uint8_t> marker(320, 0x11);
    auto speak = [&] {
        on_loop(a, [&] {
            Frame f;
            f.kind = FrameKind::voice;
            f.subclass = static_cast<std::uint32_t>(Format::slin8);
            f.samples = 160;
            f.set_payload(marker);
            a->on_frame(f);
        });
    };
    auto markers = [&] {
        std::size_t n = 0;
        for (auto& f : cap_b->copy()) n += f.payload()[0] == 0x11 && f.payload()[1] == 0x11;
        return n;
    };
    speak();
    CHECK(markers() == 1);  // bridged: a's audio reaches b
    // a holds: the bridge tells b, whose driver does not handle hold, so b hears music.
    on_loop(a, [&] { a->on_indication(Indication::hold); });
    CHECK(on_loop(b, [&] { return b->music_playing() && b->audio_tapped(); }));
    for (int i = 0; i < 10; ++i) {
        speak();  // a phone on hold may still send: it is not mixed in
        std::this_thread::sleep_for(20ms);
    }
    std::this_thread::sleep_for(200ms);
    CHECK(markers() == 1);
    CHECK(cap_b->count() >= 15);
    CHECK(energy(cap_b->copy(), 1, cap_b->count()) > 1e6);
    CHECK(cap_a->count() == 0);  // nothing went the other way
    // Unhold: the music stops and a is heard again.
    on_loop(a, [&] { a->on_indication(Indication::unhold); });
    CHECK(!on_loop(b, [&] { return b->music_playing() || b->audio_tapped(); }));
    auto after = cap_b->count();
    speak();
    CHECK(cap_b->count() == after + 1);
    CHECK(markers() == 2);
    // Held again, then the holder hangs up: the bridge owes b an unhold, so no music is left behind.
    on_loop(a, [&] { a->on_indication(Indication::hold); });
    CHECK(on_loop(b, [&] { return b->music_playing(); }));
    a->request_hangup();
    REQUIRE(ended.wait_for(5s) == std::future_status::ready);
    CHECK(ended.get() == BridgeEnd::a_hungup);
    CHECK(!on_loop(b, [&] { return b->music_playing() || b->audio_tapped(); }));
    m.end(a);
    m.end(b);
}

TEST_CASE("moh: a class with no files plays silence and a hangup ends the music") {
    MohCore m("[t]\nexten => e,1,MusicOnHold(empty)\n", moh_conf);
    auto cap = std::make_shared<test::Recorded>();
    auto chan = m.call("e", cap);
    REQUIRE(m.tc.wait_for([&] { return cap->count() >= 20; }));
    CHECK(energy(cap->copy(), 0, 20) == 0);
    chan->request_hangup();
    REQUIRE(m.tc.wait_for([&] { return chan->finished(); }));
    std::this_thread::sleep_for(100ms);
    auto n = cap->count();
    std::this_thread::sleep_for(200ms);
    CHECK(cap->count() == n);
    // The player is gone: nothing holds the module.
    CHECK(m.tc.wait_for([&] {
        for (auto& mod : m.core().modules().list())
            if (mod.name == "res_musiconhold") return mod.use_count == 0;
        return false;
    }));
}

TEST_CASE("moh: a reload re-reads the classes without cutting the music") {
    MohCore m("[t]\nexten => s,1,MusicOnHold(default,1.5)\n same => n,Set(DONE=1)\n", moh_conf);
    auto cap = std::make_shared<test::Recorded>();
    auto chan = m.call("s", cap);
    REQUIRE(m.tc.wait_for([&] { return cap->count() >= 10; }));
    std::ofstream(m.tc.dir / "etc" / "musiconhold.conf") << "[default]\ndirectory = music\n[jazz]\ndirectory = music\n";
    auto [status, out] = m.cli("moh reload");
    CHECK(status == 0);
    CHECK(out.find("2 classes") != std::string::npos);
    REQUIRE(m.wait_var(chan->name(), "DONE"));
    auto frames = cap->copy();
    CHECK(frames.size() >= 72);
    CHECK(frames.size() <= 78);
    {
        // No gap in the pacing around the reload.
        std::lock_guard l(cap->mu);
        for (std::size_t i = 1; i < cap->times.size(); ++i) CHECK(cap->times[i] - cap->times[i - 1] < 120ms);
    }
    CHECK(m.cli("moh show classes").second.find("jazz") != std::string::npos);
}
