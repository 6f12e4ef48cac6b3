// chan_sip: the SIP channel driver, on Sofia-SIP.
//
// This module reads sip.conf (Asterisk's chan_sip dialect), runs the Sofia
// stack on its own thread, and serves as the registrar: digest
// authentication, multi-presence, persistence across restarts, NAT-aware
// contacts, qualify, and an auto-ban of addresses that keep failing. It
// registers the "SIP" channel technology: calls are INVITE dialogs bound to
// Tandem channels, on the same thread and marshalling (call.hpp,
// service.hpp, sofia_agent.hpp).
//
// Under `tandem -t` it validates sip.conf and registers its commands and
// technology, but opens no socket and starts no thread.
#include "cli.hpp"
#include "service.hpp"
#include "settings.hpp"
#include "sofia_agent.hpp"

#include <tandem/core.hpp>
#include <tandem/module.hpp>
#include <tandem/version.hpp>

#include <fmt/format.h>

#include <stdexcept>

namespace {

using namespace tandem;
using namespace tandem::sip;

constexpr std::string_view config_file = "sip.conf";

std::string default_useragent() {
    return std::string("Tandem/") + TANDEM_VERSION;
}

class SipModule final : public Module {
public:
    void load(Host& host) override {
        if (auto why = pin_sofia_library(); !why.empty()) host.log().warning("{}", why);
        auto config = read(host);
        if (config.missing && !host.checking())
            throw ModuleDeclined(fmt::format("no {} in the configuration directory", config_file));
        for (auto& d : config.parsed.errors) host.config_error(d);
        service_ = std::make_shared<SipService>(host.core(), host.log());
        service_->set_settings(config.parsed.settings);
        commands_ = register_cli(host, service_);
        tech_ = host.add(
            "SIP", ChannelTechnology{"SIP channels: SIP/endpoint, SIP/peer/number, SIP/number@host[:port]",
                                     [weak = std::weak_ptr<SipService>(service_)](
                                         Core&, const ChannelRequest& req, int& cause) -> std::shared_ptr<Channel> {
                                         auto svc = weak.lock();
                                         if (!svc) {
                                             cause = cause::requested_chan_unavail;
                                             return nullptr;
                                         }
                                         return svc->calls().request(req, cause);
                                     }});
        if (host.checking()) return;
        service_->start();
    }

    void reload(Host& host) override {
        auto config = read(host);
        auto problems = config.parsed.errors.size() + config.parse_errors;
        if (problems) {
            for (auto& d : config.parsed.errors) host.config_error(d);
            throw std::runtime_error(fmt::format("{} has {} problem{}; keeping the running settings", config_file,
                                                 problems, problems == 1 ? "" : "s"));
        }
        if (config.missing)
            throw std::runtime_error(fmt::format("{} is missing; keeping the running settings", config_file));
        for (auto& note : service_->set_settings(config.parsed.settings)) host.log().warning("{}", note);
        host.log().info("{} reloaded: {} endpoints", config_file, config.parsed.settings->endpoints.size());
    }

    ~SipModule() override {
        tech_.reset();
        commands_.clear();
        if (service_) service_->stop();
    }

private:
    struct Config {
        ParsedSettings parsed;     // binding problems, not yet reported
        std::size_t parse_errors;  // syntax problems, already reported by read_config
        bool missing;
    };
    static Config read(Host& host) {
        auto file = host.read_config(config_file);
        return {parse_settings(file.file, default_useragent()), file.errors.size(), file.file.files_read.empty()};
    }

    std::shared_ptr<SipService> service_;
    std::vector<Registration> commands_;
    Registration tech_;
};

}  // namespace

TANDEM_MODULE(SipModule)
