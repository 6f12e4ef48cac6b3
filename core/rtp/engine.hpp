// The core's RtpEngine: rtp.conf, the port range, the per-loop scratch
// buffers, the list of live sessions and the `rtp` CLI commands.
#pragma once

#include "rtp/session.hpp"

#include <tandem/cli.hpp>
#include <tandem/log.hpp>
#include <tandem/registry.hpp>
#include <tandem/rtp.hpp>

#include <filesystem>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tandem::rtp {

struct SessionList {
    explicit SessionList(Log l) : log(std::move(l)) {}
    const Log log;  // the sessions' (one copy, not one per session)
    std::mutex mu;
    std::unordered_map<const SessionImpl*, std::weak_ptr<SessionImpl>> sessions;
    // RTP ports (even; RTCP is the next one) our live sessions hold, indexed
    // by port / 2: the allocator skips them without a system call.
    std::vector<bool> ports_in_use = std::vector<bool>(32768, false);
    // Each loop's buffers and MediaPoller, shared by its sessions.
    std::mutex scratch_mu;
    std::map<const boost::asio::io_context*, std::weak_ptr<LoopScratch>> scratch;
};
// Removes a closing session and frees its port pair (`rtp_port`, 0: none).
void forget_session(SessionList& list, const SessionImpl* s, std::uint16_t rtp_port);
// The scratch buffers and MediaPoller of `loop`, made at first use.
std::shared_ptr<LoopScratch> scratch_for(SessionList& list, boost::asio::io_context& loop);

class EngineImpl final : public RtpEngine {
public:
    explicit EngineImpl(LogSink& sink);
    ~EngineImpl() override;

    // Reads rtp.conf (a missing file means defaults). Problems are
    // "file:line: message"; with `apply` the settings take effect for new
    // sessions (a reload keeps running sessions as they are).
    bool load(const std::filesystem::path& file, std::vector<std::string>& problems, bool apply = true);
    void apply(const RtpSettings& s);
    // rtp show settings, rtp show sessions.
    void register_commands(Registry<CliCommand>& registry, ModuleUse* owner, std::vector<Registration>& out);

    std::shared_ptr<RtpSession> create(boost::asio::io_context& loop, const RtpSessionOptions& options,
                                       std::string& error) override;
    RtpSettings settings() const override;
    std::size_t session_count() const override;
    std::vector<std::shared_ptr<SessionImpl>> sessions() const;

private:
    Log log_;
    mutable std::mutex mu_;
    RtpSettings settings_;
    std::uint32_t next_port_ = 0;
    std::shared_ptr<SessionList> list_ = std::make_shared<SessionList>(log_);
};

}  // namespace tandem::rtp
