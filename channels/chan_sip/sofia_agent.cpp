#include "sofia_agent.hpp"

#include "connection_guard.hpp"
#include "content.hpp"
#include "socket_filter.hpp"
#include "sofia_log.hpp"
#include "transfer.hpp"

#include <sofia-sip/msg_addr.h>
#include <sofia-sip/msg_mime.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/nua.h>
#include <sofia-sip/nua_tag.h>
#include <sofia-sip/sip_extra.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport_tag.h>

#include <fmt/format.h>

#include <dlfcn.h>
#include <pthread.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

extern "C" void tandem_sofia_tls_free_linked();  // sofia_tls_free.cpp

namespace tandem::sip {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t max_pending = 5000;                   // requests waiting for a loop
constexpr auto pending_timeout = std::chrono::seconds(30);  // a loop that never answers
constexpr su_duration_t tick_ms = 1000;
constexpr su_duration_t shutdown_ms = 3000;

// What the stack may take outside a call, and what a call's handle takes.
// REFER only ever transfers a call (RFC 5589), so outside one the stack
// answers 405 before anything else happens: given an initial REFER, Sofia-SIP
// makes an implicit subscription and sends a NOTIFY (retransmitted for 32 s)
// to whoever sent it, unauthenticated and before the application has said a
// word, which a spoofed source turns into a reflector.
constexpr const char* kAllowOutsideCalls = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, PRACK";
constexpr const char* kAllowInCalls = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, INFO, PRACK, REFER";

// A call's handle allows REFER: queued before any request or answer on it,
// so its INVITE or first answer already lists it.
void allow_in_call(nua_handle_t* nh) {
    nua_set_hparams(nh, SIPTAG_ALLOW_STR(kAllowInCalls), TAG_END());
}

// Sofia's log hook is process-wide; each Sofia thread routes its own lines.
struct LogRoute;
thread_local LogRoute* t_log_route = nullptr;
std::atomic<int> g_log_hook_users{0};

struct LogRoute {
    Log* log;
    std::atomic<bool>* debug;
    SofiaLogAssembler assembler;

    void emit(const std::vector<SofiaLogAssembler::Item>& items) {
        for (auto& i : items) {
            if (i.message) {
                if (debug->load(std::memory_order_relaxed)) log->info("{}", i.text);
            } else {
                log->debug("sofia: {}", i.text);
            }
        }
    }
};

void sofia_log_hook(void*, char const* fmt, va_list ap) {
    if (!t_log_route) return;
    char small[2048];
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(small, sizeof small, fmt, copy);
    va_end(copy);
    if (n < 0) return;
    std::string text;
    if (static_cast<std::size_t>(n) < sizeof small) {
        text.assign(small, static_cast<std::size_t>(n));
    } else {
        text.resize(static_cast<std::size_t>(n) + 1);
        va_copy(copy, ap);
        std::vsnprintf(text.data(), text.size(), fmt, copy);
        va_end(copy);
        text.resize(static_cast<std::size_t>(n));
    }
    t_log_route->emit(t_log_route->assembler.feed(text));
}

std::string url_text(su_home_t* home, const url_t* url) {
    if (!url) return {};
    char* s = url_as_string(home, url);
    return s ? s : "";
}

std::string header_text(su_home_t* home, const sip_header_t* h) {
    if (!h) return {};
    char* s = sip_header_as_string(home, h);
    return s ? s : "";
}

std::optional<long long> parse_long(const char* s) {
    if (!s || !*s) return std::nullopt;
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s, &end, 10);
    if (errno || *end) return std::nullopt;
    return v;
}

std::string unquote(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return std::string(v);
}

// True when the response being reported was made up by the stack (timeout,
// transport error) rather than received from the peer.
bool answered_locally(nua_t* nua) {
    nua_saved_event_t saved[1];
    if (nua_save_event(nua, saved) == 0) return false;
    const nua_event_data_t* data = nua_event_data(saved);
    bool internal = data && data->e_msg && nta_is_internal_msg(data->e_msg);
    nua_destroy_event(saved);
    return internal;
}

// Sofia does not always say why it could not bind: try the same binds.
int bind_error(const AgentConfig& config, bool udp, bool tcp) {
    auto ip = IpAddress::parse(config.bindaddr);
    if (!ip) return EINVAL;
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (ip->is_v4()) {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(config.port);
        a->sin_addr.s_addr = htonl(ip->v4_host_order());
        len = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(config.port);
        std::memcpy(&a->sin6_addr, ip->bytes().data(), 16);
        len = sizeof *a;
    }
    for (int type : {udp ? SOCK_DGRAM : -1, tcp ? SOCK_STREAM : -1}) {
        if (type < 0) continue;
        int fd = ::socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
        if (fd < 0) return errno;
        int err = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
        ::close(fd);
        if (err) return err;
    }
    return 0;
}

// Sofia 1.12 reads its TLS identity from a directory: agent.pem (private key
// and certificate) and cafile.pem. Assembles one from the configured files in
// a private temporary directory; the caller removes it once the listener is up.
std::optional<std::filesystem::path> tls_directory(const AgentConfig& config, std::string& error) {
    auto slurp = [&](const std::string& path, std::string& out) {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            error = fmt::format("cannot read '{}': {}", path, std::strerror(errno));
            return false;
        }
        std::ostringstream ss;
        ss << in.rdbuf();
        out = ss.str();
        if (!out.empty() && out.back() != '\n') out += '\n';
        return true;
    };
    std::string cert, key, ca;
    if (!slurp(config.tls_certfile, cert)) return std::nullopt;
    if (config.tls_keyfile != config.tls_certfile && !slurp(config.tls_keyfile, key)) return std::nullopt;
    if (!config.tls_cafile.empty() && !slurp(config.tls_cafile, ca)) return std::nullopt;
    if (ca.empty()) ca = cert;  // nothing to verify against: the stack still wants a file
    auto base = std::filesystem::temp_directory_path() / "tandem-tls-XXXXXX";
    std::string tmpl = base.string();
    if (!::mkdtemp(tmpl.data())) {
        error = fmt::format("cannot create a directory for the TLS certificate: {}", std::strerror(errno));
        return std::nullopt;
    }
    std::filesystem::path dir(tmpl);
    auto write = [&](const char* name, const std::string& text) {
        auto path = (dir / name).string();
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return false;
        bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
        ::close(fd);
        return ok;
    };
    if (!write("agent.pem", key + cert) || !write("cafile.pem", ca)) {
        error = fmt::format("cannot write the TLS certificate to {}: {}", dir.string(), std::strerror(errno));
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        return std::nullopt;
    }
    return dir;
}

std::optional<SocketAddress> source_of(nua_t* nua) {
    msg_t* m = nua_current_request(nua);
    if (!m) return std::nullopt;
    su_addrinfo_t* ai = msg_addrinfo(m);
    if (!ai || !ai->ai_addr) return std::nullopt;
    auto* su = reinterpret_cast<su_sockaddr_t*>(ai->ai_addr);
    SocketAddress out;
    if (su->su_family == AF_INET) {
        out.ip = IpAddress::v4(ntohl(su->su_sin.sin_addr.s_addr));
    } else if (su->su_family == AF_INET6) {
        std::array<std::uint8_t, 16> b{};
        std::memcpy(b.data(), &su->su_sin6.sin6_addr, 16);
        out.ip = IpAddress::v6(b);
    } else {
        return std::nullopt;
    }
    out.port = ntohs(su->su_port);
    return out;
}

Transport transport_of(nua_t* nua, const sip_t* sip) {
    if (sip && sip->sip_via && sip->sip_via->v_protocol) {
        std::string_view p = sip->sip_via->v_protocol;
        if (p.ends_with("/TLS")) return Transport::tls;
        if (p.ends_with("/TCP")) return Transport::tcp;
    }
    if (msg_t* m = nua_current_request(nua))
        if (auto* ai = msg_addrinfo(m); ai && ai->ai_protocol == IPPROTO_TCP) return Transport::tcp;
    return Transport::udp;
}

// The parts of a REGISTER the registrar needs, as plain values.
std::optional<SipRequest> to_request(nua_t* nua, const sip_t* sip, const SocketAddress& source) {
    if (!sip || !sip->sip_request || !sip->sip_to || !sip->sip_call_id || !sip->sip_cseq) return std::nullopt;
    su_home_t home[1] = {SU_HOME_INIT(home)};
    SipRequest r;
    r.method = sip->sip_request->rq_method_name ? sip->sip_request->rq_method_name : "";
    r.request_uri = url_text(home, sip->sip_request->rq_url);
    r.to_uri = url_text(home, sip->sip_to->a_url);
    r.to_user = sip->sip_to->a_url->url_user ? sip->sip_to->a_url->url_user : "";
    if (sip->sip_from) r.from_uri = url_text(home, sip->sip_from->a_url);
    r.call_id = sip->sip_call_id->i_id ? sip->sip_call_id->i_id : "";
    r.cseq = sip->sip_cseq->cs_seq;
    if (sip->sip_expires) r.expires = static_cast<long long>(sip->sip_expires->ex_delta);
    bool ok = true;
    for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next) {
        if (m->m_url->url_type == url_any) {
            r.contact_star = true;
            continue;
        }
        ContactHeader c;
        c.uri = url_text(home, m->m_url);
        if (m->m_expires) {
            c.expires = parse_long(m->m_expires);
            if (!c.expires) ok = false;
        }
        if (m->m_q) c.q = m->m_q;
        if (const char* inst = msg_params_find(m->m_params, "+sip.instance=")) c.instance = unquote(inst);
        r.contacts.push_back(std::move(c));
    }
    // Rebuilt from the parsed parameters: Sofia's encoder can drop the last one.
    for (const sip_authorization_t* a = sip->sip_authorization; a; a = a->au_next) {
        std::string value = a->au_scheme ? a->au_scheme : "";
        for (msg_param_t const* param = a->au_params; param && *param; ++param)
            value += std::string(param == a->au_params ? " " : ", ") + *param;
        r.authorization.push_back(std::move(value));
    }
    for (const sip_path_t* p = sip->sip_path; p; p = p->r_next)
        r.path.push_back(header_text(home, reinterpret_cast<const sip_header_t*>(p)));
    if (sip->sip_supported && sip->sip_supported->k_items)
        for (auto** item = sip->sip_supported->k_items; *item; ++item) r.supported.emplace_back(*item);
    if (sip->sip_user_agent && sip->sip_user_agent->g_string) r.user_agent = sip->sip_user_agent->g_string;
    r.source = source;
    r.transport = transport_of(nua, sip);
    su_home_deinit(home);
    if (!ok) return std::nullopt;
    return r;
}

}  // namespace

struct SofiaAgent::Impl {
    explicit Impl(Log l) : log(std::move(l)) {}

    Log log;
    AgentConfig config;
    Callbacks callbacks;
    std::thread thread;
    std::atomic<bool> debug{false};

    // --- command queue (any thread -> Sofia thread) ---
    mutable std::mutex mu;
    std::vector<std::function<void()>> queue;
    std::vector<std::function<void()>> running;  // the batch being run (Sofia thread only; keeps its capacity)
    bool open = false;
    int event_fd = -1;
    std::atomic<std::size_t> pending_count{0};

    // --- overload guard (set from any thread, applied on the Sofia thread) ---
    std::atomic<unsigned> overload_percent{0};  // 0: off
    std::atomic<unsigned> overload_retry_after{5};
    std::atomic<std::uint64_t> overload_refused{0};
    std::atomic<std::uint32_t> udp_queued{0}, udp_buffer{0};  // at the last look
    std::atomic<bool> overloaded{false};

    // --- TCP/TLS connection guard (limits set from any thread, applied on the Sofia thread) ---
    std::atomic<std::int64_t> guard_timeout_s{30};
    std::atomic<unsigned> guard_limit{100};
    std::vector<IpAddress> guard_trusted;                                                   // under mu
    std::uint64_t guard_trusted_generation = 0, guard_trusted_applied = ~std::uint64_t{0};  // under mu / Sofia
    std::atomic<std::size_t> guard_unauthenticated{0}, guard_authenticated{0};
    std::atomic<std::uint64_t> guard_closed{0};

    // --- Sofia thread only ---
    ConnectionGuard guard;
    std::vector<std::uint16_t> stream_ports;  // TCP and TLS listening ports (set at bind)
    std::optional<IpAddress> stream_address;  // and their address
    bool guard_failed = false;                // the kernel could not list connections: said once
    std::vector<int> udp_fds;                 // the stack's UDP sockets, for their receive queues
    Clock::time_point overload_since;
    std::uint64_t refused_in_episode = 0;
    su_root_t* root = nullptr;
    nua_t* nua = nullptr;
    su_wait_t wait[1]{};
    bool wait_registered = false;
    su_timer_t* tick_timer = nullptr;
    su_timer_t* shutdown_timer = nullptr;
    bool shutting_down = false;
    struct Pending {
        nua_handle_t* nh = nullptr;
        nua_saved_event_t saved[1]{};
        Clock::time_point received;
    };
    std::unordered_map<std::uint64_t, Pending> pending;
    std::uint64_t next_token = 1;
    struct Probe {
        std::string key;
        Clock::time_point sent, deadline;
    };
    std::unordered_map<nua_handle_t*, Probe> probes;
    // Call dialogs, by id; each nua handle is bound to its Dialog (hmagic).
    struct Dialog {
        std::uint64_t id = 0;
        nua_handle_t* nh = nullptr;
        bool incoming = false;
        bool final_sent = false;  // incoming: a final answer went out
        bool answered = false;    // a 2xx went out or came in
        bool hangup = false;      // Tandem hung up: BYE a 2xx that crosses our CANCEL
        bool reliable = false;
        bool reinviting = false;               // our re-INVITE awaits its final answer
        Transport transport = Transport::udp;  // what our Contact must name (TLS on)
        int auth_attempts = 0;
        std::string auth_user, auth_secret;
        // A REFER waiting for the loop's answer, and the Event of the
        // implicit subscription its NOTIFYs belong to.
        bool refer_pending = false;
        nua_saved_event_t refer_saved[1]{};
        std::string refer_event = "refer";
        ~Dialog() {
            if (refer_pending) nua_destroy_event(refer_saved);
        }
    };
    std::unordered_map<std::uint64_t, std::unique_ptr<Dialog>> dialogs;
    std::atomic<std::uint64_t> next_call{1};
    std::atomic<std::size_t> dialog_count{0};
    // Outbound registrations, by key; each live REGISTER handle maps back to
    // its key. Handles still unregistering (removed, or at shutdown) keep
    // their credentials to answer a challenge to the un-REGISTER.
    struct Outbound {
        OutboundRegistration config;
        nua_handle_t* nh = nullptr;
        RegistryEntry entry;
        int auth_attempts = 0;
        Clock::time_point retry_at{};
    };
    std::map<std::string, Outbound> outbound;
    std::unordered_map<nua_handle_t*, std::string> outbound_by_nh;
    struct Leaving {
        OutboundRegistration config;
        int auth_attempts = 0;
    };
    std::unordered_map<nua_handle_t*, Leaving> leaving;
    mutable std::mutex registry_mu;
    std::vector<RegistryEntry> registry_snapshot;
    std::unique_ptr<LogRoute> log_route;
    // nua_respond() keeps the reason phrase by pointer until the stack sends
    // the response (it copies only tags): phrases live here for good. They
    // come from a fixed set in the code, so the set stays small.
    std::set<std::string, std::less<>> phrases;

    const char* intern(std::string_view phrase) {
        if (phrase.empty()) phrase = "Unknown";
        auto it = phrases.find(phrase);
        if (it == phrases.end()) it = phrases.emplace(phrase).first;
        return it->c_str();
    }

    void push(std::function<void()> fn) {
        bool wake;
        {
            std::lock_guard lock(mu);
            if (!open) return;
            // Only the first command of a batch wakes the thread: it reads the
            // eventfd before taking the queue, so whatever is pushed after it
            // took the queue finds the queue empty and wakes it again.
            wake = queue.empty();
            queue.push_back(std::move(fn));
        }
        std::uint64_t one = 1;
        if (wake && ::write(event_fd, &one, sizeof one) < 0) {
            // The counter only saturates when the thread is far behind; it is awake then.
        }
    }

    // --- the thread ---
    void run(std::promise<std::string>& started);
    bool bind(std::string& error);
    void cleanup();

    static int on_wakeup(su_root_magic_t*, su_wait_t*, su_wakeup_arg_t* arg) {
        auto* self = static_cast<Impl*>(static_cast<void*>(arg));
        std::uint64_t n;
        if (::read(self->event_fd, &n, sizeof n) < 0) {
            // EAGAIN: a wake-up whose batch an earlier one already took.
        }
        auto& batch = self->running;
        {
            std::lock_guard lock(self->mu);
            batch.swap(self->queue);
        }
        for (auto& fn : batch) fn();
        batch.clear();
        return 0;
    }

    static void on_tick(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) { static_cast<Impl*>(arg)->tick(); }

    static void on_shutdown_timeout(su_root_magic_t*, su_timer_t*, su_timer_arg_t* arg) {
        auto* self = static_cast<Impl*>(arg);
        self->log.warning("the SIP stack did not shut down in {} ms; stopping anyway", shutdown_ms);
        su_root_break(self->root);
    }

    static void on_event(nua_event_t event, int status, char const* phrase, nua_t* nua, nua_magic_t* magic,
                         nua_handle_t* nh, nua_hmagic_t* hmagic, sip_t const* sip, tagi_t tags[]) {
        auto* self = static_cast<Impl*>(static_cast<void*>(magic));
        if (hmagic) {
            self->call_event(event, status, phrase, nh, reinterpret_cast<Dialog*>(hmagic), sip, tags);
            return;
        }
        self->event(event, status, phrase, nua, nh, hmagic, sip);
    }

    void event(nua_event_t event, int status, char const* phrase, nua_t* nua_, nua_handle_t* nh, nua_hmagic_t* hmagic,
               sip_t const* sip);
    void incoming_invite(int status, nua_handle_t* nh, const sip_t* sip);
    void call_event(nua_event_t event, int status, char const* phrase, nua_handle_t* nh, Dialog* d, const sip_t* sip,
                    tagi_t tags[]);
    void emit(Dialog& d, CallEvent::Kind kind, int status = 0, const char* phrase = nullptr,
              const sip_t* sip = nullptr);
    void release(Dialog* d);
    void respond_call(std::uint64_t id, int status, const std::string& phrase, const std::string& sdp,
                      const std::string& headers);
    void invite(std::uint64_t id, const OutgoingCall& c);
    void hangup_call(std::uint64_t id, int status);
    void reinvite(std::uint64_t id, const std::string& sdp);
    void info(std::uint64_t id, const std::string& type, const std::string& body);
    void incoming_refer(nua_handle_t* nh, Dialog& d, const sip_t* sip, tagi_t tags[]);
    void refer_answer(std::uint64_t id, int status);
    void notify(std::uint64_t id, const std::string& sipfrag, bool final);
    Dialog* replaced_dialog(const sip_replaces_t* rp);
    void incoming_register(int status, nua_handle_t* nh, const sip_t* sip);
    void incoming_options(int status, nua_handle_t* nh);
    void ignore_silently(nua_handle_t* nh, const SocketAddress& from, const char* method);
    bool overload_now();
    bool refuse_if_overloaded(nua_handle_t* nh);
    void tick();
    void send_probe(const QualifyTarget& t);
    void answer(std::uint64_t token, const SipResponse& r);
    void begin_shutdown();
    void apply_bans(const std::vector<IpAddress>& banned);
    void sweep_connections();
    void set_registrations(const std::vector<OutboundRegistration>& wanted);
    void start_registration(Outbound& o);
    void end_registration(Outbound& o);
    void registration_answer(nua_handle_t* nh, int status, const char* phrase, const sip_t* sip);
    void unregistration_answer(nua_handle_t* nh, int status, const sip_t* sip);
    void registration_failed(Outbound& o, int status, const char* phrase);
    void publish_registry();

    // The Contact of the dialog's transport. Left to the stack, it would put
    // its sips: contact even in answers over UDP when TLS is on (it prefers
    // the secure one), a UDP one in requests over TCP, and the contact of an
    // outbound registration in every INVITE. Empty (the stack's choice) when
    // bound to a wildcard address.
    std::string contact(Transport t, const std::string& user = {}) const {
        auto host = IpAddress::parse(config.bindaddr);
        if (!host || host->is_unspecified()) return {};
        auto at = user.empty() ? std::string() : user + "@";
        if (t == Transport::tls)
            return fmt::format("<sip:{}{}:{};transport=tls>", at, host->uri_host(), config.tls_port);
        if (t == Transport::tcp) return fmt::format("<sip:{}{}:{};transport=tcp>", at, host->uri_host(), config.port);
        return fmt::format("<sip:{}{}:{}>", at, host->uri_host(), config.port);
    }
    bool authenticate(nua_handle_t* nh, int status, const sip_t* sip, const OutboundRegistration& c, int& attempts);
};

void SofiaAgent::Impl::run(std::promise<std::string>& started) {
    pthread_setname_np(pthread_self(), "sofia-sip");
    su_init();
    log_route = std::make_unique<LogRoute>(LogRoute{&log, &debug, {}});
    t_log_route = log_route.get();
    g_log_hook_users.fetch_add(1);
    su_log_redirect(nullptr, &sofia_log_hook, nullptr);

    std::string error;
    if (!bind(error)) {
        cleanup();
        started.set_value(error);
        return;
    }
    started.set_value({});
    su_root_run(root);
    cleanup();
}

bool SofiaAgent::Impl::bind(std::string& error) {
    root = su_root_create(this);
    if (!root) {
        error = "cannot create the SIP event loop";
        return false;
    }
    // nua would otherwise run its stack on a thread of its own: keep all of
    // Sofia on this one.
    su_root_threading(root, 0);
    event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (event_fd < 0 || su_wait_create(wait, event_fd, SU_WAIT_IN) != 0 ||
        su_root_register(root, wait, &Impl::on_wakeup, static_cast<su_wakeup_arg_t*>(static_cast<void*>(this)), 0) <
            0) {
        error = fmt::format("cannot create the SIP command queue: {}", std::strerror(errno));
        return false;
    }
    wait_registered = true;

    auto host = IpAddress::parse(config.bindaddr);
    std::string url = fmt::format("sip:{}:{}", host ? host->uri_host() : config.bindaddr, config.port);
    bool udp = std::find(config.transports.begin(), config.transports.end(), Transport::udp) != config.transports.end();
    bool tcp = std::find(config.transports.begin(), config.transports.end(), Transport::tcp) != config.transports.end();
    if (udp && !tcp) url += ";transport=udp";
    if (tcp && !udp) url += ";transport=tcp";
    debug = config.debug;

    std::string sips_url;
    std::optional<std::filesystem::path> tls_dir;
    if (config.tls) {
        sips_url = fmt::format("sips:{}:{};transport=tls", host ? host->uri_host() : config.bindaddr, config.tls_port);
        tls_dir = tls_directory(config, error);
        if (!tls_dir) return false;
    }
    std::string tls_dir_text = tls_dir ? tls_dir->string() : std::string();
    unsigned verify = config.tls_verify_client ? TPTLS_VERIFY_IN : TPTLS_VERIFY_NONE;

    errno = 0;
    nua = nua_create(
        root, &Impl::on_event, static_cast<nua_magic_t*>(static_cast<void*>(this)),
        NUTAG_URL(URL_STRING_MAKE(url.c_str())), TAG_IF(config.tls, NUTAG_SIPS_URL(URL_STRING_MAKE(sips_url.c_str()))),
        TAG_IF(config.tls, NUTAG_CERTIFICATE_DIR(tls_dir_text.c_str())),
        TAG_IF(config.tls, TPTAG_CERTIFICATE(tls_dir_text.c_str())),
        TAG_IF(config.tls, TPTAG_TLS_VERIFY_POLICY(verify)), NUTAG_USER_AGENT(config.user_agent.c_str()),
        SIPTAG_ALLOW_STR(kAllowOutsideCalls), NUTAG_APPL_METHOD("REGISTER, OPTIONS, INFO, REFER"),
        SIPTAG_SUPPORTED_STR("path, 100rel, replaces"),
        // SDP is Tandem's (sdp.hpp), not the stack's offer/answer engine.
        NUTAG_MEDIA_ENABLE(0), NUTAG_AUTOANSWER(0), NUTAG_AUTOACK(1), NUTAG_EARLY_MEDIA(1), NUTAG_ONLY183_100REL(1),
        NTATAG_SERVER_RPORT(config.force_rport ? 2 : 1), TPTAG_LOG(config.debug ? 1 : 0),
        TPTAG_IDLE(static_cast<unsigned>(std::min<std::int64_t>(config.stream_idle.count(), 4'000'000) * 1000)),
        // One block per message for the parser's header objects instead of a
        // malloc each: the transient messages of a set-up no longer leave
        // holes between a call's long-lived objects (3 KiB less RSS per held
        // call) and parsing allocates less.
        NTATAG_PRELOAD(1500), TAG_END());
    if (tls_dir) {
        // The stack has loaded the key into memory (or failed): no copy stays on disk.
        std::error_code ec;
        std::filesystem::remove_all(*tls_dir, ec);
    }
    if (!nua) {
        int err = errno ? errno : bind_error(config, udp, tcp);
        std::string transports = udp && tcp ? "udp, tcp" : udp ? "udp" : "tcp";
        if (config.tls) {
            transports += fmt::format(", tls on port {}", config.tls_port);
            // A bad certificate or key fails the same way as a busy port.
            if (!err) err = bind_error(AgentConfig{.bindaddr = config.bindaddr, .port = config.tls_port}, false, true);
            if (!err) {
                error = fmt::format("cannot start TLS on port {}: the certificate or key in {} / {} was refused",
                                    config.tls_port, config.tls_certfile, config.tls_keyfile);
                return false;
            }
        }
        error = fmt::format("cannot listen on {} ({}): {}", url.substr(4), transports,
                            err ? std::strerror(err) : "the SIP stack refused the address");
        return false;
    }
    if (udp) {
        // The stack's UDP sockets, listed once: sized here, watched by the overload guard.
        std::string why;
        udp_fds = datagram_sockets_on_port(config.port, why);
        if (udp_fds.empty())
            log.warning("cannot find the SIP UDP socket to size it and watch its queue: {}",
                        why.empty() ? "not found" : why);
        else if (config.udp_rcvbuf && set_receive_buffer(udp_fds, config.udp_rcvbuf, why) == 0)
            log.warning("cannot size the SIP receive buffer to {} bytes: {}", config.udp_rcvbuf, why);
    }
    // The UDP socket's STUN guard is there before any ban.
    if (udp) apply_bans({});
    // The listening ports whose connections the connection guard watches.
    if (tcp) stream_ports.push_back(config.port);
    if (config.tls) stream_ports.push_back(config.tls_port);
    stream_address = IpAddress::parse(config.bindaddr);
    tick_timer = su_timer_create(su_root_task(root), tick_ms);
    if (!tick_timer || su_timer_set_for_ever(tick_timer, &Impl::on_tick, this) < 0) {
        error = "cannot start the SIP timer";
        return false;
    }
    {
        std::lock_guard lock(mu);
        open = true;
    }
    return true;
}

void SofiaAgent::Impl::cleanup() {
    {
        std::lock_guard lock(mu);
        open = false;
        queue.clear();
    }
    for (auto& [token, p] : pending) {
        nua_destroy_event(p.saved);
        nua_handle_destroy(p.nh);
    }
    pending.clear();
    pending_count = 0;
    for (auto& [nh, p] : probes) nua_handle_destroy(nh);
    probes.clear();
    for (auto& [nh, key] : outbound_by_nh) nua_handle_destroy(nh);
    outbound_by_nh.clear();
    outbound.clear();
    for (auto& [nh, l] : leaving) nua_handle_destroy(nh);
    leaving.clear();
    publish_registry();
    for (auto& [id, d] : dialogs) {
        nua_handle_bind(d->nh, nullptr);
        nua_handle_destroy(d->nh);
        CallEvent e;
        e.call = id;
        e.kind = CallEvent::Kind::ended;
        if (callbacks.on_call_event) callbacks.on_call_event(std::move(e));
    }
    dialogs.clear();
    dialog_count = 0;
    if (tick_timer) su_timer_destroy(tick_timer), tick_timer = nullptr;
    if (shutdown_timer) su_timer_destroy(shutdown_timer), shutdown_timer = nullptr;
    if (nua) nua_destroy(nua), nua = nullptr;
    if (wait_registered) {
        su_root_unregister(root, wait, &Impl::on_wakeup, static_cast<su_wakeup_arg_t*>(static_cast<void*>(this)));
        wait_registered = false;
    }
    if (root) su_root_destroy(root), root = nullptr;
    if (event_fd >= 0) ::close(event_fd), event_fd = -1;
    if (log_route) log_route->emit(log_route->assembler.flush());
    if (g_log_hook_users.fetch_sub(1) == 1) su_log_redirect(nullptr, nullptr, nullptr);
    t_log_route = nullptr;
    log_route.reset();
    su_deinit();
}

void SofiaAgent::Impl::event(nua_event_t event, int status, char const* phrase, nua_t* nua_, nua_handle_t* nh,
                             nua_hmagic_t* hmagic, sip_t const* sip) {
    switch (event) {
        case nua_i_register:
            incoming_register(status, nh, sip);
            return;
        case nua_i_options:
            incoming_options(status, nh);
            return;
        case nua_r_options: {
            if (status < 200) return;
            auto it = probes.find(nh);
            if (it != probes.end()) {
                ProbeResult r;
                r.key = it->second.key;
                r.status = status;
                if (sip && !answered_locally(nua_))
                    r.rtt = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - it->second.sent);
                probes.erase(it);
                if (callbacks.on_probe_result) callbacks.on_probe_result(std::move(r));
            }
            nua_handle_destroy(nh);
            return;
        }
        case nua_r_shutdown:
            if (status >= 200) su_root_break(root);
            return;
        case nua_r_register:
            registration_answer(nh, status, phrase, sip);
            return;
        case nua_r_unregister:
            unregistration_answer(nh, status, sip);
            return;
        case nua_i_error:
            log.debug("sip stack error: {} {}", status, phrase ? phrase : "");
            return;
        case nua_i_invite:
            incoming_invite(status, nh, sip);
            return;
        case nua_i_refer:
            // Outside any call: nothing to transfer (RFC 5589 transfers are
            // always in the dialog of the call being transferred).
            if (nh && !hmagic) {
                if (status < 200) nua_respond(nh, SIP_403_FORBIDDEN, NUTAG_WITH_THIS(nua_), TAG_END());
                nua_handle_destroy(nh);
            }
            return;
        case nua_i_message:
        case nua_i_subscribe:
        case nua_i_publish:
        case nua_i_notify:
        case nua_i_info:
        case nua_i_method:
            // Not allowed yet; the stack normally answers 405 before we hear of it.
            if (nh && !hmagic) {
                if (status < 200) nua_respond(nh, SIP_501_NOT_IMPLEMENTED, NUTAG_WITH_THIS(nua_), TAG_END());
                nua_handle_destroy(nh);
            }
            return;
        default:
            return;
    }
}

void SofiaAgent::Impl::ignore_silently(nua_handle_t* nh, const SocketAddress& from, const char* method) {
    // The transaction layer never sends a 408 to a non-INVITE request: the
    // transaction completes quietly and is reclaimed by its own timer.
    log.debug("ignoring {} from banned {}", method, from.str());
    nua_respond(nh, SIP_408_REQUEST_TIMEOUT, NUTAG_WITH_THIS(nua), TAG_END());
    nua_handle_destroy(nh);
}

bool SofiaAgent::Impl::overload_now() {
    std::uint64_t queued = 0, buffer = 0;
    for (int fd : udp_fds) {
        auto q = receive_queue(fd);
        queued += q.queued;
        buffer += q.buffer;
    }
    udp_queued.store(static_cast<std::uint32_t>(queued), std::memory_order_relaxed);
    udp_buffer.store(static_cast<std::uint32_t>(buffer), std::memory_order_relaxed);
    auto percent = overload_percent.load(std::memory_order_relaxed);
    bool over = percent && buffer && queued * 100 > buffer * percent;
    if (over && !overloaded) {
        overloaded = true;
        overload_since = Clock::now();
        refused_in_episode = 0;
        log.warning(
            "SIP overload: {} KiB of datagrams wait unread on UDP port {} ({}% of the receive buffer, "
            "overloadqueue={}); refusing new calls and registrations with 503",
            queued / 1024, config.port, queued * 100 / buffer, percent);
    } else if (!over && overloaded) {
        overloaded = false;
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - overload_since).count();
        log.notice("SIP overload over after {}.{:01} s: {} requests refused", ms / 1000, ms % 1000 / 100,
                   refused_in_episode);
    }
    return over;
}

bool SofiaAgent::Impl::refuse_if_overloaded(nua_handle_t* nh) {
    // Cheap to refuse: a new request costs its 503 and, for an INVITE, the
    // ACK; a call let in costs a dozen messages and its other leg. Requests
    // inside dialogs (ACK, BYE, re-INVITE) never come here.
    if (!overload_percent.load(std::memory_order_relaxed) || !overload_now()) return false;
    ++refused_in_episode;
    overload_refused.fetch_add(1, std::memory_order_relaxed);
    auto retry = std::to_string(overload_retry_after.load(std::memory_order_relaxed));
    nua_respond(nh, SIP_503_SERVICE_UNAVAILABLE, NUTAG_WITH_THIS(nua), SIPTAG_RETRY_AFTER_STR(retry.c_str()),
                TAG_END());
    nua_handle_destroy(nh);
    return true;
}

void SofiaAgent::Impl::incoming_register(int status, nua_handle_t* nh, const sip_t* sip) {
    if (!nh) return;
    if (status >= 200 || shutting_down) {
        if (status < 200) nua_respond(nh, SIP_503_SERVICE_UNAVAILABLE, NUTAG_WITH_THIS(nua), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    auto source = source_of(nua);
    if (!source) {
        nua_respond(nh, SIP_500_INTERNAL_SERVER_ERROR, NUTAG_WITH_THIS(nua), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    if (callbacks.is_banned && callbacks.is_banned(source->ip)) {
        ignore_silently(nh, *source, "REGISTER");
        return;
    }
    if (refuse_if_overloaded(nh)) return;
    if (pending.size() >= max_pending) {
        nua_respond(nh, SIP_503_SERVICE_UNAVAILABLE, NUTAG_WITH_THIS(nua), SIPTAG_RETRY_AFTER_STR("5"), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    auto request = to_request(nua, sip, *source);
    if (!request) {
        nua_respond(nh, SIP_400_BAD_REQUEST, NUTAG_WITH_THIS(nua), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    auto token = next_token++;
    auto& p = pending[token];
    p.nh = nh;
    p.received = Clock::now();
    nua_save_event(nua, p.saved);
    pending_count = pending.size();
    if (callbacks.on_register) callbacks.on_register(IncomingRequest{token, std::move(*request)});
}

void SofiaAgent::Impl::incoming_options(int status, nua_handle_t* nh) {
    if (!nh) return;
    if (status < 200) {
        auto source = source_of(nua);
        if (source && callbacks.is_banned && callbacks.is_banned(source->ip)) {
            ignore_silently(nh, *source, "OPTIONS");
            return;
        }
        // OPTIONS is a keep-alive and capability query: answered without
        // authentication, as every PBX does, but never from a banned source.
        nua_respond(nh, SIP_200_OK, NUTAG_WITH_THIS(nua), SIPTAG_ALLOW_STR(kAllowInCalls), TAG_END());
    }
    nua_handle_destroy(nh);
}

void SofiaAgent::Impl::answer(std::uint64_t token, const SipResponse& r) {
    auto it = pending.find(token);
    if (it == pending.end()) return;
    auto& p = it->second;
    auto headers = r.header_block();
    nua_respond(p.nh, r.status, intern(r.phrase), NUTAG_WITH_SAVED(p.saved),
                TAG_IF(!headers.empty(), SIPTAG_HEADER_STR(headers.c_str())), TAG_END());
    nua_destroy_event(p.saved);
    nua_handle_destroy(p.nh);
    pending.erase(it);
    pending_count = pending.size();
}

void SofiaAgent::Impl::tick() {
    overload_now();  // ends an episode that no request has ended, refreshes the figures
    sweep_connections();
    auto now = Clock::now();
    for (auto it = pending.begin(); it != pending.end();) {
        if (now - it->second.received < pending_timeout) {
            ++it;
            continue;
        }
        log.warning("a SIP request waited {} s for an answer: answering 500",
                    std::chrono::duration_cast<std::chrono::seconds>(pending_timeout).count());
        nua_respond(it->second.nh, SIP_500_INTERNAL_SERVER_ERROR, NUTAG_WITH_SAVED(it->second.saved), TAG_END());
        nua_destroy_event(it->second.saved);
        nua_handle_destroy(it->second.nh);
        it = pending.erase(it);
    }
    pending_count = pending.size();
    for (auto it = probes.begin(); it != probes.end();) {
        if (now < it->second.deadline) {
            ++it;
            continue;
        }
        ProbeResult r;
        r.key = it->second.key;
        nua_handle_destroy(it->first);
        it = probes.erase(it);
        if (callbacks.on_probe_result) callbacks.on_probe_result(std::move(r));
    }
    if (shutting_down) return;
    for (auto& [key, o] : outbound)
        if (!o.nh && o.entry.state != RegistryState::failed && now >= o.retry_at) start_registration(o);
    if (!callbacks.on_tick) return;
    for (auto& t : callbacks.on_tick()) send_probe(t);
}

void SofiaAgent::Impl::send_probe(const QualifyTarget& t) {
    std::string to = "<" + t.uri + ">";
    std::string proxy;
    if (t.send_to && t.route.empty())
        proxy = fmt::format("sip:{};transport={}", t.send_to->str(), to_string(t.transport));
    std::string route;
    for (auto& r : t.route) route += (route.empty() ? "" : ", ") + r;
    nua_handle_t* nh = nua_handle(nua, nullptr, SIPTAG_TO_STR(to.c_str()), TAG_END());
    if (!nh) return;
    auto now = Clock::now();
    auto wait = std::max<Clock::duration>(2 * t.limit, std::chrono::seconds(3));
    probes[nh] = Probe{t.key, now, now + wait};
    nua_options(nh, NUTAG_URL(URL_STRING_MAKE(t.uri.c_str())),
                TAG_IF(!proxy.empty(), NUTAG_PROXY(URL_STRING_MAKE(proxy.c_str()))),
                TAG_IF(!route.empty(), SIPTAG_ROUTE_STR(route.c_str())), TAG_END());
}

void SofiaAgent::Impl::begin_shutdown() {
    if (shutting_down) return;
    shutting_down = true;
    for (auto& [token, p] : pending) {
        nua_respond(p.nh, SIP_503_SERVICE_UNAVAILABLE, NUTAG_WITH_SAVED(p.saved), TAG_END());
        nua_destroy_event(p.saved);
        nua_handle_destroy(p.nh);
    }
    pending.clear();
    pending_count = 0;
    for (auto& [nh, p] : probes) nua_handle_destroy(nh);
    probes.clear();
    std::vector<std::uint64_t> ids;
    for (auto& [id, d] : dialogs) ids.push_back(id);
    for (auto id : ids) hangup_call(id, 503);
    for (auto& [key, o] : outbound) end_registration(o);
    outbound.clear();
    publish_registry();
    shutdown_timer = su_timer_create(su_root_task(root), shutdown_ms);
    if (shutdown_timer) su_timer_set(shutdown_timer, &Impl::on_shutdown_timeout, this);
    nua_shutdown(nua);
}

void SofiaAgent::Impl::sweep_connections() {
    guard.set_limits({std::chrono::seconds(guard_timeout_s.load()), guard_limit.load()});
    {
        std::lock_guard lock(mu);
        if (guard_trusted_applied != guard_trusted_generation) {
            guard.set_trusted(guard_trusted);
            guard_trusted_applied = guard_trusted_generation;
        }
    }
    if (stream_ports.empty() || !guard.enabled() || shutting_down) return;
    std::string error;
    auto open = established_connections(stream_ports, stream_address, error);
    if (!open) {
        if (!guard_failed)
            log.warning("cannot list the TCP/TLS connections ({}): tcpauthtimeout and tcpauthlimit are not enforced",
                        error);
        guard_failed = true;
        return;
    }
    guard_failed = false;
    auto sweep = guard.sweep(*open, Clock::now());
    guard_unauthenticated = sweep.unauthenticated;
    guard_authenticated = sweep.authenticated;
    if (sweep.timed_out.empty() && sweep.over_limit.empty()) return;
    auto closing = sweep.timed_out;
    closing.insert(closing.end(), sweep.over_limit.begin(), sweep.over_limit.end());
    shut_down_connections(closing, error);
    guard_closed = guard.closed_total();
    auto name = [&](const StreamConnection& c) {
        return fmt::format("{} {}", config.tls && c.local_port == config.tls_port ? "TLS" : "TCP", c.remote.str());
    };
    if (!sweep.timed_out.empty())
        log.notice("closed {} SIP connection{} that did not authenticate within {} s (tcpauthtimeout), {} first",
                   sweep.timed_out.size(), sweep.timed_out.size() == 1 ? "" : "s", guard.limits().auth_timeout.count(),
                   name(sweep.timed_out.front()));
    if (!sweep.over_limit.empty())
        log.notice("closed {} SIP connection{} beyond tcpauthlimit={} connections not yet authenticated, {} first",
                   sweep.over_limit.size(), sweep.over_limit.size() == 1 ? "" : "s", guard.limits().auth_limit,
                   name(sweep.over_limit.front()));
    if (!error.empty()) log.warning("closing SIP connections: {}", error);
}

void SofiaAgent::Impl::apply_bans(const std::vector<IpAddress>& banned) {
    auto filter = build_ban_filter(banned);
    std::string error;
    int n = apply_ban_filter(config.port, filter, error);
    if (config.tls) n += apply_ban_filter(config.tls_port, filter, error);
    if (!error.empty()) log.warning("{} (banned addresses are still ignored, later in the stack)", error);
    if (filter.addresses < banned.size())
        log.warning("{} of {} banned addresses fit in the socket filter; the rest are ignored later in the stack",
                    filter.addresses, banned.size());
    log.debug("socket filter: {} banned addresses on {} sockets", filter.addresses, n);
}

namespace {

std::string body_of(const sip_t* sip) {
    if (!sip || !sip->sip_payload || !sip->sip_payload->pl_data) return {};
    return std::string(sip->sip_payload->pl_data, sip->sip_payload->pl_len);
}

bool has_body(const sip_t* sip) {
    return sip && sip->sip_payload && sip->sip_payload->pl_data && sip->sip_payload->pl_len;
}

bool is_multipart(const sip_content_type_t* ct) {
    return ct && ct->c_type && strncasecmp(ct->c_type, "multipart/", 10) == 0;
}

// The application/sdp part of a multipart body (SIP-I trunks send SDP beside
// ISUP, emergency calls beside PIDF-LO); empty when there is none. Parsed from
// a copy: the stack's parser writes into the buffer it is given.
std::string sdp_part(const sip_t* sip) {
    su_home_t home[1] = {SU_HOME_INIT(home)};
    std::string sdp;
    auto* copy = msg_payload_create(home, sip->sip_payload->pl_data, sip->sip_payload->pl_len);
    for (auto* mp = copy ? msg_multipart_parse(home, sip->sip_content_type, copy) : nullptr; mp; mp = mp->mp_next) {
        if (mp->mp_content_type && mp->mp_content_type->c_type && mp->mp_payload && mp->mp_payload->pl_data &&
            strcasecmp(mp->mp_content_type->c_type, "application/sdp") == 0) {
            sdp.assign(mp->mp_payload->pl_data, mp->mp_payload->pl_len);
            break;
        }
    }
    su_home_deinit(home);
    return sdp;
}

// The session description a message carries: its body when that is SDP (or
// has no Content-Type, taken as SDP as most stacks do), else the SDP part of
// a multipart body; empty when there is none.
std::string sdp_of(const sip_t* sip) {
    if (!has_body(sip)) return {};
    auto* ct = sip->sip_content_type;
    if (!ct || !ct->c_type || strcasecmp(ct->c_type, "application/sdp") == 0) return body_of(sip);
    return is_multipart(ct) ? sdp_part(sip) : std::string();
}

// 0, or 415 / 406 for an initial INVITE whose body or Accept Tandem cannot
// answer (content.hpp).
int invite_content_status(const sip_t* sip, const std::string& sdp) {
    InviteContent c;
    c.has_body = has_body(sip);
    if (sip->sip_content_type && sip->sip_content_type->c_type) c.type = sip->sip_content_type->c_type;
    c.multipart_has_sdp = !sdp.empty() && is_multipart(sip->sip_content_type);
    for (auto* e = sip->sip_content_encoding; e; e = e->k_next)
        for (auto* item = e->k_items; item && *item; ++item) c.encodings.emplace_back(*item);
    if (sip->sip_accept) {
        c.accept.emplace();
        for (auto* a = sip->sip_accept; a; a = a->ac_next) c.accept->emplace_back(a->ac_type ? a->ac_type : "");
    }
    return invite_content_status(c);
}

}  // namespace

void SofiaAgent::Impl::incoming_invite(int status, nua_handle_t* nh, const sip_t* sip) {
    if (!nh) return;
    if (status >= 200 || shutting_down) {
        if (status < 200) nua_respond(nh, SIP_503_SERVICE_UNAVAILABLE, NUTAG_WITH_THIS(nua), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    auto source = source_of(nua);
    if (!source) {
        nua_respond(nh, SIP_500_INTERNAL_SERVER_ERROR, NUTAG_WITH_THIS(nua), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    if (callbacks.is_banned && callbacks.is_banned(source->ip)) {
        log.debug("ignoring INVITE from banned {}", source->str());
        nua_respond(nh, SIP_403_FORBIDDEN, NUTAG_WITH_THIS(nua), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    if (refuse_if_overloaded(nh)) return;
    auto request = to_request(nua, sip, *source);
    if (!request || !callbacks.on_invite) {
        nua_respond(nh, request ? 503 : 400, request ? "Service Unavailable" : "Bad Request", NUTAG_WITH_THIS(nua),
                    TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    auto sdp = sdp_of(sip);
    if (int refusal = invite_content_status(sip, sdp)) {
        // Before authentication, as the stack refuses unknown methods (405)
        // and extensions (420): these need nothing but the request.
        log.debug("refusing INVITE from {}: {}", source->str(),
                  refusal == 415 ? "a body of a type or encoding we cannot read" : "its Accept rules out SDP");
        nua_respond(nh, refusal, sip_status_phrase(refusal), NUTAG_WITH_THIS(nua),
                    TAG_IF(refusal == 415, SIPTAG_ACCEPT_STR("application/sdp")),
                    TAG_IF(refusal == 415, SIPTAG_ACCEPT_ENCODING_STR("identity")), TAG_END());
        nua_handle_destroy(nh);
        return;
    }
    su_home_t home[1] = {SU_HOME_INIT(home)};
    CallOffer offer;
    offer.call = next_call++;
    offer.request = std::move(*request);
    if (sip->sip_request->rq_url->url_user) offer.request_user = sip->sip_request->rq_url->url_user;
    if (sip->sip_from) {
        if (sip->sip_from->a_display) offer.from_display = unquote(sip->sip_from->a_display);
        if (sip->sip_from->a_url->url_user) offer.from_user = sip->sip_from->a_url->url_user;
    }
    if (auto* pai = sip_p_asserted_identity(sip)) {
        if (pai->paid_display) offer.asserted_display = unquote(pai->paid_display);
        if (pai->paid_url->url_user) offer.asserted_user = pai->paid_url->url_user;
    }
    offer.sdp = std::move(sdp);
    offer.has_body = offer.sdp.empty() && has_body(sip);
    offer.reliable = sip_has_feature(sip->sip_supported, "100rel") || sip_has_feature(sip->sip_require, "100rel");
    if (sip->sip_max_forwards)
        offer.max_forwards = static_cast<int>(std::min<unsigned long>(sip->sip_max_forwards->mf_count, 255));
    if (auto* rp = sip_replaces(sip)) {
        // RFC 3891 section 3: only a confirmed dialog of ours is replaced
        // (an early one we did not start is 481), never one early-only, nor
        // one already ending. The loop answers after authentication.
        offer.has_replaces = true;
        auto* r = replaced_dialog(rp);
        if (!r || !r->answered)
            offer.replaces_status = 481;
        else if (r->hangup)
            offer.replaces_status = 603;
        else if (rp->rp_early_only)
            offer.replaces_status = 486;
        else
            offer.replaces = r->id;
    }
    su_home_deinit(home);

    auto d = std::make_unique<Dialog>();
    d->id = offer.call;
    d->nh = nh;
    d->incoming = true;
    d->reliable = offer.reliable;
    d->transport = offer.request.transport;
    nua_handle_bind(nh, reinterpret_cast<nua_hmagic_t*>(d.get()));
    allow_in_call(nh);
    dialogs.emplace(d->id, std::move(d));
    dialog_count = dialogs.size();
    callbacks.on_invite(std::move(offer));
}

void SofiaAgent::Impl::emit(Dialog& d, CallEvent::Kind kind, int status, const char* phrase, const sip_t* sip) {
    if (!callbacks.on_call_event) return;
    CallEvent e;
    e.call = d.id;
    e.kind = kind;
    e.status = status;
    if (phrase) e.phrase = phrase;
    if (sip && sip->sip_call_id && sip->sip_call_id->i_id) e.sip_call_id = sip->sip_call_id->i_id;
    e.sdp = sdp_of(sip);
    callbacks.on_call_event(std::move(e));
}

void SofiaAgent::Impl::release(Dialog* d) {
    auto id = d->id;
    nua_handle_bind(d->nh, nullptr);
    nua_handle_destroy(d->nh);
    CallEvent e;
    e.call = id;
    e.kind = CallEvent::Kind::ended;
    dialogs.erase(id);
    dialog_count = dialogs.size();
    if (callbacks.on_call_event) callbacks.on_call_event(std::move(e));
}

void SofiaAgent::Impl::call_event(nua_event_t event, int status, char const* phrase, nua_handle_t* nh, Dialog* d,
                                  const sip_t* sip, tagi_t tags[]) {
    switch (event) {
        case nua_i_state: {
            int state = nua_callstate_init;
            tl_gets(tags, NUTAG_CALLSTATE_REF(state), TAG_END());
            if (state == nua_callstate_terminated) release(d);
            return;
        }
        case nua_i_invite:
            // A re-INVITE inside the dialog (the initial one has no Dialog yet).
            if (status < 200) emit(*d, CallEvent::Kind::reinvite, 0, nullptr, sip);
            return;
        case nua_i_ack:
            emit(*d, CallEvent::Kind::ack, 0, nullptr, sip);
            return;
        case nua_i_bye:
            emit(*d, CallEvent::Kind::bye);
            return;
        case nua_i_cancel:
            d->final_sent = true;
            emit(*d, CallEvent::Kind::cancel);
            return;
        case nua_i_info: {
            if (status < 200) nua_respond(nh, SIP_200_OK, NUTAG_WITH_THIS(nua), TAG_END());
            if (!callbacks.on_call_event) return;
            CallEvent e;
            e.call = d->id;
            e.kind = CallEvent::Kind::info;
            if (sip && sip->sip_content_type && sip->sip_content_type->c_type)
                e.content_type = sip->sip_content_type->c_type;
            e.body = body_of(sip);
            callbacks.on_call_event(std::move(e));
            return;
        }
        case nua_i_refer:
            if (status < 200) incoming_refer(nh, *d, sip, tags);
            return;
        case nua_r_invite: {
            if (d->reinviting) {
                // Ours, in an answered dialog: only its final answer matters.
                if (status < 200) return;
                d->reinviting = false;
                if (!d->hangup) emit(*d, CallEvent::Kind::reinvite_answered, status, phrase, sip);
                return;
            }
            if (status < 200) {
                if (status > 100 && !d->hangup) emit(*d, CallEvent::Kind::progress, status, phrase, sip);
                return;
            }
            if (status < 300) {
                d->answered = true;
                // Tandem hung up meanwhile (the 200 crossed our CANCEL): end it at once.
                if (d->hangup) {
                    nua_bye(nh, TAG_END());
                    return;
                }
                emit(*d, CallEvent::Kind::answered, status, phrase, sip);
                return;
            }
            if ((status == 401 || status == 407) && !d->hangup && !d->auth_secret.empty() && d->auth_attempts < 2 &&
                sip) {
                const char* scheme = nullptr;
                const char* realm = nullptr;
                auto* challenge = status == 401 ? sip->sip_www_authenticate : sip->sip_proxy_authenticate;
                if (challenge) {
                    scheme = challenge->au_scheme;
                    realm = msg_params_find(challenge->au_params, "realm=");
                }
                if (scheme && realm) {
                    ++d->auth_attempts;
                    auto credentials = fmt::format("{}:{}:{}:{}", scheme, realm, d->auth_user, d->auth_secret);
                    nua_authenticate(nh, NUTAG_AUTH(credentials.c_str()), TAG_END());
                    return;
                }
            }
            if (!d->hangup) emit(*d, CallEvent::Kind::failed, status, phrase, sip);
            // After an unanswered 401/407 the stack keeps the call in its
            // initial state (ready to authenticate) instead of terminating it.
            if (status == 401 || status == 407) release(d);
            return;
        }
        default:
            return;
    }
}

void SofiaAgent::Impl::respond_call(std::uint64_t id, int status, const std::string& phrase, const std::string& sdp,
                                    const std::string& headers) {
    auto it = dialogs.find(id);
    if (it == dialogs.end()) return;
    auto& d = *it->second;
    if (!d.incoming && status < 200) return;
    bool reinvite = d.answered;
    if (!reinvite && d.final_sent) return;
    if (status >= 200 && !reinvite) d.final_sent = true;
    if (status >= 200 && status < 300) d.answered = true;
    auto ours = contact(d.transport);
    nua_respond(d.nh, status, intern(phrase), TAG_IF(!ours.empty(), SIPTAG_CONTACT_STR(ours.c_str())),
                TAG_IF(!sdp.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
                TAG_IF(!sdp.empty(), SIPTAG_PAYLOAD_STR(sdp.c_str())),
                TAG_IF(!headers.empty(), SIPTAG_HEADER_STR(headers.c_str())), TAG_END());
}

void SofiaAgent::Impl::invite(std::uint64_t id, const OutgoingCall& c) {
    if (shutting_down) {
        CallEvent e;
        e.call = id;
        e.kind = CallEvent::Kind::failed;
        e.status = 503;
        if (callbacks.on_call_event) callbacks.on_call_event(e);
        e.kind = CallEvent::Kind::ended;
        if (callbacks.on_call_event) callbacks.on_call_event(std::move(e));
        return;
    }
    std::string proxy;
    if (c.send_to && c.route.empty())
        proxy = fmt::format("sip:{};transport={}", c.send_to->str(), to_string(c.transport));
    std::string route;
    for (auto& r : c.route) route += (route.empty() ? "" : ", ") + r;
    nua_handle_t* nh = nua_handle(nua, nullptr, SIPTAG_TO_STR(c.to.c_str()), TAG_END());
    if (!nh) {
        CallEvent e;
        e.call = id;
        e.kind = CallEvent::Kind::failed;
        e.status = 500;
        if (callbacks.on_call_event) callbacks.on_call_event(e);
        e.kind = CallEvent::Kind::ended;
        if (callbacks.on_call_event) callbacks.on_call_event(std::move(e));
        return;
    }
    auto d = std::make_unique<Dialog>();
    d->id = id;
    d->nh = nh;
    d->auth_user = c.auth_user;
    d->auth_secret = c.auth_secret;
    nua_handle_bind(nh, reinterpret_cast<nua_hmagic_t*>(d.get()));
    allow_in_call(nh);
    dialogs.emplace(id, std::move(d));
    dialog_count = dialogs.size();
    auto ours = contact(c.transport);
    auto hops = std::to_string(std::clamp(c.max_forwards, 0, 255));
    nua_invite(nh, NUTAG_URL(URL_STRING_MAKE(c.request_uri.c_str())), SIPTAG_FROM_STR(c.from.c_str()),
               SIPTAG_MAX_FORWARDS_STR(hops.c_str()), TAG_IF(!ours.empty(), SIPTAG_CONTACT_STR(ours.c_str())),
               TAG_IF(!proxy.empty(), NUTAG_PROXY(URL_STRING_MAKE(proxy.c_str()))),
               TAG_IF(!route.empty(), SIPTAG_ROUTE_STR(route.c_str())),
               TAG_IF(!c.sdp.empty(), SIPTAG_CONTENT_TYPE_STR("application/sdp")),
               TAG_IF(!c.sdp.empty(), SIPTAG_PAYLOAD_STR(c.sdp.c_str())),
               TAG_IF(!c.headers.empty(), SIPTAG_HEADER_STR(c.headers.c_str())), TAG_END());
}

void SofiaAgent::Impl::hangup_call(std::uint64_t id, int status) {
    auto it = dialogs.find(id);
    if (it == dialogs.end()) return;
    auto& d = *it->second;
    if (d.hangup) return;
    d.hangup = true;
    if (d.answered) {
        nua_bye(d.nh, TAG_END());
    } else if (d.incoming) {
        if (d.final_sent) return;
        d.final_sent = true;
        if (status < 300 || status > 699) status = 603;
        nua_respond(d.nh, status, sip_status_phrase(status) ? sip_status_phrase(status) : "Declined", TAG_END());
    } else {
        nua_cancel(d.nh, TAG_END());
    }
}

void SofiaAgent::Impl::reinvite(std::uint64_t id, const std::string& sdp) {
    auto it = dialogs.find(id);
    if (it == dialogs.end()) return;
    auto& d = *it->second;
    if (!d.answered || d.hangup || d.reinviting) {
        emit(d, CallEvent::Kind::reinvite_answered, d.reinviting ? 491 : 481);
        return;
    }
    d.reinviting = true;
    auto ours = contact(d.transport);
    // On an established handle nua_invite() is a re-INVITE in its dialog.
    nua_invite(d.nh, TAG_IF(!ours.empty(), SIPTAG_CONTACT_STR(ours.c_str())),
               SIPTAG_CONTENT_TYPE_STR("application/sdp"), SIPTAG_PAYLOAD_STR(sdp.c_str()), TAG_END());
}

void SofiaAgent::Impl::info(std::uint64_t id, const std::string& type, const std::string& body) {
    auto it = dialogs.find(id);
    if (it == dialogs.end() || !it->second->answered || it->second->hangup) return;
    nua_info(it->second->nh, SIPTAG_CONTENT_TYPE_STR(type.c_str()), SIPTAG_PAYLOAD_STR(body.c_str()), TAG_END());
}

SofiaAgent::Impl::Dialog* SofiaAgent::Impl::replaced_dialog(const sip_replaces_t* rp) {
    if (!rp || !rp->rp_call_id || !rp->rp_to_tag || !rp->rp_from_tag) return nullptr;
    nua_handle_t* other = nua_handle_by_replaces(nua, rp);
    if (!other) return nullptr;
    auto* d = reinterpret_cast<Dialog*>(nua_handle_magic(other));
    nua_handle_unref(other);
    // Only call handles carry a Dialog; make sure it is one still alive.
    if (!d) return nullptr;
    auto it = dialogs.find(d->id);
    return it != dialogs.end() && it->second.get() == d ? d : nullptr;
}

void SofiaAgent::Impl::incoming_refer(nua_handle_t* nh, Dialog& d, const sip_t* sip, tagi_t tags[]) {
    if (d.refer_pending || d.hangup || !d.answered) {
        // One transfer at a time, and only of an answered call that stays.
        if (d.refer_pending)
            nua_respond(nh, SIP_491_REQUEST_PENDING, NUTAG_WITH_THIS(nua), TAG_END());
        else
            nua_respond(nh, SIP_603_DECLINE, NUTAG_WITH_THIS(nua), TAG_END());
        return;
    }
    if (!sip || !sip->sip_refer_to || !sip->sip_refer_to->r_url->url_host) {
        nua_respond(nh, 400, "Missing Refer-To", NUTAG_WITH_THIS(nua), TAG_END());
        return;
    }
    su_home_t home[1] = {SU_HOME_INIT(home)};
    CallEvent e;
    e.call = d.id;
    e.kind = CallEvent::Kind::refer;
    if (sip->sip_call_id && sip->sip_call_id->i_id) e.sip_call_id = sip->sip_call_id->i_id;
    e.refer_to = url_text(home, sip->sip_refer_to->r_url);
    if (sip->sip_referred_by) e.referred_by = url_text(home, sip->sip_referred_by->b_url);
    // Attended transfer: the Refer-To carries the other call's dialog (as
    // the transferer sees it, which is ours with the tags swapped).
    if (auto target = parse_refer_to(e.refer_to); target && target->replaces) {
        auto text = fmt::format("{};to-tag={};from-tag={}", target->replaces->call_id, target->replaces->to_tag,
                                target->replaces->from_tag);
        if (auto* rp = sip_replaces_make(home, text.c_str()))
            if (auto* r = replaced_dialog(rp); r && r != &d) e.refer_replaces = r->id;
    }
    sip_event_t const* event = nullptr;
    tl_gets(tags, NUTAG_REFER_EVENT_REF(event), TAG_END());
    if (event) d.refer_event = header_text(home, reinterpret_cast<const sip_header_t*>(event));
    if (d.refer_event.empty()) d.refer_event = "refer";
    su_home_deinit(home);
    d.refer_pending = true;
    nua_save_event(nua, d.refer_saved);
    if (callbacks.on_call_event) callbacks.on_call_event(std::move(e));
}

void SofiaAgent::Impl::refer_answer(std::uint64_t id, int status) {
    auto it = dialogs.find(id);
    if (it == dialogs.end() || !it->second->refer_pending) return;
    auto& d = *it->second;
    const char* phrase = sip_status_phrase(status);
    nua_respond(d.nh, status, phrase ? phrase : "Unknown", NUTAG_WITH_SAVED(d.refer_saved), TAG_END());
    nua_destroy_event(d.refer_saved);
    d.refer_pending = false;
}

void SofiaAgent::Impl::notify(std::uint64_t id, const std::string& sipfrag, bool final) {
    auto it = dialogs.find(id);
    if (it == dialogs.end() || it->second->hangup) return;
    auto& d = *it->second;
    auto body = sipfrag + "\r\n";
    nua_notify(d.nh, SIPTAG_EVENT_STR(d.refer_event.c_str()),
               NUTAG_SUBSTATE(final ? nua_substate_terminated : nua_substate_active),
               TAG_IF(final, SIPTAG_SUBSCRIPTION_STATE_STR("terminated;reason=noresource")),
               SIPTAG_CONTENT_TYPE_STR("message/sipfrag;version=2.0"), SIPTAG_PAYLOAD_STR(body.c_str()), TAG_END());
}

namespace {

std::int64_t wall_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

void SofiaAgent::Impl::set_registrations(const std::vector<OutboundRegistration>& wanted) {
    if (shutting_down) return;
    for (auto it = outbound.begin(); it != outbound.end();) {
        auto same = std::find(wanted.begin(), wanted.end(), it->second.config);
        if (same != wanted.end()) {
            ++it;
            continue;
        }
        log.notice("registration {}: removed from sip.conf", it->first);
        end_registration(it->second);
        it = outbound.erase(it);
    }
    for (auto& w : wanted) {
        auto key = w.key();
        if (outbound.count(key)) continue;
        auto& o = outbound[key];
        o.config = w;
        o.entry.key = key;
        o.entry.host = w.host;
        o.entry.port = w.port;
        o.entry.user = w.user;
        o.entry.endpoint = w.endpoint;
        start_registration(o);
    }
    publish_registry();
}

void SofiaAgent::Impl::start_registration(Outbound& o) {
    auto& c = o.config;
    auto aor = fmt::format("<sip:{}@{}>", c.user, c.host);
    auto registrar = sip_uri(fmt::format("{}:{}", c.host, c.port), c.transport);
    auto expires = std::to_string(c.expiry.count());
    o.nh = nua_handle(nua, nullptr, SIPTAG_TO_STR(aor.c_str()), SIPTAG_FROM_STR(aor.c_str()), TAG_END());
    if (!o.nh) {
        registration_failed(o, 500, "cannot create a handle");
        return;
    }
    outbound_by_nh[o.nh] = o.entry.key;
    o.auth_attempts = 0;
    o.entry.state = RegistryState::request_sent;
    o.entry.next_attempt = 0;
    // The stack refreshes the binding before it expires; its own NAT
    // keep-alives and Contact validation are for phones, not for a PBX.
    auto ours = contact(c.transport, c.contact_user);
    // Bound to a wildcard address the stack builds the Contact: it must still
    // ask for the registration's transport.
    std::string params = ours.empty() && c.transport != Transport::udp
                             ? fmt::format("transport={}", to_string(c.transport))
                             : std::string();
    nua_register(o.nh, NUTAG_REGISTRAR(URL_STRING_MAKE(registrar.c_str())), NUTAG_M_USERNAME(c.contact_user.c_str()),
                 TAG_IF(!ours.empty(), SIPTAG_CONTACT_STR(ours.c_str())), SIPTAG_EXPIRES_STR(expires.c_str()),
                 TAG_IF(!c.proxy.empty(), SIPTAG_ROUTE_STR(c.proxy.c_str())),
                 TAG_IF(!params.empty(), NUTAG_M_PARAMS(params.c_str())),
                 NUTAG_OUTBOUND("no-options-keepalive, no-validate, no-natify"), NUTAG_KEEPALIVE(0), TAG_END());
    publish_registry();
}

void SofiaAgent::Impl::end_registration(Outbound& o) {
    if (callbacks.on_registry_change) {
        auto gone = o.entry;
        gone.state = RegistryState::unregistered;
        callbacks.on_registry_change(std::move(gone));
    }
    if (!o.nh) return;
    outbound_by_nh.erase(o.nh);
    if (o.entry.state == RegistryState::registered) {
        leaving[o.nh] = Leaving{o.config, 0};
        nua_unregister(o.nh, TAG_END());
        log.notice("registration {}: unregistering", o.entry.key);
    } else {
        nua_handle_destroy(o.nh);
    }
    o.nh = nullptr;
    o.entry.state = RegistryState::unregistered;
    o.entry.expires_at = 0;
}

bool SofiaAgent::Impl::authenticate(nua_handle_t* nh, int status, const sip_t* sip, const OutboundRegistration& c,
                                    int& attempts) {
    if ((status != 401 && status != 407) || c.secret.empty() || attempts >= 2 || !sip) return false;
    auto* challenge = status == 401 ? sip->sip_www_authenticate : sip->sip_proxy_authenticate;
    if (!challenge || !challenge->au_scheme) return false;
    const char* realm = msg_params_find(challenge->au_params, "realm=");
    if (!realm) return false;
    ++attempts;
    auto credentials = fmt::format("{}:{}:{}:{}", challenge->au_scheme, realm, c.auth_user, c.secret);
    nua_authenticate(nh, NUTAG_AUTH(credentials.c_str()), TAG_END());
    return true;
}

void SofiaAgent::Impl::registration_answer(nua_handle_t* nh, int status, const char* phrase, const sip_t* sip) {
    auto by = outbound_by_nh.find(nh);
    if (by == outbound_by_nh.end()) return;
    auto it = outbound.find(by->second);
    if (it == outbound.end()) return;
    auto& o = it->second;
    if (status < 200) return;
    if (authenticate(nh, status, sip, o.config, o.auth_attempts)) {
        o.entry.state = RegistryState::auth_sent;
        publish_registry();
        return;
    }
    if (status >= 300) {
        registration_failed(o, status, phrase);
        return;
    }
    // The registrar may grant less than asked: its answer's Contact (ours)
    // or Expires says how long.
    long long granted = o.config.expiry.count();
    if (sip && sip->sip_expires) granted = static_cast<long long>(sip->sip_expires->ex_delta);
    if (sip)
        for (const sip_contact_t* m = sip->sip_contact; m; m = m->m_next)
            if (m->m_expires && m->m_url->url_user && o.config.contact_user == m->m_url->url_user)
                if (auto v = parse_long(m->m_expires)) granted = *v;
    bool was_up = o.entry.state == RegistryState::registered;
    o.auth_attempts = 0;
    o.entry.state = RegistryState::registered;
    o.entry.status = status;
    o.entry.failures = 0;
    o.entry.expires_at = wall_seconds() + granted;
    o.entry.next_attempt = 0;
    if (!was_up) log.notice("registration {}: Registered for {} s", o.entry.key, granted);
    publish_registry();
    if (!was_up && callbacks.on_registry_change) callbacks.on_registry_change(o.entry);
}

void SofiaAgent::Impl::registration_failed(Outbound& o, int status, const char* phrase) {
    if (o.nh) {
        outbound_by_nh.erase(o.nh);
        nua_handle_destroy(o.nh);
        o.nh = nullptr;
    }
    ++o.entry.failures;
    o.entry.status = status;
    o.entry.reason = phrase ? phrase : "";
    o.entry.expires_at = 0;
    o.entry.state = status == 408 || status == 503 ? RegistryState::timeout : RegistryState::rejected;
    if (o.config.attempts > 0 && o.entry.failures >= o.config.attempts) {
        o.entry.state = RegistryState::failed;
        o.entry.next_attempt = 0;
        log.warning("registration {}: {} {}; giving up after {} attempts", o.entry.key, status, phrase ? phrase : "",
                    o.entry.failures);
    } else {
        // 20 s, 40 s, 80 s ... up to 8 times registertimeout.
        auto delay = o.config.retry * (1 << std::min(o.entry.failures - 1, 3));
        o.retry_at = Clock::now() + delay;
        o.entry.next_attempt = wall_seconds() + delay.count();
        log.warning("registration {}: {} {}; retrying in {} s", o.entry.key, status, phrase ? phrase : "",
                    delay.count());
    }
    publish_registry();
    if (callbacks.on_registry_change) callbacks.on_registry_change(o.entry);
}

void SofiaAgent::Impl::unregistration_answer(nua_handle_t* nh, int status, const sip_t* sip) {
    auto it = leaving.find(nh);
    if (it == leaving.end() || status < 200) return;
    if (authenticate(nh, status, sip, it->second.config, it->second.auth_attempts)) return;
    log.notice("registration {}: unregistered ({})", it->second.config.key(), status);
    leaving.erase(it);
    nua_handle_destroy(nh);
}

void SofiaAgent::Impl::publish_registry() {
    std::vector<RegistryEntry> list;
    for (auto& [key, o] : outbound) list.push_back(o.entry);
    std::lock_guard lock(registry_mu);
    registry_snapshot = std::move(list);
}

SofiaAgent::SofiaAgent(Log log) : impl_(std::make_unique<Impl>(std::move(log))) {}

SofiaAgent::~SofiaAgent() {
    stop();
}

bool SofiaAgent::start(const AgentConfig& config, Callbacks callbacks, std::string& error) {
    if (impl_->thread.joinable()) {
        error = "already running";
        return false;
    }
    impl_->config = config;
    impl_->callbacks = std::move(callbacks);
    auto started = std::make_shared<std::promise<std::string>>();
    auto result = started->get_future();
    impl_->thread = std::thread([impl = impl_.get(), started] { impl->run(*started); });
    error = result.get();
    if (!error.empty()) {
        impl_->thread.join();
        return false;
    }
    return true;
}

void SofiaAgent::stop() {
    if (!impl_->thread.joinable()) return;
    impl_->push([impl = impl_.get()] { impl->begin_shutdown(); });
    impl_->thread.join();
}

bool SofiaAgent::running() const {
    std::lock_guard lock(impl_->mu);
    return impl_->open;
}

const AgentConfig& SofiaAgent::config() const {
    return impl_->config;
}

void SofiaAgent::respond(std::uint64_t token, SipResponse response) {
    impl_->push([impl = impl_.get(), token, r = std::move(response)] { impl->answer(token, r); });
}

void SofiaAgent::set_debug(bool on) {
    impl_->debug = on;
    impl_->push([impl = impl_.get(), on] {
        if (impl->nua) nua_set_params(impl->nua, TPTAG_LOG(on ? 1 : 0), TAG_END());
    });
}

void SofiaAgent::set_overload_guard(unsigned percent, std::chrono::seconds retry_after) {
    impl_->overload_percent = percent;
    impl_->overload_retry_after = static_cast<unsigned>(std::max<std::int64_t>(retry_after.count(), 1));
}

SofiaAgent::OverloadState SofiaAgent::overload() const {
    return {impl_->overloaded.load(), impl_->overload_refused.load(), impl_->udp_queued.load(),
            impl_->udp_buffer.load()};
}

bool SofiaAgent::debug() const {
    return impl_->debug.load();
}

void SofiaAgent::set_connection_guard(std::chrono::seconds auth_timeout, unsigned auth_limit,
                                      std::vector<IpAddress> trusted) {
    impl_->guard_timeout_s = auth_timeout.count();
    impl_->guard_limit = auth_limit;
    std::lock_guard lock(impl_->mu);
    impl_->guard_trusted = std::move(trusted);
    ++impl_->guard_trusted_generation;
}

void SofiaAgent::connection_authenticated(Transport transport, const SocketAddress& source) {
    if (transport == Transport::udp) return;
    impl_->push([impl = impl_.get(), transport, source] {
        auto port = transport == Transport::tls ? impl->config.tls_port : impl->config.port;
        impl->guard.authenticated(port, source, Clock::now());
    });
}

SofiaAgent::ConnectionState SofiaAgent::connections() const {
    return {impl_->guard_unauthenticated.load(), impl_->guard_authenticated.load(), impl_->guard_closed.load()};
}

void SofiaAgent::set_banned(std::vector<IpAddress> banned) {
    impl_->push([impl = impl_.get(), b = std::move(banned)] { impl->apply_bans(b); });
}

void SofiaAgent::wake() {
    impl_->push([impl = impl_.get()] { impl->tick(); });
}

std::size_t SofiaAgent::pending() const {
    return impl_->pending_count.load();
}

std::uint64_t SofiaAgent::new_call_id() {
    return impl_->next_call++;
}

void SofiaAgent::call_respond(std::uint64_t call, int status, std::string phrase, std::string sdp,
                              std::string headers) {
    impl_->push([impl = impl_.get(), call, status, p = std::move(phrase), b = std::move(sdp), h = std::move(headers)] {
        impl->respond_call(call, status, p, b, h);
    });
}

void SofiaAgent::call_invite(std::uint64_t call, OutgoingCall invite) {
    bool queued = false;
    {
        std::lock_guard lock(impl_->mu);
        queued = impl_->open;
    }
    if (!queued) {
        // Nobody will ever answer: say so, as the Sofia thread would.
        if (impl_->callbacks.on_call_event) {
            CallEvent e;
            e.call = call;
            e.kind = CallEvent::Kind::failed;
            e.status = 503;
            impl_->callbacks.on_call_event(e);
            e.kind = CallEvent::Kind::ended;
            impl_->callbacks.on_call_event(std::move(e));
        }
        return;
    }
    impl_->push([impl = impl_.get(), call, c = std::move(invite)] { impl->invite(call, c); });
}

void SofiaAgent::call_hangup(std::uint64_t call, int status) {
    impl_->push([impl = impl_.get(), call, status] { impl->hangup_call(call, status); });
}

void SofiaAgent::call_reinvite(std::uint64_t call, std::string sdp) {
    impl_->push([impl = impl_.get(), call, b = std::move(sdp)] { impl->reinvite(call, b); });
}

void SofiaAgent::call_info(std::uint64_t call, std::string content_type, std::string body) {
    impl_->push(
        [impl = impl_.get(), call, t = std::move(content_type), b = std::move(body)] { impl->info(call, t, b); });
}

void SofiaAgent::call_refer_answer(std::uint64_t call, int status) {
    impl_->push([impl = impl_.get(), call, status] { impl->refer_answer(call, status); });
}

void SofiaAgent::call_notify(std::uint64_t call, std::string sipfrag, bool final) {
    impl_->push([impl = impl_.get(), call, f = std::move(sipfrag), final] { impl->notify(call, f, final); });
}

std::size_t SofiaAgent::dialogs() const {
    return impl_->dialog_count.load();
}

void SofiaAgent::set_registrations(std::vector<OutboundRegistration> registrations) {
    impl_->push([impl = impl_.get(), r = std::move(registrations)] { impl->set_registrations(r); });
}

std::vector<RegistryEntry> SofiaAgent::registry() const {
    std::lock_guard lock(impl_->registry_mu);
    return impl_->registry_snapshot;
}

std::string pin_sofia_library() {
    // Sofia-SIP's library destructor deletes the thread key of its unique-id
    // generator even when that key was never created: it then deletes key 0,
    // which belongs to whoever created the process's first key (the
    // allocator's thread cache). Every later thread would lose its allocator
    // state, and the next library to create a key would share it. Unloading
    // chan_sip must therefore never unload Sofia-SIP: RTLD_NODELETE keeps it
    // mapped (and its destructor unrun) until the process exits. The
    // SSL_shutdown Sofia-SIP's relocations were bound to (sofia_tls_free.cpp)
    // must stay mapped as long as Sofia-SIP does.
    for (auto* symbol :
         {reinterpret_cast<void*>(&su_root_create), reinterpret_cast<void*>(&tandem_sofia_tls_free_linked)}) {
        Dl_info info{};
        if (!::dladdr(symbol, &info) || !info.dli_fname) return "cannot find a library to keep loaded in memory";
        if (!::dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE))
            return fmt::format("cannot keep {} loaded: {}", info.dli_fname, ::dlerror());
    }
    return {};
}

}  // namespace tandem::sip
