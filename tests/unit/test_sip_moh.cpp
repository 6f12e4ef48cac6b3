// chan_sip: the music on hold options of an endpoint (mohinterpret=,
// mohsuggest=) and dtmfmode=inband, as sip.conf spells them.
#include <doctest/doctest.h>

#include "chan_sip/settings.hpp"

#include <tandem/config.hpp>

#include <filesystem>

using namespace tandem;
using namespace tandem::sip;

TEST_CASE("sip config: mohinterpret and mohsuggest per endpoint") {
    auto r = config::parse_text(
        "[general]\n"
        "[gw]\ntype=peer\nhost=127.0.0.1\ndtmfmode=inband\nmohinterpret=jazz\nmohsuggest=classical\n"
        "[plain]\ntype=peer\nhost=127.0.0.2\n",
        "sip.conf", std::filesystem::temp_directory_path());
    REQUIRE(r.ok());
    auto p = parse_settings(r.file, "Tandem/test");
    REQUIRE(p.settings);
    CHECK(p.errors.empty());
    auto* gw = p.settings->find("gw");
    REQUIRE(gw);
    CHECK(gw->mohinterpret == "jazz");
    CHECK(gw->mohsuggest == "classical");
    CHECK(gw->dtmfmode == "inband");
    auto* plain = p.settings->find("plain");
    REQUIRE(plain);
    CHECK(plain->mohinterpret.empty());
    CHECK(plain->mohsuggest.empty());
}
