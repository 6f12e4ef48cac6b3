#include "settings.hpp"
#include "text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>

namespace tandem::sip {

namespace {

using config::Diagnostic;
using config::OptionSpec;
using config::OptionType;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::vector<std::string> split(std::string_view s, std::string_view seps = ",&") {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || seps.find(s[i]) != std::string_view::npos) {
            auto item = trim(s.substr(start, i - start));
            if (!item.empty()) out.emplace_back(item);
            start = i + 1;
        }
    }
    return out;
}

std::string unquote(std::string_view v) {
    v = trim(v);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return std::string(v);
}

// Codec names endpoints may list; the media step maps them to formats.
const std::vector<std::string>& known_codecs() {
    static const std::vector<std::string> names = {"ulaw",  "alaw",  "g722",  "g726", "g729", "gsm",  "opus",
                                                   "speex", "lpc10", "adpcm", "ilbc", "h263", "h264", "vp8"};
    return names;
}

const std::vector<std::string>& dtmf_modes() {
    static const std::vector<std::string> modes = {"rfc4733", "rfc2833", "info", "shortinfo", "inband", "auto"};
    return modes;
}

bool valid_endpoint_name(std::string_view n) {
    if (n.empty() || n.size() > 64) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-' || c == '+' || c == '~';
    });
}

bool safe_header_text(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) { return c == '"' || c == '\\' || c == '\r' || c == '\n'; });
}

bool parse_nat(const std::vector<std::string>& items, NatMode& out, std::string& bad) {
    NatMode m{false, false, false};
    for (auto& raw : items) {
        auto v = lower(raw);
        if (v == "no" || v == "never") {
            m.force_rport = m.comedia = false;
        } else if (v == "yes") {
            m.force_rport = m.comedia = true;
        } else if (v == "force_rport") {
            m.force_rport = true;
        } else if (v == "comedia") {
            m.comedia = true;
        } else if (v == "auto_force_rport") {
            m.force_rport = m.automatic = true;
        } else if (v == "auto_comedia") {
            m.comedia = m.automatic = true;
        } else {
            bad = raw;
            return false;
        }
    }
    out = m;
    return true;
}

bool parse_qualify(std::string_view text, QualifyMode& out) {
    auto v = lower(trim(text));
    if (v == "yes" || v == "true" || v == "on") {
        out = QualifyMode{true, std::chrono::milliseconds(2000)};
        return true;
    }
    if (v == "no" || v == "false" || v == "off" || v.empty()) {
        out = QualifyMode{false, std::chrono::milliseconds(2000)};
        return true;
    }
    long ms = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (ec != std::errc() || p != v.data() + v.size() || ms < 0 || ms > 60000) return false;
    out = QualifyMode{ms > 0, std::chrono::milliseconds(ms > 0 ? ms : 2000)};
    return true;
}

// allow=/disallow= lines, in file order (templates first), Asterisk style.
void apply_codec_lines(const config::Section& s, std::vector<std::string>& codecs, std::vector<Diagnostic>& errors) {
    for (auto& v : s.variables) {
        bool allow = iequals(v.name, "allow");
        if (!allow && !iequals(v.name, "disallow")) continue;
        for (auto& item : split(v.value)) {
            auto name = lower(item);
            if (name == "all") {
                if (allow)
                    codecs = known_codecs();
                else
                    codecs.clear();
                continue;
            }
            if (std::find(known_codecs().begin(), known_codecs().end(), name) == known_codecs().end()) {
                errors.push_back({v.where, fmt::format("unknown codec '{}' in [{}]", item, s.name)});
                continue;
            }
            auto it = std::find(codecs.begin(), codecs.end(), name);
            if (allow && it == codecs.end()) codecs.push_back(name);
            if (!allow && it != codecs.end()) codecs.erase(it);
        }
    }
}

bool has_codec_lines(const config::Section& s) {
    return std::any_of(s.variables.begin(), s.variables.end(), [](const config::Variable& v) {
        return iequals(v.name, "allow") || iequals(v.name, "disallow");
    });
}

void parse_callerid(std::string_view text, Endpoint& e) {
    e.callerid = std::string(trim(text));
    auto lt = text.find('<');
    auto gt = text.rfind('>');
    if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt) {
        e.callerid_name = unquote(text.substr(0, lt));
        e.callerid_number = std::string(trim(text.substr(lt + 1, gt - lt - 1)));
    } else {
        e.callerid_number = e.callerid;
    }
}

// TLS listens through tlsenable=, so [general] transport= lists only udp
// and tcp; an endpoint may name tls among the transports it is allowed.
std::optional<std::vector<Transport>> parse_transports(const std::vector<std::string>& items, std::string& bad,
                                                       bool allow_tls = false) {
    std::vector<Transport> out;
    for (auto& i : items) {
        auto t = parse_transport(i);
        if (!t || (*t == Transport::tls && !allow_tls)) {
            bad = i;
            return std::nullopt;
        }
        if (std::find(out.begin(), out.end(), *t) == out.end()) out.push_back(*t);
    }
    return out;
}

const config::Section& empty_section() {
    static const config::Section s;
    return s;
}

}  // namespace

std::string_view to_string(EndpointType t) {
    switch (t) {
        case EndpointType::friend_:
            return "friend";
        case EndpointType::peer:
            return "peer";
        case EndpointType::user:
            return "user";
    }
    return "friend";
}

std::string NatMode::str() const {
    if (!force_rport && !comedia) return "no";
    std::string out;
    if (force_rport) out = automatic ? "auto_force_rport" : "force_rport";
    if (comedia) out += std::string(out.empty() ? "" : ",") + (automatic ? "auto_comedia" : "comedia");
    return out;
}

std::span<const OptionSpec> general_schema() {
    static const std::vector<OptionSpec> schema = {
        {.name = "bindaddr", .default_value = "0.0.0.0", .help = "Address to listen on (0.0.0.0: every IPv4 address)."},
        {.name = "bindport",
         .type = OptionType::integer,
         .default_value = "5060",
         .min = 1,
         .max = 65535,
         .help = "Port to listen on."},
        {.name = "transport",
         .type = OptionType::list,
         .default_value = "udp",
         .help = "Transports to listen on: udp, tcp."},
        {.name = "udprcvbuf",
         .type = OptionType::integer,
         .default_value = "4194304",
         .min = 0,
         .max = 268435456,
         .help = "Receive buffer of the UDP SIP socket in bytes (0: the system's default). A large buffer "
                 "absorbs bursts of requests instead of dropping them."},
        {.name = "overloadqueue",
         .type = OptionType::integer,
         .default_value = "50",
         .min = 0,
         .max = 100,
         .help = "Overload guard: while more than this percentage of the UDP receive buffer holds requests not "
                 "yet read, new calls (INVITE) and registrations are refused with 503 and Retry-After, so that "
                 "calls in progress keep their ACKs, BYEs and re-INVITEs flowing (0: never refuse)."},
        {.name = "overloadretryafter",
         .type = OptionType::duration,
         .default_value = "5s",
         .min = 1000,
         .max = 3600000,
         .help = "Retry-After of the 503 the overload guard answers (whole seconds)."},
        {.name = "tcpauthtimeout",
         .type = OptionType::duration,
         .default_value = "30s",
         .min = 0,
         .max = 3600000,
         .help = "A TCP or TLS connection a client opens must carry an authenticated request (a REGISTER or "
                 "INVITE that passes digest, or any request from a peer known by its address) within this "
                 "time, or it is closed (whole seconds; 0: never). Authenticated connections stay."},
        {.name = "tcpauthlimit",
         .type = OptionType::integer,
         .default_value = "100",
         .min = 0,
         .max = 1000000,
         .help = "At most this many TCP and TLS connections that have not authenticated yet are open at a "
                 "time; the newest beyond the limit are closed at once (0: no limit)."},
        {.name = "tlsenable",
         .type = OptionType::boolean,
         .default_value = "no",
         .help = "Listen for SIP over TLS on tlsbindport too."},
        {.name = "tlsbindport",
         .type = OptionType::integer,
         .default_value = "5061",
         .min = 1,
         .max = 65535,
         .help = "Port to listen on for TLS."},
        {.name = "tlscertfile", .help = "PEM certificate of the TLS listener (may hold the key too)."},
        {.name = "tlsprivatekey", .help = "PEM private key of the certificate (default: tlscertfile)."},
        {.name = "tlscafile",
         .help = "PEM certificates of the authorities that client certificates are checked against."},
        {.name = "tlsverifyclient",
         .type = OptionType::boolean,
         .default_value = "no",
         .help = "Require a client certificate signed by tlscafile."},
        {.name = "register",
         .help = "Register with a provider: [tcp://|tls://]user[:secret[:authuser]]@host[:port][/contact] "
                 "(repeatable)."},
        {.name = "outboundproxy",
         .help = "Send requests to peers and registrars through this proxy: [udp://|tcp://|tls://]host[:port] "
                 "or a sip: URI (a loose Route)."},
        {.name = "registertimeout",
         .type = OptionType::duration,
         .default_value = "20s",
         .min = 1000,
         .max = 3600000,
         .help = "Wait before retrying a failed outbound registration (doubles, up to 8 times)."},
        {.name = "registerattempts",
         .type = OptionType::integer,
         .default_value = "0",
         .min = 0,
         .max = 100000,
         .help = "Failed outbound registration attempts before giving up (0: never give up)."},
        {.name = "context", .default_value = "default", .help = "Default dialplan context of endpoints."},
        {.name = "realm", .default_value = "tandem", .help = "Digest authentication realm."},
        {.name = "useragent", .help = "User-Agent and Server header (default: Tandem and its version)."},
        {.name = "maxexpiry",
         .type = OptionType::integer,
         .default_value = "3600",
         .min = 1,
         .max = 604800,
         .help = "Longest registration granted, in seconds."},
        {.name = "minexpiry",
         .type = OptionType::integer,
         .default_value = "60",
         .min = 1,
         .max = 604800,
         .help = "Shortest registration accepted (423 below), in seconds."},
        {.name = "defaultexpiry",
         .type = OptionType::integer,
         .default_value = "120",
         .min = 1,
         .max = 604800,
         .help = "Registration time when the device asks for none, in seconds."},
        {.name = "qualifyfreq",
         .type = OptionType::duration,
         .default_value = "60s",
         .min = 1000,
         .max = 3600000,
         .help = "How often qualify=yes endpoints are sent OPTIONS."},
        {.name = "autoban",
         .type = OptionType::boolean,
         .default_value = "yes",
         .help = "Ban addresses that keep failing authentication."},
        {.name = "autoban_failures",
         .type = OptionType::integer,
         .default_value = "5",
         .min = 1,
         .max = 1000,
         .help = "Failures within autoban_window that ban an address."},
        {.name = "autoban_window",
         .type = OptionType::duration,
         .default_value = "60s",
         .min = 1000,
         .max = 86400000,
         .help = "Window in which failures are counted."},
        {.name = "autoban_duration",
         .type = OptionType::duration,
         .default_value = "600s",
         .min = 1000,
         .max = 30LL * 86400000,
         .help = "How long a ban lasts."},
        {.name = "autoban_exempt",
         .type = OptionType::list,
         .help = "Addresses or CIDR ranges never banned (management hosts)."},
        {.name = "alwaysauthreject",
         .type = OptionType::boolean,
         .default_value = "yes",
         .help = "Answer an unknown user exactly as a wrong password."},
        {.name = "nonce_lifetime",
         .type = OptionType::duration,
         .default_value = "300s",
         .min = 10000,
         .max = 86400000,
         .help = "Age after which a nonce is stale (the client re-authenticates silently)."},
        {.name = "auth_algorithms",
         .type = OptionType::list,
         .default_value = "md5",
         .help = "Digest algorithms offered, preferred first: md5, sha256."},
        {.name = "sipdebug",
         .type = OptionType::boolean,
         .default_value = "no",
         .help = "Log every SIP message in and out (as `sip set debug on`)."},
        // Defaults for endpoints that do not set them.
        {.name = "nat", .type = OptionType::list, .default_value = "force_rport", .help = "Default nat= of endpoints."},
        {.name = "qualify", .default_value = "no", .help = "Default qualify= of endpoints."},
        {.name = "dtmfmode",
         .type = OptionType::choice,
         .default_value = "rfc4733",
         .choices = dtmf_modes(),
         .help = "Default dtmfmode= of endpoints."},
        {.name = "allow", .help = "Default codecs of endpoints (allow=/disallow= lines, in order)."},
        {.name = "disallow", .help = "See allow."},
        {.name = "maxcontacts",
         .type = OptionType::integer,
         .default_value = "10",
         .min = 1,
         .max = 100,
         .help = "Default number of contacts an endpoint may register at once."},
        {.name = "language", .help = "Default language of endpoints."},
    };
    return schema;
}

std::span<const OptionSpec> endpoint_schema() {
    static const std::vector<OptionSpec> schema = {
        {.name = "type",
         .type = OptionType::choice,
         .default_value = "friend",
         .choices = {"friend", "peer", "user"},
         .help = "friend: calls both ways; peer: we call it (and it may register); user: it calls us."},
        {.name = "host",
         .default_value = "dynamic",
         .help = "dynamic (reachable where it registers) or the address of a gateway or trunk."},
        {.name = "port",
         .type = OptionType::integer,
         .default_value = "5060",
         .min = 1,
         .max = 65535,
         .help = "Port of a static host."},
        {.name = "secret", .help = "Digest password, at least 12 characters."},
        {.name = "context", .help = "Dialplan context of its calls (default: [general] context)."},
        {.name = "callerid", .help = "\"Name\" <number> presented for its calls."},
        {.name = "mailbox", .help = "Mailboxes for message-waiting, comma-separated."},
        {.name = "allow", .help = "Codecs, in preference order (allow=/disallow= lines, in order)."},
        {.name = "disallow", .help = "See allow; disallow=all clears the list."},
        {.name = "dtmfmode",
         .type = OptionType::choice,
         .default_value = "rfc4733",
         .choices = dtmf_modes(),
         .help = "How DTMF is carried: rfc4733 (rfc2833), info, shortinfo, inband (tones in the audio, detected "
                 "by Tandem), auto (RFC 4733 when the peer offers telephone-event, in-band otherwise)."},
        {.name = "nat",
         .type = OptionType::list,
         .default_value = "force_rport",
         .help = "no, force_rport, comedia, yes (both), auto_force_rport, auto_comedia."},
        {.name = "qualify", .default_value = "no", .help = "yes, no, or the longest acceptable round trip in ms."},
        {.name = "call-limit",
         .type = OptionType::integer,
         .default_value = "0",
         .min = 0,
         .max = 100000,
         .help = "Simultaneous calls (0: no limit)."},
        {.name = "deny", .help = "Address or CIDR range refused (in order with permit=; last match wins)."},
        {.name = "permit", .help = "Address or CIDR range accepted (in order with deny=; last match wins)."},
        {.name = "insecure",
         .type = OptionType::list,
         .help = "port: match a gateway by address only; invite: do not challenge its INVITEs."},
        {.name = "transport",
         .type = OptionType::list,
         .help = "Transports it may use: udp, tcp, tls (the first is used for our requests to it)."},
        {.name = "outboundproxy",
         .help = "Reach it through this proxy (default: [general] outboundproxy; empty: directly)."},
        {.name = "maxcontacts",
         .type = OptionType::integer,
         .default_value = "10",
         .min = 1,
         .max = 100,
         .help = "Contacts it may register at once (multi-presence)."},
        {.name = "description", .help = "Free text shown by `sip show endpoint`."},
        {.name = "language", .help = "Language of its calls."},
        {.name = "accountcode", .help = "Account code of its calls (CDRs)."},
        {.name = "mohinterpret",
         .help = "Music on hold class its calls hear when held (sets CHANNEL(musicclass)); passthrough: "
                 "no music, the hold is passed on to the phone by re-INVITE (a=sendonly, then a=sendrecv)."},
        {.name = "mohsuggest",
         .help = "Music on hold class suggested to the other party when it puts a call on hold "
                 "(used unless that party has a class of its own)."},
        {.name = "media_encryption",
         .type = OptionType::choice,
         .default_value = "no",
         .choices = {"no", "sdes"},
         .help = "sdes: SRTP with keys in the SDP (RTP/SAVP, a=crypto); calls without it are refused."},
        {.name = "defaultuser", .help = "User name for authenticating our calls to it (trunks); default: its name."},
        {.name = "fromuser", .help = "User part of the From of our calls to it (trunks that expect an account)."},
        {.name = "register",
         .type = OptionType::boolean,
         .default_value = "no",
         .help = "Register with this peer's host as defaultuser (or the section name) with secret."},
        {.name = "rtptimeout",
         .type = OptionType::integer,
         .default_value = "60",
         .min = 0,
         .max = 86400,
         .help = "Hang up an answered call after this many seconds without RTP from the phone (not while on "
                 "hold); 0 never. Catches peers that vanish without a BYE."},
        {.name = "allowtransfer",
         .type = OptionType::boolean,
         .default_value = "yes",
         .help = "May transfer its calls: REFER (blind and attended) and INVITE with Replaces; no answers 403."},
        {.name = "videosupport",
         .type = OptionType::boolean,
         .default_value = "no",
         .help = "Negotiate video streams (the video codecs of allow=: h264, vp8, h263) and relay them untouched "
                 "to a bridged party that negotiated the same codec; no answers m=video with port 0."},
        {.name = "directmedia",
         .type = OptionType::boolean,
         .default_value = "no",
         .help = "Accepted for compatibility: media always flows through Tandem (yes is treated as no)."},
        {.name = "faxdetect",
         .type = OptionType::choice,
         .default_value = "no",
         .choices = {"no", "yes", "cng", "ced"},
         .help = "Listen for fax tones in its calls' audio: cng (a fax calls), ced (a fax answers), yes (both). "
                 "Sets FAXDETECTED and sends the call to the `fax` extension of its context, if there is one."},
    };
    return schema;
}

const Endpoint* Settings::find(std::string_view name) const {
    auto it = endpoints.find(name);
    return it == endpoints.end() ? nullptr : &it->second;
}

const Endpoint* Settings::find_by_address(const SocketAddress& from) const {
    for (auto& [name, e] : endpoints) {
        if (e.type == EndpointType::user || !e.host_ip || *e.host_ip != from.ip) continue;
        if (e.insecure_port || e.port == from.port) return &e;
    }
    return nullptr;
}

ParsedSettings parse_settings(const config::File& file, std::string_view default_useragent) {
    ParsedSettings out;
    auto settings = std::make_shared<Settings>();
    auto& g = settings->general;
    auto& errors = out.errors;
    auto report = [&](const std::vector<Diagnostic>& ds) { errors.insert(errors.end(), ds.begin(), ds.end()); };

    // --- [general] ---
    const config::Section* gs = file.section("general");
    const config::Section& gsec = gs ? *gs : empty_section();
    config::Options go;
    report(config::bind(gsec, general_schema(), go));
    auto where = [&](const config::Options& o, std::string_view name, const config::Section& s) {
        auto w = o.where(name);
        return w ? *w : s.where;
    };

    if (auto a = IpAddress::parse(go.str("bindaddr")))
        g.bindaddr = a->str();
    else
        errors.push_back(
            {where(go, "bindaddr", gsec), fmt::format("bindaddr must be an IP address, got '{}'", go.str("bindaddr"))});
    g.bindport = static_cast<std::uint16_t>(go.integer("bindport"));
    {
        std::string bad;
        auto t = parse_transports(go.list("transport"), bad);
        if (!t || t->empty())
            errors.push_back({where(go, "transport", gsec),
                              fmt::format("transport must list udp and/or tcp, got '{}'", bad.empty() ? "" : bad)});
        else
            g.transports = *t;
    }
    g.udp_rcvbuf = static_cast<std::uint32_t>(go.integer("udprcvbuf"));
    g.overload_queue = static_cast<unsigned>(go.integer("overloadqueue"));
    g.overload_retry_after = std::chrono::duration_cast<std::chrono::seconds>(go.duration("overloadretryafter"));
    g.tcp_auth_timeout = std::chrono::ceil<std::chrono::seconds>(go.duration("tcpauthtimeout"));
    g.tcp_auth_limit = static_cast<unsigned>(go.integer("tcpauthlimit"));
    g.tls.enabled = go.boolean("tlsenable");
    g.tls.port = static_cast<std::uint16_t>(go.integer("tlsbindport"));
    g.tls.certfile = go.str("tlscertfile");
    g.tls.keyfile = go.str("tlsprivatekey");
    if (g.tls.keyfile.empty()) g.tls.keyfile = g.tls.certfile;
    g.tls.cafile = go.str("tlscafile");
    g.tls.verify_client = go.boolean("tlsverifyclient");
    if (g.tls.enabled) {
        // Checked here so that `tandem -t` names the line: Sofia only says
        // that the TLS listener could not start.
        auto readable = [&](std::string_view option, const std::string& path) {
            if (path.empty()) {
                errors.push_back({where(go, "tlsenable", gsec), fmt::format("tlsenable=yes needs {}", option)});
                return;
            }
            std::ifstream in(path);
            if (!in)
                errors.push_back({where(go, option, gsec),
                                  fmt::format("{}: cannot read '{}': {}", option, path, std::strerror(errno))});
        };
        readable("tlscertfile", g.tls.certfile);
        if (go.has("tlsprivatekey")) readable("tlsprivatekey", g.tls.keyfile);
        if (!g.tls.cafile.empty()) readable("tlscafile", g.tls.cafile);
        if (g.tls.verify_client && g.tls.cafile.empty())
            errors.push_back({where(go, "tlsverifyclient", gsec), "tlsverifyclient=yes needs tlscafile"});
        if (g.tls.port == g.bindport && g.listens_tcp())
            errors.push_back({where(go, "tlsbindport", gsec), "tlsbindport must differ from bindport when TCP is on"});
    }
    g.context = go.str("context");
    g.realm = go.str("realm");
    if (g.realm.empty() || !safe_header_text(g.realm)) {
        errors.push_back({where(go, "realm", gsec), "realm must be non-empty, without quotes or backslashes"});
        g.realm = "tandem";
    }
    g.useragent = go.str("useragent");
    if (g.useragent.empty()) g.useragent = std::string(default_useragent);
    g.maxexpiry = std::chrono::seconds(go.integer("maxexpiry"));
    g.minexpiry = std::chrono::seconds(go.integer("minexpiry"));
    g.defaultexpiry = std::chrono::seconds(go.integer("defaultexpiry"));
    if (g.minexpiry > g.maxexpiry)
        errors.push_back({where(go, "minexpiry", gsec), "minexpiry must not exceed maxexpiry"});
    if (g.defaultexpiry < g.minexpiry || g.defaultexpiry > g.maxexpiry)
        errors.push_back({where(go, "defaultexpiry", gsec), "defaultexpiry must lie between minexpiry and maxexpiry"});
    g.qualifyfreq = go.duration("qualifyfreq");
    g.bans.enabled = go.boolean("autoban");
    g.bans.failures = static_cast<int>(go.integer("autoban_failures"));
    g.bans.window = std::chrono::duration_cast<std::chrono::seconds>(go.duration("autoban_window"));
    g.bans.duration = std::chrono::duration_cast<std::chrono::seconds>(go.duration("autoban_duration"));
    for (auto& item : go.list("autoban_exempt")) {
        if (auto c = Cidr::parse(item))
            g.bans.exempt.push_back(*c);
        else
            errors.push_back({where(go, "autoban_exempt", gsec),
                              fmt::format("autoban_exempt: '{}' is not an address or CIDR range", item)});
    }
    g.alwaysauthreject = go.boolean("alwaysauthreject");
    g.nonce_lifetime = std::chrono::duration_cast<std::chrono::seconds>(go.duration("nonce_lifetime"));
    g.auth_algorithms.clear();
    for (auto& item : go.list("auth_algorithms")) {
        auto name = lower(item);
        std::optional<DigestAlgorithm> a;
        if (name == "md5") a = DigestAlgorithm::md5;
        if (name == "sha256" || name == "sha-256") a = DigestAlgorithm::sha256;
        if (!a)
            errors.push_back({where(go, "auth_algorithms", gsec),
                              fmt::format("auth_algorithms: unknown algorithm '{}' (md5, sha256)", item)});
        else if (std::find(g.auth_algorithms.begin(), g.auth_algorithms.end(), *a) == g.auth_algorithms.end())
            g.auth_algorithms.push_back(*a);
    }
    if (g.auth_algorithms.empty()) g.auth_algorithms.push_back(DigestAlgorithm::md5);
    g.sipdebug = go.boolean("sipdebug");

    // A transport our requests use needs its listener: Sofia sends over the
    // transports it listens on.
    auto can_send = [&](Transport t) {
        if (t == Transport::tls) return g.tls.enabled;
        return std::find(g.transports.begin(), g.transports.end(), t) != g.transports.end();
    };
    auto needs = [](Transport t) {
        return t == Transport::tls ? "tlsenable=yes in [general]"
                                   : fmt::format("{} in [general] transport=", to_string(t));
    };
    auto proxy_option = [&](const config::Options& opts, const config::Section& sec, std::string& into) {
        std::string bad;
        auto p = parse_outbound_proxy(opts.str("outboundproxy"), bad);
        if (!p) {
            errors.push_back({where(opts, "outboundproxy", sec), bad});
            return;
        }
        if (!can_send(p->transport)) {
            errors.push_back(
                {where(opts, "outboundproxy", sec),
                 fmt::format("outboundproxy over {} needs {}", to_string(p->transport), needs(p->transport))});
            return;
        }
        into = std::move(p->route);
    };
    if (go.has("outboundproxy") && !go.str("outboundproxy").empty()) proxy_option(go, gsec, g.outboundproxy);

    // Outbound registrations written in [general].
    auto retry = std::chrono::duration_cast<std::chrono::seconds>(go.duration("registertimeout"));
    auto attempts = static_cast<int>(go.integer("registerattempts"));
    for (const auto* v : gsec.all("register")) {
        std::string bad;
        auto r = parse_register_line(v->value, bad);
        if (!r) {
            errors.push_back({v->where, bad});
            continue;
        }
        if (!can_send(r->transport)) {
            errors.push_back(
                {v->where, fmt::format("register over {} needs {}", to_string(r->transport), needs(r->transport))});
            continue;
        }
        r->expiry = g.defaultexpiry;
        r->retry = retry;
        r->attempts = attempts;
        r->proxy = g.outboundproxy;
        settings->registrations.push_back(std::move(*r));
    }

    // Endpoint defaults from [general].
    NatMode default_nat;
    {
        std::string bad;
        if (!parse_nat(go.list("nat"), default_nat, bad))
            errors.push_back({where(go, "nat", gsec), fmt::format("nat: unknown value '{}'", bad)});
    }
    g.nat = default_nat;
    QualifyMode default_qualify;
    if (!parse_qualify(go.str("qualify"), default_qualify))
        errors.push_back({where(go, "qualify", gsec), "qualify must be yes, no or milliseconds"});
    std::vector<std::string> default_codecs{"ulaw", "alaw"};
    if (has_codec_lines(gsec)) apply_codec_lines(gsec, default_codecs, errors);

    // --- endpoints ---
    for (auto& s : file.sections) {
        if (s.is_template || s.name == "general") continue;
        if (s.name.empty()) {
            if (!s.variables.empty())
                errors.push_back({s.variables.front().where, "option outside any section in sip.conf"});
            continue;
        }
        if (s.name == "authentication") {
            errors.push_back({s.where, "[authentication] (outgoing credentials) is not supported yet"});
            continue;
        }
        std::size_t before = errors.size();
        if (!valid_endpoint_name(s.name))
            errors.push_back(
                {s.where, fmt::format("endpoint name [{}] may only use letters, digits and . _ - + ~", s.name)});
        config::Options o;
        report(config::bind(s, endpoint_schema(), o));

        Endpoint e;
        e.name = s.name;
        e.where = s.where;
        auto type = o.str("type");
        e.type = type == "peer" ? EndpointType::peer : type == "user" ? EndpointType::user : EndpointType::friend_;
        auto host = std::string(trim(o.str("host")));
        e.dynamic = iequals(host, "dynamic");
        if (!e.dynamic) {
            e.host = host;
            e.host_ip = IpAddress::parse(host);
            if (host.empty() || host.find_first_of(" \t\"<>;") != std::string::npos)
                errors.push_back({where(o, "host", s), fmt::format("host of [{}] must be dynamic, an address or a "
                                                                   "host name, got '{}'",
                                                                   s.name, host)});
            if (e.type == EndpointType::user)
                errors.push_back({where(o, "host", s), fmt::format("[{}] is type=user: it has no host", s.name)});
        }
        e.port = static_cast<std::uint16_t>(o.integer("port"));
        e.secret = o.str("secret");
        if (o.has("secret") && e.secret.size() < min_secret_length)
            errors.push_back(
                {where(o, "secret", s), fmt::format("secret of [{}] is too short: {} characters, at least {} required",
                                                    s.name, e.secret.size(), min_secret_length)});
        if (e.secret.empty() && (e.dynamic || e.type == EndpointType::user))
            errors.push_back({s.where, fmt::format("[{}] needs a secret (of at least {} characters): it {}", s.name,
                                                   min_secret_length,
                                                   e.dynamic ? "registers (host=dynamic)" : "calls in (type=user)")});
        e.context = o.has("context") ? o.str("context") : g.context;
        if (o.has("callerid")) parse_callerid(o.str("callerid"), e);
        e.mailboxes = split(o.str("mailbox"), ",");
        e.codecs = default_codecs;
        if (has_codec_lines(s)) apply_codec_lines(s, e.codecs, errors);
        e.dtmfmode = o.has("dtmfmode") ? o.str("dtmfmode") : go.str("dtmfmode");
        if (e.dtmfmode == "rfc2833") e.dtmfmode = "rfc4733";
        e.nat = default_nat;
        if (o.has("nat")) {
            std::string bad;
            if (!parse_nat(o.list("nat"), e.nat, bad))
                errors.push_back({where(o, "nat", s), fmt::format("nat: unknown value '{}'", bad)});
        }
        e.qualify = default_qualify;
        if (o.has("qualify") && !parse_qualify(o.str("qualify"), e.qualify))
            errors.push_back({where(o, "qualify", s), "qualify must be yes, no or milliseconds"});
        e.call_limit = static_cast<int>(o.integer("call-limit"));
        for (auto& v : s.variables) {
            bool permit = iequals(v.name, "permit");
            if (!permit && !iequals(v.name, "deny")) continue;
            for (auto& item : split(v.value, ",")) {
                if (auto c = Cidr::parse(item))
                    e.acl.add(permit ? Acl::Sense::permit : Acl::Sense::deny, *c);
                else
                    errors.push_back({v.where, fmt::format("{}: '{}' is not an address or CIDR range", v.name, item)});
            }
        }
        for (auto& item : o.list("insecure")) {
            auto v = lower(item);
            if (v == "port")
                e.insecure_port = true;
            else if (v == "invite")
                e.insecure_invite = true;
            else if (v == "very")
                e.insecure_port = e.insecure_invite = true;
            else if (v != "no")
                errors.push_back(
                    {where(o, "insecure", s), fmt::format("insecure: unknown value '{}' (port, invite)", item)});
        }
        if ((e.insecure_port || e.insecure_invite) && !e.has_static_host())
            errors.push_back({where(o, "insecure", s),
                              fmt::format("insecure= needs a static host= in [{}]: a dynamic endpoint is known only "
                                          "by its credentials",
                                          s.name)});
        if (o.has("transport")) {
            std::string bad;
            auto t = parse_transports(o.list("transport"), bad, true);
            if (!t || t->empty())
                errors.push_back({where(o, "transport", s), fmt::format("transport: unknown value '{}'", bad)});
            else if (std::find(t->begin(), t->end(), Transport::tls) != t->end() && !g.tls.enabled)
                errors.push_back({where(o, "transport", s), "transport=tls needs tlsenable=yes in [general]"});
            else
                e.transports = *t;
        } else {
            e.transports = g.transports;
        }
        e.max_contacts = static_cast<int>(o.has("maxcontacts") ? o.integer("maxcontacts") : go.integer("maxcontacts"));
        e.description = o.str("description");
        e.language = o.has("language") ? o.str("language") : go.str("language");
        e.mohinterpret = o.str("mohinterpret");
        e.mohsuggest = o.str("mohsuggest");
        e.accountcode = o.str("accountcode");
        e.media_encryption = o.str("media_encryption");
        e.defaultuser = o.str("defaultuser");
        e.fromuser = o.str("fromuser");
        e.directmedia = o.boolean("directmedia");
        e.rtptimeout = std::chrono::seconds(o.integer("rtptimeout"));
        e.allowtransfer = o.boolean("allowtransfer");
        e.faxdetect = o.str("faxdetect");
        e.videosupport = o.boolean("videosupport");
        if (o.has("outboundproxy")) {
            if (!o.str("outboundproxy").empty()) proxy_option(o, s, e.outboundproxy);
        } else {
            e.outboundproxy = g.outboundproxy;
        }
        if (e.has_static_host() && !can_send(e.transport()))
            errors.push_back({where(o, "transport", s), fmt::format("[{}] is reached over {}: that needs {}", s.name,
                                                                    to_string(e.transport()), needs(e.transport()))});
        if (o.boolean("register")) {
            if (!e.has_static_host() || e.secret.empty()) {
                errors.push_back({where(o, "register", s), "register=yes needs a static host= and a secret"});
            } else {
                OutboundRegistration r;
                r.user = e.defaultuser.empty() ? e.name : e.defaultuser;
                r.auth_user = r.user;
                r.contact_user = r.user;
                r.secret = e.secret;
                r.host = e.host_ip ? e.host_ip->uri_host() : e.host;
                r.port = e.port;
                r.transport = e.transport();
                r.proxy = e.outboundproxy;
                r.endpoint = e.name;
                r.expiry = g.defaultexpiry;
                r.retry = retry;
                r.attempts = attempts;
                if (errors.size() == before) settings->registrations.push_back(std::move(r));
            }
        }

        if (errors.size() == before) settings->endpoints.emplace(e.name, std::move(e));
    }
    // A template's mistake shows up once per section that inherits it: say it once.
    std::vector<Diagnostic> unique;
    for (auto& d : errors)
        if (std::none_of(unique.begin(), unique.end(), [&](const Diagnostic& u) {
                return u.where.file == d.where.file && u.where.line == d.where.line && u.message == d.message;
            }))
            unique.push_back(d);
    errors = std::move(unique);
    out.settings = std::move(settings);
    return out;
}

}  // namespace tandem::sip
