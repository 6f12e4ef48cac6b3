#include "transfer.hpp"

#include "text.hpp"

#include <fmt/format.h>

namespace tandem::sip {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::optional<ReplacesParam> parse_replaces(std::string_view value) {
    value = trim(value);
    ReplacesParam r;
    auto semi = value.find(';');
    r.call_id = std::string(trim(value.substr(0, semi)));
    if (r.call_id.empty()) return std::nullopt;
    while (semi != std::string_view::npos) {
        value.remove_prefix(semi + 1);
        semi = value.find(';');
        auto param = trim(value.substr(0, semi));
        auto eq = param.find('=');
        auto name = trim(param.substr(0, eq));
        auto val = eq == std::string_view::npos ? std::string_view() : trim(param.substr(eq + 1));
        if (iequals(name, "to-tag"))
            r.to_tag = std::string(val);
        else if (iequals(name, "from-tag"))
            r.from_tag = std::string(val);
        else if (iequals(name, "early-only"))
            r.early_only = true;
    }
    if (r.to_tag.empty() || r.from_tag.empty()) return std::nullopt;
    return r;
}

std::optional<ReferTarget> parse_refer_to(std::string_view uri) {
    uri = trim(uri);
    if (auto open = uri.find('<'); open != std::string_view::npos) {
        auto close = uri.find('>', open);
        if (close == std::string_view::npos) return std::nullopt;
        uri = uri.substr(open + 1, close - open - 1);
    }
    if (starts_with_nocase(uri, "sips:"))
        uri.remove_prefix(5);
    else if (starts_with_nocase(uri, "sip:"))
        uri.remove_prefix(4);
    else
        return std::nullopt;
    std::string_view headers;
    if (auto q = uri.find('?'); q != std::string_view::npos) {
        headers = uri.substr(q + 1);
        uri = uri.substr(0, q);
    }
    ReferTarget t;
    if (auto at = uri.find('@'); at != std::string_view::npos) {
        auto user = uri.substr(0, at);
        if (auto semi = user.find(';'); semi != std::string_view::npos) user = user.substr(0, semi);
        auto decoded = percent_decode(user);
        if (!decoded) return std::nullopt;
        t.user = std::move(*decoded);
        uri.remove_prefix(at + 1);
    }
    for (char c : t.user)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
    auto host = uri.substr(0, uri.find(';'));
    if (host.empty()) return std::nullopt;
    t.host = std::string(host);
    // URI headers: name=value&name=value, escaped.
    while (!headers.empty()) {
        auto amp = headers.find('&');
        auto h = headers.substr(0, amp);
        auto eq = h.find('=');
        if (eq != std::string_view::npos && iequals(h.substr(0, eq), "replaces")) {
            auto value = percent_decode(h.substr(eq + 1));
            if (!value) return std::nullopt;
            auto r = parse_replaces(*value);
            if (!r) return std::nullopt;
            t.replaces = std::move(*r);
        }
        if (amp == std::string_view::npos) break;
        headers.remove_prefix(amp + 1);
    }
    return t;
}

std::string sipfrag(int status, std::string_view phrase) {
    return fmt::format("SIP/2.0 {} {}", status, phrase);
}

std::string_view transfer_kind(std::string_view refer_to) {
    auto t = parse_refer_to(refer_to);
    return t && t->replaces ? "attended" : "blind";
}

}  // namespace tandem::sip
