// The core's media commands: core show codecs, core show translation
// [recalc], core show translators.
#pragma once

#include <tandem/registry.hpp>

#include <vector>

namespace tandem {
class CoreImpl;
void register_media_commands(CoreImpl& core, std::vector<Registration>& out);
}  // namespace tandem
