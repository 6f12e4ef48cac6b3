#include "content.hpp"

#include "text.hpp"

namespace tandem::sip {

namespace {

bool istarts_with(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

}  // namespace

int invite_content_status(const InviteContent& c) {
    if (c.has_body) {
        // "identity" is the only coding Tandem reads (RFC 3261 20.12).
        for (auto e : c.encodings)
            if (!e.empty() && !iequals(e, "identity")) return 415;
        // No Content-Type with a body is taken as SDP, as most stacks do.
        bool readable = c.type.empty() || iequals(c.type, "application/sdp") ||
                        (istarts_with(c.type, "multipart/") && c.multipart_has_sdp);
        if (!readable) return 415;
    }
    if (c.accept) {
        // An empty Accept header (or one of empty values) is read as no
        // preference rather than "nothing at all": phones that send one still
        // expect SDP back.
        bool any = false;
        for (auto a : *c.accept) {
            if (a.empty()) continue;
            any = true;
            if (iequals(a, "application/sdp") || iequals(a, "application/*") || iequals(a, "*/*")) return 0;
        }
        if (any) return 406;
    }
    return 0;
}

}  // namespace tandem::sip
