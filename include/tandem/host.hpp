// Host: everything a module may touch, handed to Module::load().
//
// A Host is made for one module: what the module adds through it is owned by
// that module (named in `module show`, pinned by leases, removed when the
// module's Registration handles are dropped). A module includes only
// `include/tandem/` headers and reaches the rest of the PBX through here.
#pragma once

#include <tandem/config.hpp>
#include <tandem/core.hpp>
#include <tandem/moh.hpp>

#include <string>
#include <string_view>

namespace tandem {

class Host {
public:
    virtual ~Host() = default;

    virtual const std::string& module_name() const = 0;
    virtual Core& core() = 0;
    virtual Log& log() = 0;
    // True under `tandem -t`: register everything, validate config, but open
    // no sockets, files or threads.
    virtual bool checking() const = 0;

    // Reads `<config dir>/<file>`; a missing file yields an empty File and no error.
    virtual config::ParseResult read_config(std::string_view file) = 0;
    // Reports a configuration problem (counted by `tandem -t`, logged otherwise).
    virtual void config_error(const config::Diagnostic& d) = 0;

    virtual Registration add(std::string name, Application app) = 0;
    virtual Registration add(std::string name, Function fn) = 0;
    virtual Registration add(CliCommand cmd) = 0;
    virtual Registration add(std::string name, ChannelTechnology tech) = 0;
    virtual Registration add(std::string name, CdrBackend backend) = 0;
    // Registered as "<from>-><to>" (translator_name()).
    virtual Registration add(TranslatorInfo translator) = 0;
    // A file format ("wav", "ulaw"), found by its extensions.
    virtual Registration add(std::string name, FileFormat format) = 0;
    // The music on hold provider, registered as `moh_provider` (tandem/moh.hpp).
    virtual Registration add(std::string name, MusicOnHold provider) = 0;
    virtual Registration subscribe(EventHandler handler) = 0;
};

}  // namespace tandem
