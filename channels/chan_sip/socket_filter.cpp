#include "socket_filter.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tandem::sip {

namespace {

constexpr std::uint32_t accept_all = 0xffffffffu;
constexpr std::uint32_t drop = 0;
constexpr std::size_t instruction_budget = 4000;  // the kernel allows 4096
constexpr std::size_t v4_chunk = 200;             // conditional jumps reach 255 instructions

std::uint32_t net(int offset) {
    return static_cast<std::uint32_t>(SKF_NET_OFF + offset);
}

sock_filter stmt(std::uint16_t code, std::uint32_t k) {
    return sock_filter{code, 0, 0, k};
}

sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
    return sock_filter{code, jt, jf, k};
}

std::uint32_t word(const IpAddress& a, std::size_t i) {
    auto& b = a.bytes();
    return static_cast<std::uint32_t>(b[i]) << 24 | static_cast<std::uint32_t>(b[i + 1]) << 16 |
           static_cast<std::uint32_t>(b[i + 2]) << 8 | b[i + 3];
}

}  // namespace

namespace {

// Offsets in a UDP socket's filter are from the UDP header: the payload
// starts at 8.
constexpr std::uint32_t udp_payload = 8;
constexpr std::uint32_t stun_magic_cookie = 0x2112A442u;

// Falls through to what follows when the datagram is not STUN or is a bare
// Binding request; drops it otherwise.
std::vector<sock_filter> stun_guard() {
    return {
        stmt(BPF_LD | BPF_B | BPF_ABS, udp_payload),               // 0: first byte
        jump(BPF_JMP | BPF_JGT | BPF_K, 1, 7, 0),                  // 1: > 1: not STUN, on to 9
        stmt(BPF_LD | BPF_W | BPF_LEN, 0),                         // 2
        jump(BPF_JMP | BPF_JEQ | BPF_K, udp_payload + 20, 0, 4),   // 3: header only, else drop
        stmt(BPF_LD | BPF_H | BPF_ABS, udp_payload),               // 4: message type
        jump(BPF_JMP | BPF_JEQ | BPF_K, 0x0001, 0, 2),             // 5: Binding request, else drop
        stmt(BPF_LD | BPF_W | BPF_ABS, udp_payload + 4),           // 6
        jump(BPF_JMP | BPF_JEQ | BPF_K, stun_magic_cookie, 1, 0),  // 7: RFC 5389, on to 9
        stmt(BPF_RET | BPF_K, drop),                               // 8
    };
}

}  // namespace

BanFilter build_ban_filter(const std::vector<IpAddress>& banned) {
    BanFilter out;
    out.udp_program = stun_guard();
    std::vector<IpAddress> v4, v6;
    for (auto& a : banned) (a.is_v4() ? v4 : v6).push_back(a);
    if (v4.empty() && v6.empty()) {
        out.udp_program.push_back(stmt(BPF_RET | BPF_K, accept_all));
        return out;
    }

    std::size_t used = 10 + out.udp_program.size();  // dispatch, loads, returns and the STUN guard
    std::size_t n4 = 0, n6 = 0;
    while (n4 < v4.size() && used + 1 + (n4 % v4_chunk == 0 ? 2 : 0) <= instruction_budget) {
        used += 1 + (n4 % v4_chunk == 0 ? 2 : 0);
        ++n4;
    }
    while (n6 < v6.size() && used + 9 <= instruction_budget) {
        used += 9;
        ++n6;
    }

    std::vector<sock_filter> v4_block, v6_block;
    v4_block.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, net(12)));
    for (std::size_t start = 0; start < n4; start += v4_chunk) {
        std::size_t n = std::min(v4_chunk, n4 - start);
        for (std::size_t i = 0; i < n; ++i)
            v4_block.push_back(
                jump(BPF_JMP | BPF_JEQ | BPF_K, v4[start + i].v4_host_order(), static_cast<std::uint8_t>(n - i), 0));
        v4_block.push_back(stmt(BPF_JMP | BPF_JA, 1));
        v4_block.push_back(stmt(BPF_RET | BPF_K, drop));
    }
    v4_block.push_back(stmt(BPF_RET | BPF_K, accept_all));

    for (std::size_t i = 0; i < n6; ++i) {
        auto& a = v6[i];
        v6_block.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, net(8)));
        v6_block.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word(a, 0), 0, 7));
        v6_block.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, net(12)));
        v6_block.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word(a, 4), 0, 5));
        v6_block.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, net(16)));
        v6_block.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word(a, 8), 0, 3));
        v6_block.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, net(20)));
        v6_block.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, word(a, 12), 0, 1));
        v6_block.push_back(stmt(BPF_RET | BPF_K, drop));
    }
    v6_block.push_back(stmt(BPF_RET | BPF_K, accept_all));

    // Dispatch on the IP version of the packet.
    auto& p = out.program;
    p.push_back(stmt(BPF_LD | BPF_B | BPF_ABS, net(0)));
    p.push_back(stmt(BPF_ALU | BPF_RSH | BPF_K, 4));
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 1));
    p.push_back(stmt(BPF_JMP | BPF_JA, 3));  // to the IPv4 block, after the next three
    p.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 1));
    p.push_back(stmt(BPF_JMP | BPF_JA, static_cast<std::uint32_t>(1 + v4_block.size())));
    p.push_back(stmt(BPF_RET | BPF_K, accept_all));
    p.insert(p.end(), v4_block.begin(), v4_block.end());
    p.insert(p.end(), v6_block.begin(), v6_block.end());
    out.addresses = n4 + n6;
    out.udp_program.insert(out.udp_program.end(), p.begin(), p.end());
    return out;
}

namespace {

// Calls `fn(fd)` for every socket of this process bound to local `port`.
template <class Fn>
bool for_each_socket_on_port(std::uint16_t port, std::string& error, Fn fn) {
    DIR* dir = ::opendir("/proc/self/fd");
    if (!dir) {
        error = std::string("cannot list /proc/self/fd: ") + std::strerror(errno);
        return false;
    }
    while (auto* ent = ::readdir(dir)) {
        char* end = nullptr;
        long fd = std::strtol(ent->d_name, &end, 10);
        if (end == ent->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&ss), &len) != 0) continue;
        std::uint16_t local = 0;
        if (ss.ss_family == AF_INET)
            local = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            local = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
        else
            continue;
        if (local == port) fn(static_cast<int>(fd));
    }
    ::closedir(dir);
    return true;
}

}  // namespace

int apply_ban_filter(std::uint16_t port, const BanFilter& filter, std::string& error) {
    int changed = 0;
    for_each_socket_on_port(port, error, [&](int fd) {
        int type = 0;
        socklen_t len = sizeof type;
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return;
        auto& code = type == SOCK_DGRAM && !filter.udp_program.empty() ? filter.udp_program : filter.program;
        sock_fprog prog{static_cast<unsigned short>(code.size()), const_cast<sock_filter*>(code.data())};
        int rc;
        if (code.empty()) {
            int unused = 0;
            rc = ::setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused);
            if (rc != 0 && errno == ENOENT) return;  // none attached
        } else {
            rc = ::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
        }
        if (rc == 0)
            ++changed;
        else
            error = std::string("socket filter: ") + std::strerror(errno);
    });
    return changed;
}

int set_receive_buffer(const std::vector<int>& fds, std::uint32_t bytes, std::string& error) {
    int changed = 0;
    int value = static_cast<int>(bytes);
    for (int fd : fds) {
        // SO_RCVBUFFORCE passes rmem_max with CAP_NET_ADMIN; SO_RCVBUF is capped by it.
        if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &value, sizeof value) == 0 ||
            ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof value) == 0)
            ++changed;
        else
            error = std::string("receive buffer: ") + std::strerror(errno);
    }
    return changed;
}

std::vector<int> datagram_sockets_on_port(std::uint16_t port, std::string& error) {
    std::vector<int> fds;
    for_each_socket_on_port(port, error, [&](int fd) {
        int type = 0;
        socklen_t len = sizeof type;
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM) fds.push_back(fd);
    });
    return fds;
}

ReceiveQueue receive_queue(int fd) {
    std::uint32_t info[SK_MEMINFO_VARS] = {};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &len) != 0 || len < sizeof(std::uint32_t) * 2) return {};
    return {info[SK_MEMINFO_RMEM_ALLOC], info[SK_MEMINFO_RCVBUF]};
}

}  // namespace tandem::sip
