#include "media/resample.hpp"

#include "runtime/core_impl.hpp"

#include <fmt/format.h>
#include <speex/speex_resampler.h>

#include <cstring>

namespace tandem {

namespace {

bool is_slin(Format f) {
    return f == Format::slin8 || f == Format::slin16 || f == Format::slin48;
}

// Buffers are sized for this much audio up front; a longer frame grows them
// once (the only allocation, and never again for that size).
constexpr std::uint32_t initial_ms = 60;

class Resampler final : public Translator {
public:
    Resampler(Format from, Format to)
        : to_(to), in_rate_(format_info(from).sample_rate), out_rate_(format_info(to).sample_rate) {
        int err = 0;
        state_ = speex_resampler_init(1, in_rate_, out_rate_, resampler_quality, &err);
        in_.resize(in_rate_ * initial_ms / 1000);
        out_.resize(out_capacity(in_.size()));
    }
    ~Resampler() override {
        if (state_) speex_resampler_destroy(state_);
    }
    Resampler(const Resampler&) = delete;
    Resampler& operator=(const Resampler&) = delete;

    bool ok() const { return state_ != nullptr; }

    bool convert(const Frame& in, Frame& out) override {
        auto payload = in.payload();
        if (payload.size() % 2) return false;
        std::size_t n = payload.size() / 2;
        if (n > in_.size()) {
            in_.resize(n);
            out_.resize(out_capacity(n));
        }
        // The payload is a byte array: copy rather than alias it as int16.
        if (n) std::memcpy(in_.data(), payload.data(), payload.size());
        spx_uint32_t in_len = static_cast<spx_uint32_t>(n);
        spx_uint32_t out_len = static_cast<spx_uint32_t>(out_.size());
        if (n &&
            speex_resampler_process_int(state_, 0, in_.data(), &in_len, out_.data(), &out_len) != RESAMPLER_ERR_SUCCESS)
            return false;
        if (!n) out_len = 0;
        out.kind = FrameKind::voice;
        out.subclass = static_cast<std::uint32_t>(to_);
        out.samples = out_len;
        out.set_payload({reinterpret_cast<const std::uint8_t*>(out_.data()), out_len * sizeof(std::int16_t)});
        return true;
    }

private:
    // Room for every output sample the input can produce, plus the fraction
    // the resampler may carry over from the previous frame.
    std::size_t out_capacity(std::size_t in_samples) const { return in_samples * out_rate_ / in_rate_ + 8; }

    Format to_;
    std::uint32_t in_rate_, out_rate_;
    SpeexResamplerState* state_ = nullptr;
    std::vector<std::int16_t> in_, out_;
};

}  // namespace

std::unique_ptr<Translator> make_resampler(Format from, Format to) {
    if (!is_slin(from) || !is_slin(to) || from == to) return nullptr;
    auto r = std::make_unique<Resampler>(from, to);
    if (!r->ok()) return nullptr;
    return r;
}

void register_resamplers(CoreImpl& core, std::vector<Registration>& out) {
    const Format rates[] = {Format::slin8, Format::slin16, Format::slin48};
    for (Format from : rates)
        for (Format to : rates) {
            if (from == to) continue;
            TranslatorInfo info;
            info.from = from;
            info.to = to;
            info.description =
                fmt::format("Resample {} Hz to {} Hz (SpeexDSP, quality {})", format_info(from).sample_rate,
                            format_info(to).sample_rate, resampler_quality);
            // Resamplers have no options; they ignore the encoder options a
            // path ending in slin may still be given.
            info.create = [from, to](std::string_view) { return make_resampler(from, to); };
            out.push_back(core.translators().add(translator_name(from, to), std::move(info), &core.core_use()));
        }
}

}  // namespace tandem
