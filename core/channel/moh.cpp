// The core's side of music on hold: finding the provider a module registered.
#include <tandem/core.hpp>
#include <tandem/moh.hpp>

namespace tandem {

bool start_music_on_hold(Channel& chan, std::string_view music_class) {
    auto provider = chan.core().music_on_hold().find(moh_provider);
    return provider && provider->start && provider->start(chan, music_class);
}

void stop_music_on_hold(Channel& chan) {
    auto provider = chan.core().music_on_hold().find(moh_provider);
    if (provider && provider->stop) provider->stop(chan);
}

}  // namespace tandem
