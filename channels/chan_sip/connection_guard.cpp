#include "connection_guard.hpp"

#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

namespace tandem::sip {

void ConnectionGuard::set_trusted(std::vector<IpAddress> trusted) {
    std::sort(trusted.begin(), trusted.end());
    trusted.erase(std::unique(trusted.begin(), trusted.end()), trusted.end());
    trusted_ = std::move(trusted);
}

void ConnectionGuard::authenticated(std::uint16_t local_port, const SocketAddress& remote, Clock::time_point now) {
    auto it = seen_.try_emplace(Key{local_port, remote}, Seen{now}).first;
    it->second.authenticated = true;
}

ConnectionGuard::Sweep ConnectionGuard::sweep(const std::vector<StreamConnection>& open, Clock::time_point now) {
    Sweep out;
    std::map<Key, Seen> next;
    struct Waiting {
        Clock::time_point since;
        const StreamConnection* connection;
    };
    std::vector<Waiting> waiting;
    for (auto& c : open) {
        Key key{c.local_port, c.remote};
        Seen s{now, false, true, c.inode};
        if (auto it = seen_.find(key); it != seen_.end()) {
            // The same address and port on another socket is a new connection:
            // it authenticates afresh.
            if (!it->second.listed || it->second.inode == c.inode) s = it->second;
            s.listed = true;
            s.inode = c.inode;
        }
        if (!s.authenticated && std::binary_search(trusted_.begin(), trusted_.end(), c.remote.ip))
            s.authenticated = true;
        if (s.authenticated) {
            ++out.authenticated;
        } else if (limits_.auth_timeout.count() > 0 && now - s.since >= limits_.auth_timeout) {
            out.timed_out.push_back(c);
            continue;  // forgotten: closed now
        } else {
            waiting.push_back({s.since, &c});
        }
        next.emplace(key, s);
    }
    // Marks for connections the kernel has not listed yet (authenticated
    // between two sweeps, or still in the listen queue) wait up to 5 s.
    for (auto& [key, s] : seen_)
        if (!s.listed && now - s.since < std::chrono::seconds(5)) next.try_emplace(key, s);

    if (limits_.auth_limit > 0 && waiting.size() > limits_.auth_limit) {
        // The oldest keep their place; the newest are the ones beyond the limit.
        // Within one sweep's arrivals, a socket made later has (nearly always) a higher inode.
        std::sort(waiting.begin(), waiting.end(), [](const Waiting& a, const Waiting& b) {
            return a.since != b.since ? a.since < b.since : a.connection->inode < b.connection->inode;
        });
        for (std::size_t i = limits_.auth_limit; i < waiting.size(); ++i) {
            out.over_limit.push_back(*waiting[i].connection);
            next.erase(Key{waiting[i].connection->local_port, waiting[i].connection->remote});
        }
        waiting.resize(limits_.auth_limit);
    }
    out.unauthenticated = waiting.size();
    seen_ = std::move(next);
    closed_total_ += out.timed_out.size() + out.over_limit.size();
    return out;
}

namespace {

// An address of a sock_diag record (idiag_src or idiag_dst).
IpAddress ip_of(int family, const __be32 (&words)[4]) {
    if (family == AF_INET) return IpAddress::v4(ntohl(words[0]));
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), words, bytes.size());
    return IpAddress::v6(bytes);  // a mapped IPv4 address becomes IPv4
}

// One sock_diag dump of the established TCP sockets of `family`.
bool dump(int fd, int family, const std::vector<std::uint16_t>& ports, const std::optional<IpAddress>& local,
          std::vector<StreamConnection>& out, std::string& error) {
    struct {
        nlmsghdr header;
        inet_diag_req_v2 request;
    } query{};
    query.header.nlmsg_len = sizeof query;
    query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    query.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    query.request.sdiag_family = static_cast<std::uint8_t>(family);
    query.request.sdiag_protocol = IPPROTO_TCP;
    query.request.idiag_states = 1U << TCP_ESTABLISHED;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd, &query, sizeof query, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
        error = std::string("sock_diag request: ") + std::strerror(errno);
        return false;
    }
    alignas(nlmsghdr) static thread_local std::array<char, 32768> buffer;
    for (;;) {
        ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            error = std::string("sock_diag answer: ") + std::strerror(errno);
            return false;
        }
        if (n == 0) return true;
        int left = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_DONE) return true;
            if (h->nlmsg_type == NLMSG_ERROR) {
                auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
                // An IPv6-less kernel has nothing to list for AF_INET6.
                if (family == AF_INET6 && (e->error == -ENOENT || e->error == -EAFNOSUPPORT)) return true;
                error = std::string("sock_diag: ") + std::strerror(-e->error);
                return false;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
            auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
            auto port = ntohs(m->id.idiag_sport);
            if (std::find(ports.begin(), ports.end(), port) == ports.end()) continue;
            if (local && ip_of(m->idiag_family, m->id.idiag_src) != *local) continue;
            out.push_back({port, {ip_of(m->idiag_family, m->id.idiag_dst), ntohs(m->id.idiag_dport)}, m->idiag_inode});
        }
    }
}

}  // namespace

std::optional<std::vector<StreamConnection>> established_connections(const std::vector<std::uint16_t>& ports,
                                                                     const std::optional<IpAddress>& local,
                                                                     std::string& error) {
    // A wildcard listener's connections may have any local address.
    auto only = local && local->valid() && !local->is_unspecified() ? local : std::nullopt;
    int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
        error = std::string("sock_diag socket: ") + std::strerror(errno);
        return std::nullopt;
    }
    std::vector<StreamConnection> out;
    bool ok = dump(fd, AF_INET, ports, only, out, error) && dump(fd, AF_INET6, ports, only, out, error);
    ::close(fd);
    if (!ok) return std::nullopt;
    return out;
}

std::size_t shut_down_connections(const std::vector<StreamConnection>& connections, std::string& error) {
    if (connections.empty()) return 0;
    std::unordered_map<std::uint64_t, bool> wanted;
    for (auto& c : connections) wanted.emplace(c.inode, false);
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) {
        error = std::string("cannot list /proc/self/fd: ") + std::strerror(errno);
        return 0;
    }
    std::size_t shut = 0;
    while (auto* ent = ::readdir(dir)) {
        char* end = nullptr;
        long fd = std::strtol(ent->d_name, &end, 10);
        if (end == ent->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
        struct stat st {};
        if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        auto it = wanted.find(static_cast<std::uint64_t>(st.st_ino));
        if (it == wanted.end() || it->second) continue;
        it->second = true;
        if (::shutdown(static_cast<int>(fd), SHUT_RDWR) == 0)
            ++shut;
        else if (errno != ENOTCONN)
            error = std::string("shutdown: ") + std::strerror(errno);
    }
    ::closedir(dir);
    return shut;
}

}  // namespace tandem::sip
