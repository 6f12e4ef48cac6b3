// A deterministic speech-like signal for the media benchmark.
//
// Codec cost depends on what is coded: Opus, Speex, G.729 and GSM do much
// less work on silence or a pure tone than on speech, so timing them on
// either would flatter them. This signal has what those codecs react to:
// a voiced source with a gliding pitch, formants moving from vowel to vowel,
// syllables at about 4.5 per second, unvoiced (fricative) onsets, short
// pauses between phrases with a faint background noise, and an active-speech
// level of about -20 dBFS.
//
// Threading: plain functions, no state.
#pragma once

#include <cstdint>
#include <vector>

namespace tandem::bench {

// `seconds` of the signal at `rate` Hz (8000, 16000 or 48000). The same
// parameters drive every rate, so the 8, 16 and 48 kHz versions say the same
// "words"; formants above 45 % of the rate are left out.
std::vector<std::int16_t> speech_signal(std::uint32_t rate, double seconds);

}  // namespace tandem::bench
