// chan_sip's console commands: sip show endpoints|endpoint|registrations|bans,
// sip unban, sip qualify, sip set debug.
//
// Threading: handlers run on the console's loop and read the service's locked
// tables; `sip qualify` awaits a timer while the Sofia thread probes.
#pragma once

#include "service.hpp"

#include <tandem/host.hpp>

#include <memory>
#include <vector>

namespace tandem::sip {

std::vector<Registration> register_cli(Host& host, std::shared_ptr<SipService> service);

}  // namespace tandem::sip
