// Framing on the control socket: cli/protocol.hpp.
#include "cli/protocol.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using tandem::cli::Decoder;
using tandem::cli::encode;
using tandem::cli::Frame;
using tandem::cli::FrameType;
using tandem::cli::max_frame_length;
using tandem::cli::max_payload_length;

using namespace std::string_literals;

namespace {

std::string header(std::uint32_t n) {
    return {static_cast<char>(n >> 24), static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 8) & 0xff),
            static_cast<char>(n & 0xff)};
}

std::vector<Frame> drain(Decoder& d) {
    std::vector<Frame> out;
    while (auto f = d.next()) out.push_back(std::move(*f));
    return out;
}

std::vector<Frame> decode_all(const std::string& bytes) {
    Decoder d;
    d.feed(bytes);
    auto out = drain(d);
    CHECK_FALSE(d.failed());
    CHECK(d.pending() == 0);
    return out;
}

const std::vector<Frame>& sample_frames() {
    static const std::vector<Frame> frames = {
        {FrameType::greeting, "Tandem 0.1.0"},
        {FrameType::command, "core show channels"},
        {FrameType::output, "line one\nline two\n"},
        {FrameType::log, "[2024-01-01 00:00:00] NOTICE core: started\n"},
        {FrameType::output, ""},
        {FrameType::result, "0"},
        {FrameType::complete, "core sh"},
        {FrameType::matches, "show\nshutdown"},
        {FrameType::matches, ""},
        {FrameType::verbosity, "debug"},
        {FrameType::output, "nul \0 inside, UTF-8 \xc3\xa9\xe2\x82\xac"s},
        {FrameType::result, "127"},
    };
    return frames;
}

std::string sample_stream() {
    std::string s;
    for (const auto& f : sample_frames()) s += encode(f.type, f.payload);
    return s;
}

}  // namespace

TEST_CASE("cli protocol: frame layout") {
    CHECK(encode(FrameType::output, "hi") == std::string("\0\0\0\3Ohi", 7));
    CHECK(encode(FrameType::result, "") == std::string("\0\0\0\1R", 5));
    CHECK(encode(FrameType::command, "help") == header(5) + "Chelp");

    const std::string big(300, 'x');
    CHECK(encode(FrameType::log, big) == header(301) + "L" + big);

    CHECK(static_cast<char>(FrameType::greeting) == 'G');
    CHECK(static_cast<char>(FrameType::output) == 'O');
    CHECK(static_cast<char>(FrameType::result) == 'R');
    CHECK(static_cast<char>(FrameType::log) == 'L');
    CHECK(static_cast<char>(FrameType::matches) == 'M');
    CHECK(static_cast<char>(FrameType::command) == 'C');
    CHECK(static_cast<char>(FrameType::complete) == 'T');
    CHECK(static_cast<char>(FrameType::verbosity) == 'V');
}

TEST_CASE("cli protocol: round trips") {
    for (const auto& f : sample_frames()) {
        auto got = decode_all(encode(f.type, f.payload));
        REQUIRE(got.size() == 1);
        CHECK(got[0] == f);
    }
    CHECK(decode_all(sample_stream()) == sample_frames());
}

TEST_CASE("cli protocol: frames split at every byte") {
    const std::string stream = sample_stream();
    const auto& expected = sample_frames();

    SUBCASE("two pieces, cut anywhere") {
        for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
            Decoder d;
            d.feed(stream.data(), cut);
            auto got = drain(d);
            d.feed(stream.data() + cut, stream.size() - cut);
            auto rest = drain(d);
            got.insert(got.end(), rest.begin(), rest.end());
            CHECK_FALSE(d.failed());
            CHECK(d.pending() == 0);
            REQUIRE_MESSAGE(got == expected, "cut at byte " << cut);
        }
    }
    SUBCASE("one byte at a time") {
        Decoder d;
        std::vector<Frame> got;
        for (char c : stream) {
            d.feed(&c, 1);
            auto more = drain(d);
            got.insert(got.end(), more.begin(), more.end());
        }
        CHECK(got == expected);
    }
    SUBCASE("three pieces") {
        for (std::size_t a = 0; a <= stream.size(); a += 3) {
            for (std::size_t b = a; b <= stream.size(); b += 7) {
                Decoder d;
                d.feed(stream.data(), a);
                d.feed(stream.data() + a, b - a);
                d.feed(stream.data() + b, stream.size() - b);
                REQUIRE(drain(d) == expected);
            }
        }
    }
}

TEST_CASE("cli protocol: partial input waits") {
    Decoder d;
    const std::string f = encode(FrameType::output, "hello");
    d.feed(f.data(), 3);
    CHECK_FALSE(d.next());
    CHECK(d.pending() == 3);
    d.feed(f.data() + 3, f.size() - 4);
    CHECK_FALSE(d.next());
    d.feed(f.data() + f.size() - 1, 1);
    auto got = d.next();
    REQUIRE(got);
    CHECK(got->payload == "hello");
    CHECK_FALSE(d.next());
    CHECK_FALSE(d.failed());
}

TEST_CASE("cli protocol: length limits") {
    SUBCASE("the largest frame is accepted") {
        const std::string payload(max_payload_length, 'a');
        const std::string bytes = encode(FrameType::output, payload);
        CHECK(bytes.size() == 4 + max_frame_length);
        auto got = decode_all(bytes);
        REQUIRE(got.size() == 1);
        CHECK(got[0].payload.size() == max_payload_length);
    }
    SUBCASE("one byte more is a protocol error, seen from the header alone") {
        Decoder d;
        d.feed(header(static_cast<std::uint32_t>(max_frame_length + 1)) + "O");
        CHECK_FALSE(d.next());
        CHECK(d.failed());
        CHECK(d.pending() == 0);
    }
    SUBCASE("huge length") {
        Decoder d;
        d.feed(std::string("\xff\xff\xff\xff", 4));
        CHECK_FALSE(d.next());
        CHECK(d.failed());
    }
    SUBCASE("zero length has no type byte") {
        Decoder d;
        d.feed(header(0) + encode(FrameType::output, "x"));
        CHECK_FALSE(d.next());
        CHECK(d.failed());
    }
    SUBCASE("good frames before the bad one are delivered") {
        Decoder d;
        d.feed(encode(FrameType::output, "a") + encode(FrameType::result, "0") + "GET / HTTP/1.1\r\n");
        auto got = drain(d);
        CHECK(got.size() == 2);
        CHECK(d.failed());
    }
    SUBCASE("a failed decoder ignores later input") {
        Decoder d;
        d.feed(std::string("\x7f\x00\x00\x00", 4));
        CHECK_FALSE(d.next());
        REQUIRE(d.failed());
        d.feed(encode(FrameType::output, "after"));
        CHECK_FALSE(d.next());
        CHECK(d.failed());
        CHECK(d.pending() == 0);
    }
}

TEST_CASE("cli protocol: unknown frame types pass through") {
    auto got = decode_all(header(3) + "Zab" + encode(FrameType::result, "0"));
    REQUIRE(got.size() == 2);
    CHECK(static_cast<char>(got[0].type) == 'Z');
    CHECK(got[0].payload == "ab");
    CHECK_FALSE(tandem::cli::is_known(got[0].type));
    CHECK(tandem::cli::is_known(got[1].type));
    for (const auto& f : sample_frames()) CHECK(tandem::cli::is_known(f.type));
}

TEST_CASE("cli protocol: encode never makes an oversized frame") {
    SUBCASE("output is split into several frames with the same bytes") {
        std::string payload(2 * max_payload_length + 12345, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
        auto got = decode_all(encode(FrameType::output, payload));
        REQUIRE(got.size() == 3);
        std::string joined;
        for (const auto& f : got) {
            CHECK(f.type == FrameType::output);
            CHECK(f.payload.size() <= max_payload_length);
            joined += f.payload;
        }
        CHECK(joined == payload);
    }
    SUBCASE("log lines too") {
        auto got = decode_all(encode(FrameType::log, std::string(max_payload_length + 1, 'l')));
        REQUIRE(got.size() == 2);
        CHECK(got[1].payload == "l");
    }
    SUBCASE("matches keep whole candidates") {
        const std::string word(1000, 'w');
        std::string payload;
        while (payload.size() <= max_payload_length) payload += (payload.empty() ? "" : "\n") + word;
        auto got = decode_all(encode(FrameType::matches, payload));
        REQUIRE(got.size() == 1);
        const auto& p = got[0].payload;
        CHECK(p.size() <= max_payload_length);
        CHECK(p.size() % (word.size() + 1) == word.size());
        CHECK(payload.compare(0, p.size(), p) == 0);
        CHECK(payload[p.size()] == '\n');
    }
    SUBCASE("matches ending exactly at the limit") {
        std::string payload(max_payload_length, 'a');
        payload[10] = '\n';
        payload += "\nnext";
        auto got = decode_all(encode(FrameType::matches, payload));
        REQUIRE(got.size() == 1);
        CHECK(got[0].payload.size() == max_payload_length);
    }
    SUBCASE("other types are cut") {
        auto got = decode_all(encode(FrameType::command, std::string(max_payload_length + 10, 'c')));
        REQUIRE(got.size() == 1);
        CHECK(got[0].payload.size() == max_payload_length);
    }
}

TEST_CASE("cli protocol: random garbage never breaks the decoder") {
    std::mt19937 rng(20240601);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> len(1, 64);
    for (int round = 0; round < 300; ++round) {
        Decoder d;
        std::size_t fed = 0;
        for (int piece = 0; piece < 40 && !d.failed(); ++piece) {
            std::string chunk(static_cast<std::size_t>(len(rng)), '\0');
            for (auto& c : chunk) c = static_cast<char>(byte(rng));
            // Sometimes a small plausible length, so some frames do decode.
            if (round % 3 == 0 && chunk.size() >= 4) chunk[0] = chunk[1] = chunk[2] = 0;
            d.feed(chunk);
            fed += chunk.size();
            while (auto f = d.next()) CHECK(f->payload.size() < max_frame_length);
            CHECK(d.pending() <= fed);
        }
        if (d.failed()) CHECK(d.pending() == 0);
    }
}

TEST_CASE("cli protocol: a long-lived decoder does not keep consumed bytes") {
    Decoder d;
    const std::string f = encode(FrameType::log, std::string(1000, 'x'));
    for (int i = 0; i < 1000; ++i) {
        d.feed(f.data(), 600);
        CHECK_FALSE(d.next());
        d.feed(f.data() + 600, f.size() - 600);
        REQUIRE(d.next());
    }
    CHECK(d.pending() == 0);
}
