// The core's own translators: signed-linear resampling between 8, 16 and
// 48 kHz (slin8 <-> slin16, slin8 <-> slin48, slin16 <-> slin48) with
// SpeexDSP. Codec modules only convert to and from the slin rate they work
// at; these steps let the translator graph join any two of them.
#pragma once

#include <tandem/media.hpp>
#include <tandem/registry.hpp>

#include <vector>

namespace tandem {

class CoreImpl;

// SpeexDSP quality 0..10; 4 is SpeexDSP's default: clean enough for wideband
// voice (see the round-trip test) at a few microseconds per 20 ms frame.
inline constexpr int resampler_quality = 4;

// A resampler between two slin formats; nullptr when either is not slin.
std::unique_ptr<Translator> make_resampler(Format from, Format to);

// Registers the six resampling steps, owned by the core (core_use()).
void register_resamplers(CoreImpl& core, std::vector<Registration>& out);

}  // namespace tandem
