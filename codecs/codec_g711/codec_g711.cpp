// codec_g711: G.711 mu-law and A-law to and from slin8.
//
// G.711 is the hot path of most calls, so the conversion is table-driven. A
// mu-law code depends only on the top 14 bits of a 16-bit sample and an A-law
// code only on the top 12 (G.711 works on 14- and 13-bit sign-magnitude
// samples; negative two's complement values map to magnitude -x-1, the
// convention of the ITU-T G.191 reference software). So 16384- and 4096-entry
// tables encode every sample exactly, and two 256-entry tables decode. load()
// builds the tables from the segment rules of G.711, once, and every
// translator shares them read-only.
//
// The decoders conceal lost packets with SpanDSP's concealer (close to G.711
// Appendix I): each decoded packet feeds its history, and conceal() repeats
// the last pitch period, fading to silence within 50 ms.
#include <tandem/media.hpp>
#include <tandem/module.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

// SpanDSP last: its headers need <stdint.h> and telephony.h before them, and
// in C++ telephony.h defines lrint() and lrintf() as macros, which would break
// any standard header included after it.
#include <stdint.h>
#include <spandsp/telephony.h>
#include <spandsp/plc.h>
#undef lrint
#undef lrintf

namespace {

using namespace tandem;

// Longest packet accepted, and longest gap concealed at once: 300 ms at 8 kHz.
constexpr std::size_t max_samples = 2400;

struct G711Tables {
    std::array<std::int16_t, 256> ulaw_to_linear{};
    std::array<std::int16_t, 256> alaw_to_linear{};
    std::array<std::uint8_t, 1u << 14> linear_to_ulaw{};  // index: 16-bit sample >> 2, as unsigned
    std::array<std::uint8_t, 1u << 12> linear_to_alaw{};  // index: 16-bit sample >> 4, as unsigned
};

// mu-law: 14-bit input; the magnitude plus a bias of 33 falls in one of eight
// segments (each twice as wide as the last), with 16 steps in each. The code
// is the complement of sign|segment|step.
std::uint8_t ulaw_from_top14(int top14) {
    const bool negative = top14 < 0;
    int magnitude = (negative ? ~top14 : top14) + 33;
    magnitude = std::min(magnitude, 0x1FFF);
    const int segment = std::bit_width(static_cast<unsigned>(magnitude)) - 6;
    const int step = (magnitude >> (segment + 1)) & 0x0F;
    return static_cast<std::uint8_t>(~((negative ? 0x80 : 0x00) | (segment << 4) | step));
}

std::int16_t ulaw_to_sample(std::uint8_t code) {
    const int raw = ~code & 0xFF;
    const int segment = (raw >> 4) & 0x07;
    const int step = raw & 0x0F;
    // Middle of the step, in 16-bit units (the bias of 33 is 132 here).
    const int magnitude = (((step << 3) + 132) << segment) - 132;
    return static_cast<std::int16_t>((raw & 0x80) ? -magnitude : magnitude);
}

// A-law: 13-bit input (sign and 12-bit magnitude). Segments 0 and 1 share the
// finest step, 2, so the magnitude's lowest bit never matters and the top 12
// bits of a 16-bit sample decide. The code is sign|segment|step with the even
// bits inverted (XOR 0x55).
std::uint8_t alaw_from_top12(int top12) {
    const bool negative = top12 < 0;
    const int magnitude = negative ? ~top12 : top12;  // 0..2047
    int segment = 0;
    int step = magnitude;
    if (magnitude >= 16) {
        segment = std::bit_width(static_cast<unsigned>(magnitude)) - 4;
        step = (magnitude >> (segment - 1)) & 0x0F;
    }
    return static_cast<std::uint8_t>(((negative ? 0x00 : 0x80) | (segment << 4) | step) ^ 0x55);
}

std::int16_t alaw_to_sample(std::uint8_t code) {
    const int raw = code ^ 0x55;
    const int segment = (raw >> 4) & 0x07;
    const int step = raw & 0x0F;
    const int magnitude = segment == 0 ? (step << 4) + 8 : ((step << 4) + 264) << (segment - 1);
    return static_cast<std::int16_t>((raw & 0x80) ? magnitude : -magnitude);
}

std::shared_ptr<const G711Tables> build_tables() {
    auto t = std::make_shared<G711Tables>();
    for (int code = 0; code < 256; ++code) {
        t->ulaw_to_linear[code] = ulaw_to_sample(static_cast<std::uint8_t>(code));
        t->alaw_to_linear[code] = alaw_to_sample(static_cast<std::uint8_t>(code));
    }
    // The index is the unsigned view of the shifted sample: the upper half holds the negatives.
    for (int i = 0; i < (1 << 14); ++i) t->linear_to_ulaw[i] = ulaw_from_top14(i < (1 << 13) ? i : i - (1 << 14));
    for (int i = 0; i < (1 << 12); ++i) t->linear_to_alaw[i] = alaw_from_top12(i < (1 << 11) ? i : i - (1 << 12));
    return t;
}

enum class Law { ulaw, alaw };

class G711Encoder final : public Translator {
public:
    G711Encoder(std::shared_ptr<const G711Tables> tables, Law law)
        : tables_(std::move(tables)), law_(law), to_(law == Law::ulaw ? Format::ulaw : Format::alaw) {}

    bool convert(const Frame& in, Frame& out) override {
        const auto bytes = in.payload();
        if (bytes.size() % 2 != 0 || bytes.size() / 2 > max_samples) return false;
        const std::size_t n = bytes.size() / 2;
        std::memcpy(pcm_.data(), bytes.data(), bytes.size());
        if (law_ == Law::ulaw) {
            const auto& table = tables_->linear_to_ulaw;
            for (std::size_t i = 0; i < n; ++i) codes_[i] = table[static_cast<std::uint16_t>(pcm_[i]) >> 2];
        } else {
            const auto& table = tables_->linear_to_alaw;
            for (std::size_t i = 0; i < n; ++i) codes_[i] = table[static_cast<std::uint16_t>(pcm_[i]) >> 4];
        }
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(to_);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(std::span<const std::uint8_t>(codes_.data(), n));
        return true;
    }

private:
    std::shared_ptr<const G711Tables> tables_;
    Law law_;
    Format to_;
    std::array<std::int16_t, max_samples> pcm_{};
    std::array<std::uint8_t, max_samples> codes_{};
};

class G711Decoder final : public Translator {
public:
    G711Decoder(std::shared_ptr<const G711Tables> tables, Law law)
        : tables_(std::move(tables)), table_(law == Law::ulaw ? &tables_->ulaw_to_linear : &tables_->alaw_to_linear) {
        plc_init(&plc_);
    }

    bool convert(const Frame& in, Frame& out) override {
        const auto codes = in.payload();
        if (codes.size() > max_samples) return false;
        const std::size_t n = codes.size();
        for (std::size_t i = 0; i < n; ++i) pcm_[i] = (*table_)[codes[i]];
        if (n > 0) {
            // Records the history to conceal from; after a gap it also blends
            // the concealed audio into this packet, so it may change pcm_.
            plc_rx(&plc_, pcm_.data(), static_cast<int>(n));
            heard_ = true;
        }
        emit(n, out);
        return true;
    }

    bool conceal(std::uint32_t samples, Frame& out) override {
        // Nothing to extrapolate from before the first packet: the caller plays silence.
        if (!heard_ || samples == 0 || samples > max_samples) return false;
        plc_fillin(&plc_, pcm_.data(), static_cast<int>(samples));
        emit(samples, out);
        return true;
    }

private:
    void emit(std::size_t n, Frame& out) const {
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(Format::slin8);
        out.samples = static_cast<std::uint32_t>(n);
        out.set_payload(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(pcm_.data()),
                                                      n * sizeof(std::int16_t)));
    }

    std::shared_ptr<const G711Tables> tables_;
    const std::array<std::int16_t, 256>* table_;
    plc_state_t plc_{};
    bool heard_ = false;
    std::array<std::int16_t, max_samples> pcm_{};
};

class G711Module final : public Module {
public:
    void load(Host& host) override {
        auto tables = build_tables();
        add_pair(host, tables, Law::ulaw, Format::ulaw, "G.711 mu-law");
        add_pair(host, tables, Law::alaw, Format::alaw, "G.711 A-law");
    }

private:
    void add_pair(Host& host, const std::shared_ptr<const G711Tables>& tables, Law law, Format format,
                  std::string_view name) {
        // G.711 takes no options; anything else is a configuration mistake.
        registrations_.push_back(
            host.add(TranslatorInfo{Format::slin8, format, std::string(name) + " encoder",
                                    [tables, law](std::string_view options) -> std::unique_ptr<Translator> {
                                        if (!options.empty()) return nullptr;
                                        return std::make_unique<G711Encoder>(tables, law);
                                    }}));
        registrations_.push_back(
            host.add(TranslatorInfo{format, Format::slin8, std::string(name) + " decoder, with packet-loss concealment",
                                    [tables, law](std::string_view options) -> std::unique_ptr<Translator> {
                                        if (!options.empty()) return nullptr;
                                        return std::make_unique<G711Decoder>(tables, law);
                                    }}));
    }

    std::vector<Registration> registrations_;
};

}  // namespace

TANDEM_MODULE(G711Module)
