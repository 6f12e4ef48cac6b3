#include "dtmf_info.hpp"

#include <cctype>
#include <charconv>
#include <string>

namespace tandem::sip {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

}  // namespace

char parse_info_digit(std::string_view content_type, std::string_view body, std::uint32_t* duration_ms) {
    auto type = lower(content_type);
    if (auto semi = type.find(';'); semi != std::string::npos) type.resize(semi);
    while (!type.empty() && type.back() == ' ') type.pop_back();
    auto valid = [](char c) {
        return (c >= '0' && c <= '9') || c == '*' || c == '#' || (c >= 'A' && c <= 'D') || (c >= 'a' && c <= 'd');
    };
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
            s.remove_suffix(1);
        return s;
    };
    if (type == "application/dtmf") {
        auto d = trim(body);
        if (d.size() == 1 && valid(d[0])) return static_cast<char>(std::toupper(static_cast<unsigned char>(d[0])));
        return 0;
    }
    if (type != "application/dtmf-relay") return 0;
    char digit = 0;
    while (!body.empty()) {
        auto eol = body.find('\n');
        auto line = trim(body.substr(0, eol));
        body = eol == std::string_view::npos ? std::string_view{} : body.substr(eol + 1);
        auto eq = line.find('=');
        if (eq == std::string_view::npos) continue;
        auto key = lower(trim(line.substr(0, eq)));
        auto value = trim(line.substr(eq + 1));
        if (key == "signal") {
            if (value.size() == 1 && valid(value[0]))
                digit = static_cast<char>(std::toupper(static_cast<unsigned char>(value[0])));
            else if (value == "10")
                digit = '*';
            else if (value == "11")
                digit = '#';
        } else if (key == "duration" && duration_ms) {
            std::uint32_t v = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
            if (ec == std::errc() && v <= 60000) *duration_ms = v;
        }
    }
    return digit;
}

}  // namespace tandem::sip
