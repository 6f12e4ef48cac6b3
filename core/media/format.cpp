#include <tandem/media.hpp>

#include <algorithm>
#include <cctype>

namespace tandem {

namespace {

constexpr FormatInfo formats[] = {
    {Format::none, "none", MediaKind::audio, "", 0, 0, -1, 0, 0},
    {Format::slin8, "slin8", MediaKind::audio, "L16", 8000, 8000, -1, 1, 10},
    {Format::slin16, "slin16", MediaKind::audio, "L16", 16000, 16000, -1, 1, 10},
    {Format::slin48, "slin48", MediaKind::audio, "L16", 48000, 48000, -1, 1, 10},
    {Format::ulaw, "ulaw", MediaKind::audio, "PCMU", 8000, 8000, 0, 1, 10},
    {Format::alaw, "alaw", MediaKind::audio, "PCMA", 8000, 8000, 8, 1, 10},
    {Format::g722, "g722", MediaKind::audio, "G722", 16000, 8000, 9, 1, 10},
    {Format::g726, "g726", MediaKind::audio, "G726-32", 8000, 8000, -1, 1, 10},
    {Format::gsm, "gsm", MediaKind::audio, "GSM", 8000, 8000, 3, 1, 20},
    {Format::lpc10, "lpc10", MediaKind::audio, "LPC", 8000, 8000, 7, 1, 22},
    {Format::adpcm, "adpcm", MediaKind::audio, "DVI4", 8000, 8000, 5, 1, 10},
    {Format::speex8, "speex", MediaKind::audio, "speex", 8000, 8000, -1, 1, 20},
    {Format::speex16, "speex16", MediaKind::audio, "speex", 16000, 16000, -1, 1, 20},
    {Format::opus, "opus", MediaKind::audio, "opus", 48000, 48000, -1, 2, 10},
    {Format::g729, "g729", MediaKind::audio, "G729", 8000, 8000, 18, 1, 10},
    {Format::h264, "h264", MediaKind::video, "H264", 0, 90000, -1, 1, 0},
    {Format::vp8, "vp8", MediaKind::video, "VP8", 0, 90000, -1, 1, 0},
    {Format::h263, "h263", MediaKind::video, "H263", 0, 90000, 34, 1, 0},
};
static_assert(std::size(formats) == static_cast<std::size_t>(Format::count_), "one entry per Format");

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

const FormatInfo& format_info(Format f) {
    auto i = static_cast<std::size_t>(f);
    return i < std::size(formats) ? formats[i] : formats[0];
}

std::optional<Format> format_by_name(std::string_view name) {
    struct Alias {
        std::string_view name;
        Format f;
    };
    static constexpr Alias aliases[] = {{"slin", Format::slin8},   {"g711u", Format::ulaw}, {"pcmu", Format::ulaw},
                                        {"g711a", Format::alaw},   {"pcma", Format::alaw},  {"speex8", Format::speex8},
                                        {"g729a", Format::g729}};
    for (auto& f : formats)
        if (f.format != Format::none && iequal(f.name, name)) return f.format;
    for (auto& a : aliases)
        if (iequal(a.name, name)) return a.f;
    return std::nullopt;
}

std::optional<Format> format_by_encoding(std::string_view encoding, std::uint32_t rtp_clock) {
    for (auto& f : formats)
        if (f.format != Format::none && !f.encoding_name.empty() && iequal(f.encoding_name, encoding) &&
            f.rtp_clock == rtp_clock)
            return f.format;
    return std::nullopt;
}

std::size_t format_bytes(Format f, std::uint32_t samples) {
    switch (f) {
        case Format::slin8:
        case Format::slin16:
        case Format::slin48: return samples * 2u;
        case Format::ulaw:
        case Format::alaw: return samples;
        case Format::g722: return samples / 2u;    // 16 kHz samples, 4 bits each
        case Format::g726:
        case Format::adpcm: return samples / 2u;  // 4 bits per sample
        case Format::gsm: return samples / 160u * 33u;
        case Format::lpc10: return samples / 180u * 7u;
        case Format::g729: return samples / 80u * 10u;
        default: return 0;
    }
}

Format slin_at(std::uint32_t rate) {
    switch (rate) {
        case 8000: return Format::slin8;
        case 16000: return Format::slin16;
        case 48000: return Format::slin48;
        default: return Format::none;
    }
}

}  // namespace tandem
