// Music on hold: the service that plays music to a channel while it waits.
//
// One module (res_musiconhold) provides the music: it registers a
// MusicOnHold entry in Core::music_on_hold() under the name
// `moh_provider`. Everything else asks for music through the free functions
// below, never through the module: the core when a bridged party puts this
// channel's peer on hold (Channel::indicate(Indication::hold)), and later
// queues, parking and conferences while a caller waits. With no provider
// loaded they do nothing and a held caller simply hears silence.
//
// While music plays the channel's outgoing voice belongs to the player: the
// channel drops voice frames anyone else writes (a bridge forwarding the
// other party, a Dial's early media) instead of interleaving them with the
// music, and it counts as audio-tapped so a bridge stops relaying RTP around
// the core (see Channel::set_music_playing()).
//
// Threading: start/stop/active are called on the channel's loop, like every
// other channel action. The player paces its frames on that loop (one 20 ms
// frame per tick of a timer set from its start time) and reads files on the
// worker pool, so nothing here blocks.
#pragma once

#include <tandem/channel.hpp>

#include <functional>
#include <string>
#include <string_view>

namespace tandem {

// The registry entry of the music on hold provider.
struct MusicOnHold {
    std::string description;
    // Starts music on the channel, or switches class when music already
    // plays. The class is chosen as Asterisk chooses: the channel's own
    // (Channel::music_class(), CHANNEL(musicclass)) when it exists, then
    // `music_class`, then "default". False when none of them exists; a class
    // whose files are missing plays silence rather than failing.
    std::function<bool(Channel&, std::string_view music_class)> start;
    // Stops the channel's music, if any; the channel's audio is its own again.
    std::function<void(Channel&)> stop;
};

// The name the provider registers under: there is one provider at a time.
inline constexpr std::string_view moh_provider = "moh";

// Starts music through the registered provider; false when there is none or
// it refused. On the channel's loop.
bool start_music_on_hold(Channel& chan, std::string_view music_class = {});
// Stops the channel's music; nothing when none plays. On the channel's loop.
void stop_music_on_hold(Channel& chan);
// True while music plays to the channel.
inline bool music_on_hold_active(const Channel& chan) {
    return chan.music_playing();
}

}  // namespace tandem
