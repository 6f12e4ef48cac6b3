// app_tones: Playtones(), StopPlaytones() and Milliwatt(), with the national
// call-progress tones of indications.conf.
//
// Playtones starts a tone generator and returns at once, as in Asterisk: the
// generator is a coroutine of its own on the channel's loop that writes one
// 20 ms frame per tick (scheduled from its start time) until StopPlaytones(),
// a new Playtones(), the end of a tone list that does not repeat, or hangup.
// It keeps a lease on this module so the module cannot unload under it.
// Prompts played meanwhile would mix with the tone: stop it first.
//
// Milliwatt() is the test tone: 1004 Hz at 0 dBm0 until hangup.
#include "tones.hpp"

#include <tandem/core.hpp>
#include <tandem/module.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <map>
#include <mutex>

namespace {

using namespace tandem;
using namespace std::chrono_literals;

// Peak of a 0 dBm0 sine in 16-bit linear (G.711's digital milliwatt, -3.14 dBov).
constexpr double dbm0_peak = 22767;
// Call-progress tones: about -10 dBm0 in total.
constexpr double tone_peak = 7200;

const char* const tone_names[] = {"dial", "ring", "busy", "congestion", "callwaiting"};

struct Zone {
    std::string description;
    std::map<std::string, std::string> tones;
};

struct Indications {
    std::string country = "us";
    std::map<std::string, Zone> zones;
};

class TonesModule;

// One running generator; the flag is only touched on the channel's loop.
struct Running {
    bool stop = false;
};

class TonesModule final : public Module {
public:
    void load(Host& host) override {
        host_ = &host;
        load_indications(host);
        regs_.push_back(host.add(
            "Playtones", Application{"Play a tone list or a named call-progress tone", "Playtones(arg)",
                                     "Starts playing in the background and continues at once. `arg` is a tone name\n"
                                     "of the country set in indications.conf (dial, ring, busy, congestion,\n"
                                     "callwaiting) or a tone list: 350+440, 480+620/500,0/500, !950/330,... Stop it\n"
                                     "with StopPlaytones().",
                                     1, -1, [this](Channel& c, const AppArgs& a) { return playtones(c, a); }}));
        regs_.push_back(
            host.add("StopPlaytones", Application{"Stop the tone started by Playtones", "StopPlaytones()",
                                                  "Stops the channel's Playtones() generator, if any.", 0, 0,
                                                  [this](Channel& c, const AppArgs&) { return stop_playtones(c); }}));
        regs_.push_back(
            host.add("Milliwatt", Application{"Play the 1004 Hz test tone", "Milliwatt([options])",
                                              "Answers and plays 1004 Hz at 0 dBm0 until the caller hangs up.", 0, 1,
                                              [](Channel& c, const AppArgs&) { return milliwatt(c); }}));
    }
    void reload(Host& host) override { load_indications(host); }

    // The tone list for a name in the configured country, or the argument itself.
    std::optional<std::vector<tones::Part>> resolve(std::string_view arg) {
        std::string text(arg);
        {
            std::lock_guard lock(mu_);
            auto z = ind_.zones.find(ind_.country);
            if (z != ind_.zones.end()) {
                auto t = z->second.tones.find(text);
                if (t != z->second.tones.end()) text = t->second;
            }
        }
        return tones::parse(text);
    }

private:
    void load_indications(Host& host) {
        auto parsed = host.read_config("indications.conf");
        for (auto& e : parsed.errors) host.config_error(e);
        Indications ind;
        for (auto& s : parsed.file.sections) {
            if (s.is_template || s.name.empty()) continue;
            if (s.name == "general") {
                ind.country = s.get("country", "us");
                continue;
            }
            Zone z;
            z.description = s.get("description");
            for (auto& v : s.variables) {
                if (v.name == "description") continue;
                if (!tones::parse(v.value))
                    host.config_error({v.where, "'" + v.value + "' is not a tone list"});
                else
                    z.tones[v.name] = v.value;
            }
            ind.zones[s.name] = std::move(z);
        }
        if (!ind.zones.empty() && !ind.zones.count(ind.country))
            host.config_error({{parsed.file.path, 0}, "country '" + ind.country + "' has no section"});
        // Built-in North American tones when nothing is configured.
        if (!ind.zones.count(ind.country)) {
            Zone us;
            us.tones = {{"dial", "350+440"},
                        {"ring", "440+480/2000,0/4000"},
                        {"busy", "480+620/500,0/500"},
                        {"congestion", "480+620/250,0/250"},
                        {"callwaiting", "440/300,0/10000"}};
            ind.zones[ind.country] = std::move(us);
        }
        for (auto* n : tone_names)
            if (!ind.zones[ind.country].tones.count(n))
                host.log().warning("indications.conf: [{}] has no '{}' tone", ind.country, n);
        std::lock_guard lock(mu_);
        ind_ = std::move(ind);
    }

    awaitable<AppResult> playtones(Channel& chan, const AppArgs& args) {
        auto parts = resolve(args.raw);
        if (!parts) {
            host_->log().warning("{}: Playtones: '{}' is neither a tone name nor a tone list", chan.name(), args.raw);
            co_return AppResult::next;
        }
        stop_running(chan);
        auto running = std::make_shared<Running>();
        {
            std::lock_guard lock(mu_);
            running_[chan.uniqueid()] = running;
        }
        // Pins this module while the generator runs.
        auto lease = chan.core().applications().find("Playtones");
        boost::asio::co_spawn(
            chan.executor(),
            generate(chan.shared_from_this(), std::move(*parts), tone_peak, running, std::move(lease), this),
            boost::asio::detached);
        co_return AppResult::next;
    }

    awaitable<AppResult> stop_playtones(Channel& chan) {
        stop_running(chan);
        co_return AppResult::next;
    }

    void stop_running(Channel& chan) {
        std::lock_guard lock(mu_);
        auto it = running_.find(chan.uniqueid());
        if (it == running_.end()) return;
        it->second->stop = true;
        running_.erase(it);
    }

    void forget(const std::string& id, const std::shared_ptr<Running>& r) {
        std::lock_guard lock(mu_);
        auto it = running_.find(id);
        if (it != running_.end() && it->second == r) running_.erase(it);
    }

    static awaitable<void> generate(std::shared_ptr<Channel> chan, std::vector<tones::Part> parts, double peak,
                                    std::shared_ptr<Running> running, Lease<Application> lease, TonesModule* self) {
        tones::Generator gen(std::move(parts), peak);
        boost::asio::steady_timer timer(chan->loop());
        auto start = std::chrono::steady_clock::now();
        std::int64_t sent = 0;
        Frame f;
        try {
            while (!running->stop && !chan->hungup() && gen.next(f)) {
                chan->write(f);
                timer.expires_at(start + ++sent * 20ms);
                co_await timer.async_wait(boost::asio::use_awaitable);
            }
        } catch (...) {
            // Loop shutting down: nothing to clean up beyond what unwinds.
        }
        self->forget(chan->uniqueid(), running);
        (void)lease;
    }

    static awaitable<AppResult> milliwatt(Channel& chan) {
        if (!co_await chan.answer()) co_return AppResult::hangup;
        tones::Generator gen({tones::Part{1004, 0, false, 0, false}}, dbm0_peak);
        auto saved = chan.write_format();
        chan.set_write_format(Format::slin8);
        boost::asio::steady_timer timer(chan.loop());
        auto start = std::chrono::steady_clock::now();
        std::int64_t sent = 0;
        Frame f;
        while (!chan.hungup() && gen.next(f)) {
            chan.write(f);
            timer.expires_at(start + ++sent * 20ms);
            co_await timer.async_wait(boost::asio::use_awaitable);  // a hangup unwinds here
        }
        if (!chan.hungup()) chan.set_write_format(saved);
        co_return AppResult::hangup;
    }

    Host* host_ = nullptr;
    std::mutex mu_;  // ind_ and running_: applications run on every loop
    Indications ind_;
    std::map<std::string, std::shared_ptr<Running>> running_;
    std::vector<Registration> regs_;
};

}  // namespace

TANDEM_MODULE(TonesModule)
