// A stand-in codec module for the translator graph's tests: "lpc10" here is
// simply 8-bit linear audio (the high byte of each slin8 sample). It proves
// that a call's translation path pins the module that registered its steps.
#include <tandem/module.hpp>

#include <array>
#include <cstring>

namespace {

using namespace tandem;

constexpr std::size_t max_samples = 2400;

class Encoder final : public Translator {
public:
    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        std::size_t n = p.size() / 2;
        if (n > max_samples) return false;
        for (std::size_t i = 0; i < n; ++i) {
            std::int16_t s;
            std::memcpy(&s, p.data() + 2 * i, 2);
            bytes_[i] = static_cast<std::uint8_t>(static_cast<std::uint16_t>(s) >> 8);
        }
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::lpc10);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload({bytes_.data(), n});
        return true;
    }

private:
    std::array<std::uint8_t, max_samples> bytes_{};
};

class Decoder final : public Translator {
public:
    bool convert(const Frame& in, Frame& out) override {
        auto p = in.payload();
        if (p.size() > max_samples) return false;
        for (std::size_t i = 0; i < p.size(); ++i) samples_[i] = static_cast<std::int16_t>(p[i] << 8);
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(p.size());
        out.set_payload({reinterpret_cast<const std::uint8_t*>(samples_.data()), p.size() * 2});
        return true;
    }

private:
    std::array<std::int16_t, max_samples> samples_{};
};

class FakeCodec final : public Module {
public:
    void load(Host& host) override {
        decoder_ = host.add(TranslatorInfo{Format::lpc10, Format::slin8, "Test: 8-bit linear to slin8",
                                           [](std::string_view) { return std::make_unique<Decoder>(); }});
        encoder_ = host.add(TranslatorInfo{Format::slin8, Format::lpc10, "Test: slin8 to 8-bit linear",
                                           [](std::string_view) { return std::make_unique<Encoder>(); }});
    }

private:
    Registration decoder_, encoder_;
};

}  // namespace

TANDEM_MODULE(FakeCodec)
