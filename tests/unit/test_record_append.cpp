// Record's option a: the new audio follows the existing file's, the old file
// stays whole until the new one is committed, and a missing file is simply
// created.
#include "../../apps/app_tones/tones.hpp"
#include "core_fixture.hpp"
#include "dialplan/engine.hpp"

#include <tandem/file.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>

using namespace tandem;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// 1 s of `hz` as slin8 WAV at `path`.
void write_tone(CoreImpl& core, const fs::path& path, double hz) {
    std::string err;
    auto w = core.create_media(path, Format::slin8, err);
    REQUIRE_MESSAGE(w, err);
    std::int16_t buf[160];
    Frame f;
    f.kind = FrameKind::voice;
    f.subclass = static_cast<std::uint32_t>(Format::slin8);
    f.samples = 160;
    for (int i = 0; i < 50; ++i) {
        for (int k = 0; k < 160; ++k)
            buf[k] = static_cast<std::int16_t>(6000 * std::sin(2 * M_PI * hz * (i * 160 + k) / 8000));
        f.set_payload(std::span(reinterpret_cast<const std::uint8_t*>(buf), sizeof buf));
        REQUIRE(w->write(f));
    }
    REQUIRE(w->commit(err));
}

std::vector<std::int16_t> read_all(CoreImpl& core, const fs::path& path) {
    std::string err;
    auto r = core.open_sound(path.string(), "en", Format::slin8, err);
    REQUIRE_MESSAGE(r, err);
    REQUIRE(r->format() == Format::slin8);
    std::vector<std::int16_t> out;
    Frame f;
    while (r->read(f, 160)) {
        auto p = f.payload();
        auto at = out.size();
        out.resize(at + p.size() / 2);
        std::memcpy(out.data() + at, p.data(), p.size() / 2 * 2);
    }
    return out;
}

// Records one second of Milliwatt (1004 Hz) into `file` with `options`.
void record_milliwatt(test::TestCore& tc, const fs::path& file, const std::string& options) {
    dialplan::OriginateTarget target;
    target.app = "Record";
    target.app_args = file.string() + ",0,1," + options;
    std::string error;
    // Counted, not watched: a Record that fails at once (an unreadable file)
    // may come and go between two looks at the channel count.
    const auto before = tc.core->calls_processed();
    REQUIRE(!dialplan::originate(*tc.core, "Local/mw@t", target, error).empty());
    REQUIRE(tc.wait_for([&] { return tc.core->calls_processed() > before; }, 5s));
    REQUIRE(tc.wait_for([&] { return tc.core->channel_count() == 0; }, 10s));
}

}  // namespace

TEST_CASE("record: option a appends to the existing file") {
    test::TestCore tc("[t]\nexten => mw,1,Milliwatt()\n");
    auto spool = tc.core->paths().spool_dir;
    fs::create_directories(spool);
    auto file = spool / "greeting.wav";
    write_tone(*tc.core, file, 440);
    record_milliwatt(tc, file, "qa");
    CHECK_FALSE(fs::exists(spool / "greeting.wav.tmp"));
    auto s = read_all(*tc.core, file);
    // 1 s of the old tone, then about 1 s of the new one.
    REQUIRE(s.size() >= 8000 + 7200);
    CHECK(s.size() <= 8000 + 8800);
    auto old_part = tones::goertzel(s.data() + 1000, 4000, 440, 8000);
    auto old_other = tones::goertzel(s.data() + 1000, 4000, 1004, 8000);
    CHECK(old_part > 1000 * old_other);
    auto new_part = tones::goertzel(s.data() + 9000, 4000, 1004, 8000);
    auto new_other = tones::goertzel(s.data() + 9000, 4000, 440, 8000);
    CHECK(new_part > 1000 * new_other);

    // Without a the file is replaced.
    record_milliwatt(tc, file, "q");
    auto s2 = read_all(*tc.core, file);
    CHECK(s2.size() <= 8800);
    CHECK(tones::goertzel(s2.data() + 1000, 4000, 1004, 8000) >
          1000 * tones::goertzel(s2.data() + 1000, 4000, 440, 8000));
}

TEST_CASE("record: option a on a missing file creates it; on an unreadable one keeps it") {
    test::TestCore tc("[t]\nexten => mw,1,Milliwatt()\n");
    auto spool = tc.core->paths().spool_dir;
    fs::create_directories(spool);
    auto fresh = spool / "fresh.wav";
    record_milliwatt(tc, fresh, "qa");
    auto s = read_all(*tc.core, fresh);
    CHECK(s.size() >= 7200);
    CHECK(s.size() <= 8800);

    // Not a WAV file: appending would lose it, so nothing is written.
    auto junk = spool / "junk.wav";
    std::ofstream(junk) << "this is not audio at all";
    auto before = fs::file_size(junk);
    record_milliwatt(tc, junk, "qa");
    CHECK(fs::file_size(junk) == before);
    CHECK_FALSE(fs::exists(spool / "junk.wav.tmp"));
}
