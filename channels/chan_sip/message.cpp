#include "message.hpp"
#include "text.hpp"

#include <cstdio>
#include <ctime>

namespace tandem::sip {

std::string_view to_string(Transport t) {
    switch (t) {
        case Transport::udp:
            return "udp";
        case Transport::tcp:
            return "tcp";
        case Transport::tls:
            return "tls";
    }
    return "udp";
}

std::optional<Transport> parse_transport(std::string_view name) {
    if (iequals(name, "udp")) return Transport::udp;
    if (iequals(name, "tcp")) return Transport::tcp;
    if (iequals(name, "tls")) return Transport::tls;
    return std::nullopt;
}

bool SipRequest::supports(std::string_view option_tag) const {
    for (auto& s : supported)
        if (iequals(s, option_tag)) return true;
    return false;
}

std::string SipResponse::header(std::string_view name) const {
    for (auto& [n, v] : headers)
        if (iequals(n, name)) return v;
    return {};
}

std::string SipResponse::header_block() const {
    std::string out;
    for (auto& [n, v] : headers) {
        out += n;
        out += ": ";
        for (char c : v)
            if (c != '\r' && c != '\n') out += c;
        out += "\r\n";
    }
    return out;
}

std::string http_date(std::int64_t unix_seconds) {
    static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                  months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

}  // namespace tandem::sip
