// The core's own CLI commands: help, core ..., logger ..., module ..., channel ..., database ...
#pragma once

#include <tandem/registry.hpp>

#include <vector>

namespace tandem {
class CoreImpl;
void register_builtin_commands(CoreImpl& core, std::vector<Registration>& out);
}  // namespace tandem
