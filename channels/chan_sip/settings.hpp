// sip.conf: the [general] section and one section per endpoint, in the
// dialect of Asterisk's chan_sip.
//
// parse_settings() binds every section against a typed schema, so each problem
// is a "sip.conf:LINE: message" diagnostic. An endpoint with a problem is
// left out (never half-configured: a weak secret must not authenticate
// anybody); the rest still load. Reload refuses a file with any problem.
//
// Threading: a Settings is immutable once built; chan_sip publishes it as a
// shared_ptr<const Settings> and swaps the pointer on reload.
#pragma once

#include "bans.hpp"
#include "digest.hpp"
#include "message.hpp"
#include "net.hpp"
#include "outbound.hpp"

#include <tandem/config.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::sip {

inline constexpr std::size_t min_secret_length = 12;

enum class EndpointType : std::uint8_t { friend_, peer, user };
std::string_view to_string(EndpointType t);

// nat= : what to trust when a device sits behind NAT.
struct NatMode {
    bool force_rport = true;  // answer and send to the address a request came from
    bool comedia = false;     // send media where it comes from (the calls step)
    bool automatic = false;   // only when the device looks NATed (auto_force_rport, auto_comedia)
    std::string str() const;
};

// qualify= : yes (2000 ms), no, or a maximum round trip in milliseconds.
struct QualifyMode {
    bool enabled = false;
    std::chrono::milliseconds max{2000};
};

struct Endpoint {
    std::string name;
    EndpointType type = EndpointType::friend_;
    bool dynamic = true;               // host=dynamic: reachable where it registers
    std::string host;                  // host= when static, as written
    std::optional<IpAddress> host_ip;  // host= when it is an address
    std::uint16_t port = 5060;
    std::string secret;
    std::string context;
    std::string callerid, callerid_name, callerid_number;
    std::vector<std::string> mailboxes;
    std::vector<std::string> codecs;  // after allow=/disallow=, in preference order
    std::string dtmfmode = "rfc4733";
    NatMode nat;
    QualifyMode qualify;
    int call_limit = 0;  // 0: no limit
    Acl acl;
    bool insecure_port = false;    // match the gateway by address only, any port
    bool insecure_invite = false;  // do not challenge its INVITEs
    std::vector<Transport> transports;
    int max_contacts = 10;
    std::string description, language, accountcode;
    // Music on hold: mohinterpret is the class its own channel hears
    // (CHANNEL(musicclass)); mohsuggest the class offered to the other party
    // when it puts a call on hold (that party's own class still wins).
    // mohinterpret=passthrough: no music from us; a hold from the other
    // party is passed on to the phone by re-INVITE (a=sendonly).
    std::string mohinterpret, mohsuggest;
    std::string media_encryption = "no";  // no, sdes (SRTP keys in SDP, RTP/SAVP)
    std::string defaultuser;              // user name for our INVITEs' authentication (trunks)
    std::string fromuser;                 // user part of From in our INVITEs (trunks)
    bool directmedia = false;             // accepted for compatibility; media always flows through Tandem
    std::chrono::seconds rtptimeout{60};  // no RTP for this long on an answered call: hang up (0: never)
    bool allowtransfer = true;            // may transfer its calls (REFER, INVITE with Replaces)
    std::string faxdetect = "no";         // no, yes, cng, ced: fax tones listened for in its audio
    bool videosupport = false;            // negotiate video (allow=h264,vp8,h263) and relay it untouched
    std::string outboundproxy;            // Route value our requests to it start with, "" for none
    config::Location where;

    bool can_register() const { return dynamic && type != EndpointType::user; }
    bool moh_passthrough() const { return mohinterpret == "passthrough"; }
    // The music class its channels hear when held ("" for passthrough: none).
    std::string music_class() const { return moh_passthrough() ? std::string() : mohinterpret; }
    bool has_static_host() const { return !dynamic && !host.empty(); }
    // The transport our requests to a static host use: the first of transport=.
    Transport transport() const { return transports.empty() ? Transport::udp : transports.front(); }
};

// tlsenable= and friends: the TLS listener.
struct TlsSettings {
    bool enabled = false;
    std::uint16_t port = 5061;
    std::string certfile, keyfile, cafile;
    bool verify_client = false;
    bool operator==(const TlsSettings&) const = default;
};

struct GeneralSettings {
    std::string bindaddr = "0.0.0.0";
    std::uint16_t bindport = 5060;
    std::vector<Transport> transports{Transport::udp};
    bool listens_tcp() const {
        return std::find(transports.begin(), transports.end(), Transport::tcp) != transports.end();
    }
    // TCP or TLS: connections that the connection guard watches.
    bool listens_on_streams() const { return listens_tcp() || tls.enabled; }
    std::uint32_t udp_rcvbuf = 4u << 20;  // bytes; 0 keeps the system's default
    // Overload guard: new INVITEs and REGISTERs get 503 + Retry-After while
    // more than this share (percent) of the UDP receive buffer waits unread.
    unsigned overload_queue = 50;  // 0: off
    std::chrono::seconds overload_retry_after{5};
    // TCP and TLS connections opened to us that have not authenticated:
    // closed after this long, and no more than this many at a time
    // (connection_guard.hpp). 0: no deadline / no limit.
    std::chrono::seconds tcp_auth_timeout{30};
    unsigned tcp_auth_limit = 100;
    TlsSettings tls;
    std::string context = "default";
    std::string realm = "tandem";
    std::string useragent;
    std::chrono::seconds maxexpiry{3600}, minexpiry{60}, defaultexpiry{120};
    std::chrono::milliseconds qualifyfreq{60000};
    BanPolicy bans;
    bool alwaysauthreject = true;
    std::chrono::seconds nonce_lifetime{300};
    std::vector<DigestAlgorithm> auth_algorithms{DigestAlgorithm::md5};
    bool sipdebug = false;
    NatMode nat;                // the default of endpoints; force_rport also applies to every answer
    std::string outboundproxy;  // default of endpoints and register => lines, a Route value
};

struct Settings {
    GeneralSettings general;
    std::map<std::string, Endpoint, std::less<>> endpoints;
    std::vector<OutboundRegistration> registrations;  // register => lines and register=yes peers

    const Endpoint* find(std::string_view name) const;
    // The static-host endpoint (peer or friend) a request from `from` belongs
    // to: same address, and same port unless insecure=port. Used to recognise
    // gateways and trunks that authenticate by address.
    const Endpoint* find_by_address(const SocketAddress& from) const;
};

struct ParsedSettings {
    std::shared_ptr<const Settings> settings;
    std::vector<config::Diagnostic> errors;
};

// Binds a parsed sip.conf. `default_useragent` is used when [general] sets none.
ParsedSettings parse_settings(const config::File& file, std::string_view default_useragent);

// The schemas, for documentation and tests.
std::span<const config::OptionSpec> general_schema();
std::span<const config::OptionSpec> endpoint_schema();

}  // namespace tandem::sip
