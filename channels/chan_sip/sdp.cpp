#include "sdp.hpp"
#include "text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace tandem::sip {

namespace {

constexpr std::size_t max_lines = 500;
constexpr std::size_t max_media = 16;
constexpr std::size_t max_formats = 64;

template <class T>
std::optional<T> number(std::string_view s) {
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

std::vector<std::string_view> words(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
        if (j > i) out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

std::optional<Direction> parse_direction(std::string_view a) {
    if (a == "sendrecv") return Direction::sendrecv;
    if (a == "sendonly") return Direction::sendonly;
    if (a == "recvonly") return Direction::recvonly;
    if (a == "inactive") return Direction::inactive;
    return std::nullopt;
}

// "IN IP4 192.0.2.1" → the address; nullopt when malformed.
std::optional<std::string> parse_connection(std::string_view v) {
    auto w = words(v);
    if (w.size() < 3 || w[0] != "IN" || (w[1] != "IP4" && w[1] != "IP6")) return std::nullopt;
    auto addr = w[2];
    if (auto slash = addr.find('/'); slash != std::string_view::npos) addr = addr.substr(0, slash);  // multicast TTL
    if (addr.empty() || addr.size() > 255) return std::nullopt;
    return std::string(addr);
}

RtpMap* find_map(SdpMedia& m, int pt) {
    for (auto& r : m.rtpmaps)
        if (r.pt == pt) return &r;
    return nullptr;
}

std::string ip_version(std::string_view address) {
    return address.find(':') != std::string_view::npos ? "IP6" : "IP4";
}

std::string rtpmap_text(const RtpMap& r) {
    return r.channels > 1 ? fmt::format("{} {}/{}/{}", r.pt, r.encoding, r.clock, r.channels)
                          : fmt::format("{} {}/{}", r.pt, r.encoding, r.clock);
}

// The suite name of an a=crypto value ("1 AES_CM_128_HMAC_SHA1_80 inline:...").
std::string_view crypto_suite(std::string_view crypto) {
    auto w = words(crypto);
    return w.size() >= 3 ? w[1] : std::string_view{};
}

std::string_view crypto_tag(std::string_view crypto) {
    auto w = words(crypto);
    return w.empty() ? std::string_view{} : w[0];
}

// An inline key, with at most a lifetime: the RTP engine keys one master key
// per direction, so an MKI ("|1:4") cannot be honoured.
bool has_inline_key(std::string_view crypto) {
    auto w = words(crypto);
    if (w.size() < 3 || !w[2].starts_with("inline:") || w[2].size() <= 7) return false;
    return w[2].find(':', 7) == std::string_view::npos;
}

// The first a=crypto line of `m` we can use, or nullptr.
const std::string* usable_crypto(const SdpMedia& m) {
    for (auto& c : m.crypto)
        if (supported_crypto_suite(crypto_suite(c)) && has_inline_key(c) && number<int>(crypto_tag(c))) return &c;
    return nullptr;
}

// The first entry of `offered` matching a format of the policy, in the
// policy's order: (format, rtpmap).
std::optional<std::pair<Format, RtpMap>> choose_codec(const SdpMedia& offered, const std::vector<Format>& prefs) {
    for (auto f : prefs) {
        for (auto& token : offered.formats) {
            auto pt = number<int>(token);
            if (!pt) continue;
            auto map = offered.rtpmap(*pt);
            if (!map) continue;
            auto got = format_by_encoding(map->encoding, map->clock);
            if (got && *got == f) return std::pair{f, *map};
        }
    }
    return std::nullopt;
}

std::optional<RtpMap> choose_events(const SdpMedia& offered, std::uint32_t clock) {
    std::optional<RtpMap> any;
    for (auto& token : offered.formats) {
        auto pt = number<int>(token);
        if (!pt) continue;
        auto map = offered.rtpmap(*pt);
        if (!map || !iequals(map->encoding, "telephone-event")) continue;
        if (map->clock == clock) return map;
        if (!any) any = map;
    }
    // Events at another clock rate than the voice are useless to the RTP session.
    return any && any->clock == clock ? any : std::nullopt;
}

// The video codecs of `m` that `prefs` allows, in the order of `prefs`, each
// with the first payload type that carries it (its rtpmap and fmtp as written).
std::vector<std::pair<Format, RtpMap>> common_video(const SdpMedia& m, const std::vector<Format>& prefs) {
    std::vector<std::pair<Format, RtpMap>> out;
    for (auto f : prefs) {
        if (format_info(f).kind != MediaKind::video) continue;
        for (auto& token : m.formats) {
            auto pt = number<int>(token);
            auto map = pt ? m.rtpmap(*pt) : std::nullopt;
            if (!map) continue;
            auto got = format_by_encoding(map->encoding, map->clock);
            if (got && *got == f) {
                out.emplace_back(f, *map);
                break;
            }
        }
    }
    return out;
}

VideoPlan video_plan(const SdpSession& s, const SdpMedia& m, const std::vector<std::pair<Format, RtpMap>>& common) {
    VideoPlan v;
    v.format = common.front().first;
    v.pt = common.front().second.pt;
    v.fmtp = common.front().second.fmtp;
    v.remote_address = s.address_of(m);
    v.remote_port = m.port;
    for (auto& c : common) v.codecs.push_back(c.second);
    return v;
}

RtpMap map_of(Format f, int pt) {
    auto& info = format_info(f);
    RtpMap r;
    r.pt = pt;
    r.encoding = std::string(info.encoding_name);
    r.clock = info.rtp_clock;
    r.channels = info.channels;
    return r;
}

}  // namespace

std::string_view to_string(Direction d) {
    switch (d) {
        case Direction::sendrecv:
            return "sendrecv";
        case Direction::sendonly:
            return "sendonly";
        case Direction::recvonly:
            return "recvonly";
        case Direction::inactive:
            return "inactive";
    }
    return "sendrecv";
}

Direction reverse(Direction d) {
    switch (d) {
        case Direction::sendonly:
            return Direction::recvonly;
        case Direction::recvonly:
            return Direction::sendonly;
        default:
            return d;
    }
}

Direction holding(Direction d) {
    switch (d) {
        case Direction::sendrecv:
            return Direction::sendonly;
        case Direction::recvonly:
            return Direction::inactive;
        default:
            return d;
    }
}

Direction resuming(Direction d) {
    switch (d) {
        case Direction::sendonly:
            return Direction::sendrecv;
        case Direction::inactive:
            return Direction::recvonly;
        default:
            return d;
    }
}

SdpSession hold_reoffer(const SdpSession& last, bool hold, std::string_view version) {
    SdpSession s = last;
    s.session_version = std::string(version);
    // Directions go on each media line, so a session-level one cannot
    // contradict them.
    s.direction.reset();
    for (auto& m : s.media) {
        if (m.port == 0) {
            m.direction.reset();
            continue;
        }
        auto now = last.direction_of(m);
        m.direction = hold ? holding(now) : resuming(now);
    }
    return s;
}

void keep_holding(SdpSession& answer, MediaPlan& plan) {
    for (auto& m : answer.media)
        if (m.port != 0) m.direction = holding(answer.direction_of(m));
    answer.direction.reset();
    plan.local = holding(plan.local);
}

Direction audio_direction(const SdpSession& s) {
    for (auto& m : s.media)
        if (m.type == "audio" && m.port != 0) return s.direction_of(m);
    return Direction::sendrecv;
}

bool peer_holds_after(const SdpSession& our_offer, const MediaPlan& answer, bool peer_held) {
    return audio_direction(our_offer) == Direction::sendrecv ? answer.on_hold() : peer_held;
}

bool supported_crypto_suite(std::string_view suite) {
    return suite == "AES_CM_128_HMAC_SHA1_80" || suite == "AES_CM_128_HMAC_SHA1_32";
}

std::optional<RtpMap> SdpMedia::rtpmap(int pt) const {
    for (auto& r : rtpmaps)
        if (r.pt == pt) return r;
    if (pt < 0 || pt >= 96) return std::nullopt;
    for (int i = 1; i < static_cast<int>(Format::count_); ++i) {
        auto& info = format_info(static_cast<Format>(i));
        if (info.static_payload == pt) return map_of(info.format, pt);
    }
    return std::nullopt;
}

const std::string& SdpSession::address_of(const SdpMedia& m) const {
    return m.connection.empty() ? connection : m.connection;
}

Direction SdpSession::direction_of(const SdpMedia& m) const {
    if (m.direction) return *m.direction;
    if (direction) return *direction;
    return Direction::sendrecv;
}

bool MediaPlan::on_hold() const {
    return remote == Direction::sendonly || remote == Direction::inactive || remote_address == "0.0.0.0" ||
           remote_address == "::";
}

std::optional<SdpSession> parse_sdp(std::string_view text, std::string* error) {
    auto fail = [&](std::string why) -> std::optional<SdpSession> {
        if (error) *error = std::move(why);
        return std::nullopt;
    };
    SdpSession s;
    SdpMedia* m = nullptr;
    std::size_t lines = 0;
    bool seen_version = false;
    while (!text.empty()) {
        auto eol = text.find('\n');
        auto line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        if (++lines > max_lines) return fail("too many lines");
        if (line.size() < 2 || line[1] != '=') return fail(fmt::format("malformed line {}", lines));
        char type = line[0];
        auto value = line.substr(2);
        if (!seen_version) {
            if (type != 'v' || value != "0") return fail("does not start with v=0");
            seen_version = true;
            continue;
        }
        switch (type) {
            case 'o': {
                auto w = words(value);
                if (w.size() < 6) return fail("malformed o= line");
                s.origin_user = std::string(w[0]);
                s.session_id = std::string(w[1]);
                s.session_version = std::string(w[2]);
                s.origin_address = std::string(w[5]);
                break;
            }
            case 's':
                s.name = value.empty() ? "-" : std::string(value);
                break;
            case 'c': {
                auto addr = parse_connection(value);
                if (!addr) return fail("malformed c= line");
                (m ? m->connection : s.connection) = *addr;
                break;
            }
            case 'm': {
                if (s.media.size() >= max_media) return fail("too many media lines");
                auto w = words(value);
                if (w.size() < 3) return fail("malformed m= line");
                auto port_text = w[1];
                if (auto slash = port_text.find('/'); slash != std::string_view::npos)
                    port_text = port_text.substr(0, slash);
                auto port = number<std::uint16_t>(port_text);
                if (!port) return fail("malformed m= port");
                if (w.size() - 3 > max_formats) return fail("too many formats");
                SdpMedia media;
                media.type = std::string(w[0]);
                media.port = *port;
                media.proto = std::string(w[2]);
                for (std::size_t i = 3; i < w.size(); ++i) media.formats.emplace_back(w[i]);
                if (media.is_rtp())
                    for (auto& f : media.formats)
                        if (auto pt = number<int>(f); !pt || *pt < 0 || *pt > 127)
                            return fail("malformed payload type");
                s.media.push_back(std::move(media));
                m = &s.media.back();
                break;
            }
            case 'a': {
                auto colon = value.find(':');
                auto name = value.substr(0, colon);
                auto arg = colon == std::string_view::npos ? std::string_view{} : value.substr(colon + 1);
                if (auto d = parse_direction(name)) {
                    (m ? m->direction : s.direction) = d;
                    break;
                }
                if (!m) break;  // other session-level attributes are not ours to act on
                if (name == "rtpmap") {
                    auto w = words(arg);
                    if (w.size() < 2) break;
                    auto pt = number<int>(w[0]);
                    if (!pt || *pt < 0 || *pt > 127) break;
                    auto enc = w[1];
                    RtpMap r;
                    r.pt = *pt;
                    auto s1 = enc.find('/');
                    r.encoding = std::string(enc.substr(0, s1));
                    if (s1 != std::string_view::npos) {
                        auto rest = enc.substr(s1 + 1);
                        auto s2 = rest.find('/');
                        r.clock = number<std::uint32_t>(rest.substr(0, s2)).value_or(8000);
                        if (s2 != std::string_view::npos)
                            r.channels = number<std::uint32_t>(rest.substr(s2 + 1)).value_or(1);
                    }
                    if (auto* old = find_map(*m, r.pt)) {
                        r.fmtp = old->fmtp;
                        *old = r;
                    } else {
                        m->rtpmaps.push_back(std::move(r));
                    }
                } else if (name == "fmtp") {
                    auto sp = arg.find(' ');
                    auto pt = number<int>(arg.substr(0, sp));
                    if (!pt || sp == std::string_view::npos) break;
                    auto params = std::string(arg.substr(sp + 1));
                    if (auto* r = find_map(*m, *pt)) {
                        r->fmtp = std::move(params);
                    } else if (auto st = m->rtpmap(*pt)) {
                        st->fmtp = std::move(params);
                        m->rtpmaps.push_back(std::move(*st));
                    }
                } else if (name == "ptime") {
                    m->ptime = number<std::uint32_t>(arg).value_or(0);
                } else if (name == "maxptime") {
                    m->maxptime = number<std::uint32_t>(arg).value_or(0);
                } else if (name == "crypto") {
                    m->crypto.emplace_back(arg);
                } else if (name == "rtcp") {
                    auto w = words(arg);
                    if (!w.empty()) m->rtcp_port = number<std::uint16_t>(w[0]);
                } else if (name == "rtcp-mux") {
                    m->rtcp_mux = true;
                } else {
                    m->attributes.emplace_back(value);
                }
                break;
            }
            default:
                break;  // b=, t=, k=, i=, ...: nothing we act on
        }
    }
    if (!seen_version) return fail("empty body");
    return s;
}

std::string format_sdp(const SdpSession& s) {
    std::string out;
    out += "v=0\r\n";
    out += fmt::format("o={} {} {} IN {} {}\r\n", s.origin_user, s.session_id, s.session_version,
                       ip_version(s.origin_address), s.origin_address);
    out += fmt::format("s={}\r\n", s.name);
    if (!s.connection.empty()) out += fmt::format("c=IN {} {}\r\n", ip_version(s.connection), s.connection);
    out += "t=0 0\r\n";
    if (s.direction) out += fmt::format("a={}\r\n", to_string(*s.direction));
    for (auto& m : s.media) {
        out += fmt::format("m={} {} {}", m.type, m.port, m.proto);
        for (auto& f : m.formats) out += " " + f;
        out += "\r\n";
        if (!m.connection.empty()) out += fmt::format("c=IN {} {}\r\n", ip_version(m.connection), m.connection);
        for (auto& r : m.rtpmaps) {
            out += fmt::format("a=rtpmap:{}\r\n", rtpmap_text(r));
            if (!r.fmtp.empty()) out += fmt::format("a=fmtp:{} {}\r\n", r.pt, r.fmtp);
        }
        if (m.ptime) out += fmt::format("a=ptime:{}\r\n", m.ptime);
        if (m.maxptime) out += fmt::format("a=maxptime:{}\r\n", m.maxptime);
        for (auto& c : m.crypto) out += fmt::format("a=crypto:{}\r\n", c);
        if (m.rtcp_port) out += fmt::format("a=rtcp:{}\r\n", *m.rtcp_port);
        if (m.rtcp_mux) out += "a=rtcp-mux\r\n";
        for (auto& a : m.attributes) out += fmt::format("a={}\r\n", a);
        if (m.direction) out += fmt::format("a={}\r\n", to_string(*m.direction));
    }
    return out;
}

AnswerOutcome answer_offer(const SdpSession& offer, const MediaPolicy& policy, const LocalMedia& local) {
    AnswerOutcome out;
    auto& ans = out.answer;
    ans.origin_user = "tandem";
    ans.session_id = local.session_id;
    ans.session_version = local.session_version;
    ans.origin_address = local.address;
    ans.name = "Tandem";
    ans.connection = local.address;
    bool chosen = false, video_seen = false;
    std::string refusal = "no audio stream offered";
    for (auto& m : offer.media) {
        SdpMedia a;
        a.type = m.type;
        a.proto = m.proto;
        a.formats = m.formats;
        a.port = 0;
        if (!video_seen && m.type == "video" && m.is_rtp() && m.port != 0) {
            // Only the first video stream, plain RTP (video SRTP is not relayed).
            video_seen = true;
            auto common = policy.video && local.video_port && !m.secure() && !policy.require_srtp
                              ? common_video(m, policy.video_codecs)
                              : std::vector<std::pair<Format, RtpMap>>{};
            if (!common.empty()) {
                out.plan.video = video_plan(offer, m, common);
                a.port = local.video_port;
                a.formats.clear();
                for (auto& c : common) {
                    a.formats.push_back(std::to_string(c.second.pt));
                    a.rtpmaps.push_back(c.second);
                }
                a.direction = reverse(offer.direction_of(m));
            }
        }
        if (!chosen && m.type == "audio" && m.is_rtp() && m.port != 0) {
            auto codec = choose_codec(m, policy.codecs);
            const std::string* crypto = m.secure() ? usable_crypto(m) : nullptr;
            if (!codec) {
                refusal = "no codec in common";
            } else if (policy.require_srtp && !m.secure()) {
                refusal = "the endpoint requires SRTP (media_encryption=sdes) and the offer is plain RTP";
            } else if (m.secure() && (!crypto || local.srtp_key.empty())) {
                refusal = "no usable a=crypto line in an RTP/SAVP offer";
            } else {
                chosen = true;
                auto& plan = out.plan;
                plan.format = codec->first;
                plan.pt = codec->second.pt;
                plan.fmtp = codec->second.fmtp;
                plan.remote_address = offer.address_of(m);
                plan.remote_port = m.port;
                plan.remote_rtcp_port = m.rtcp_port;
                plan.remote = offer.direction_of(m);
                plan.local = reverse(plan.remote);
                plan.ptime = m.ptime ? m.ptime : policy.ptime;
                a.port = local.port;
                a.formats = {std::to_string(plan.pt)};
                a.rtpmaps.push_back(codec->second);
                if (policy.telephone_event)
                    if (auto ev = choose_events(m, codec->second.clock)) {
                        plan.telephone_event_pt = ev->pt;
                        a.formats.push_back(std::to_string(ev->pt));
                        a.rtpmaps.push_back(*ev);
                    }
                a.ptime = plan.ptime;
                a.direction = plan.local;
                if (crypto) {
                    plan.srtp = true;
                    plan.remote_crypto = *crypto;
                    plan.crypto_suite = std::string(crypto_suite(*crypto));
                    a.crypto.push_back(
                        fmt::format("{} {} inline:{}", crypto_tag(*crypto), plan.crypto_suite, local.srtp_key));
                }
            }
        }
        ans.media.push_back(std::move(a));
    }
    if (!chosen) {
        out.status = 488;
        out.reason = refusal;
    }
    return out;
}

SdpSession make_offer(const MediaPolicy& policy, const LocalMedia& local, Direction direction) {
    SdpSession s;
    s.origin_user = "tandem";
    s.session_id = local.session_id;
    s.session_version = local.session_version;
    s.origin_address = local.address;
    s.name = "Tandem";
    s.connection = local.address;
    SdpMedia m;
    m.port = local.port;
    m.proto = policy.require_srtp ? "RTP/SAVP" : "RTP/AVP";
    int next_dynamic = 96;
    for (auto f : policy.codecs) {
        auto& info = format_info(f);
        if (info.kind != MediaKind::audio || info.encoding_name.empty()) continue;
        int pt = info.static_payload;
        if (pt < 0) {
            if (next_dynamic == policy.telephone_event_pt) ++next_dynamic;
            if (next_dynamic > 127) continue;
            pt = next_dynamic++;
        }
        m.formats.push_back(std::to_string(pt));
        m.rtpmaps.push_back(map_of(f, pt));
    }
    if (policy.telephone_event) {
        m.formats.push_back(std::to_string(policy.telephone_event_pt));
        RtpMap ev;
        ev.pt = policy.telephone_event_pt;
        ev.encoding = "telephone-event";
        ev.clock = 8000;
        ev.fmtp = "0-16";
        m.rtpmaps.push_back(std::move(ev));
    }
    m.ptime = policy.ptime;
    m.direction = direction;
    if (policy.require_srtp && !local.srtp_key.empty())
        m.crypto.push_back(fmt::format("1 AES_CM_128_HMAC_SHA1_80 inline:{}", local.srtp_key));
    s.media.push_back(std::move(m));
    if (policy.video && !policy.require_srtp && local.video_port) {
        SdpMedia v;
        v.type = "video";
        v.port = local.video_port;
        for (auto& r : local.video_codecs) {
            auto f = format_by_encoding(r.encoding, r.clock);
            if (!f ||
                std::find(policy.video_codecs.begin(), policy.video_codecs.end(), *f) == policy.video_codecs.end())
                continue;
            v.formats.push_back(std::to_string(r.pt));
            v.rtpmaps.push_back(r);
        }
        v.direction = direction;
        if (!v.formats.empty()) s.media.push_back(std::move(v));
    }
    return s;
}

std::optional<MediaPlan> accept_answer(const SdpSession& offer, const SdpSession& answer, const MediaPolicy& policy,
                                       std::string* error) {
    auto fail = [&](std::string why) -> std::optional<MediaPlan> {
        if (error) *error = std::move(why);
        return std::nullopt;
    };
    if (answer.media.size() != offer.media.size()) return fail("the answer's media lines do not match the offer's");
    // Video is optional: a refused or unusable video stream leaves the call audio only.
    std::optional<VideoPlan> video;
    for (std::size_t i = 0; i < answer.media.size() && policy.video && !video; ++i) {
        auto& m = answer.media[i];
        if (offer.media[i].type != "video" || m.type != "video" || m.port == 0 || !m.is_rtp() || m.secure()) continue;
        auto common = common_video(m, policy.video_codecs);
        std::erase_if(common, [&](const auto& c) { return common_video(offer.media[i], {c.first}).empty(); });
        if (!common.empty()) video = video_plan(answer, m, common);
    }
    for (std::size_t i = 0; i < answer.media.size(); ++i) {
        auto& m = answer.media[i];
        if (offer.media[i].type != "audio" || m.type != "audio" || m.port == 0) continue;
        if (policy.require_srtp && (!m.secure() || !usable_crypto(m)))
            return fail("SRTP required and the answer has no usable a=crypto");
        // The answer's first codec is what the peer will send; it must be one we offered.
        std::optional<std::pair<Format, RtpMap>> codec;
        for (auto& token : m.formats) {
            auto pt = number<int>(token);
            if (!pt) continue;
            auto map = m.rtpmap(*pt);
            if (!map) continue;
            auto f = format_by_encoding(map->encoding, map->clock);
            if (f && std::find(policy.codecs.begin(), policy.codecs.end(), *f) != policy.codecs.end()) {
                codec = std::pair{*f, *map};
                break;
            }
        }
        if (!codec) return fail("no codec in common");
        MediaPlan plan;
        plan.format = codec->first;
        plan.pt = codec->second.pt;
        plan.fmtp = codec->second.fmtp;
        plan.remote_address = answer.address_of(m);
        plan.remote_port = m.port;
        plan.remote_rtcp_port = m.rtcp_port;
        plan.remote = answer.direction_of(m);
        plan.local = offer.direction_of(offer.media[i]);
        plan.ptime = m.ptime ? m.ptime : policy.ptime;
        if (policy.telephone_event)
            if (auto ev = choose_events(m, codec->second.clock)) plan.telephone_event_pt = ev->pt;
        if (m.secure()) {
            auto* c = usable_crypto(m);
            if (!c) return fail("RTP/SAVP answer without a usable a=crypto");
            plan.srtp = true;
            plan.remote_crypto = *c;
            plan.crypto_suite = std::string(crypto_suite(*c));
        }
        plan.video = std::move(video);
        return plan;
    }
    return fail("no audio stream accepted");
}

}  // namespace tandem::sip
