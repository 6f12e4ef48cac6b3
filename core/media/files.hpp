// The core's side of media files: picking the variant of a prompt that is
// cheapest to play, creating writers by extension, and `core show file
// formats`.
//
// Readers and writers handed out here wrap the format module's own objects
// together with a lease on that module, so `module unload format_sndfile` is
// refused while a prompt plays or a recording runs.
//
// Threading: open_sound() and create_media() do blocking file I/O (directory
// probes, header reads); call them on the worker pool. They are safe from any
// thread.
#pragma once

#include <tandem/file.hpp>
#include <tandem/registry.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

class CoreImpl;

std::unique_ptr<MediaReader> open_sound(CoreImpl& core, std::string_view name, std::string_view language,
                                        Format preferred, std::string& error);
std::unique_ptr<MediaWriter> create_media(CoreImpl& core, const std::filesystem::path& path, Format format,
                                          std::string& error);
void register_file_commands(CoreImpl& core, std::vector<Registration>& out);

}  // namespace tandem
