// app_say: SayDigits(), SayAlpha(), SayNumber(), SayUnixTime().
//
// The words come from say.hpp (one list of prompt names per language); each
// prompt is played in the channel's language (CHANNEL(language)) with the
// usual fallback to English per prompt, so a language with a missing
// building block still speaks.
#include "say.hpp"

#include <tandem/core.hpp>
#include <tandem/file.hpp>
#include <tandem/module.hpp>

#include <charconv>
#include <ctime>

namespace {

using namespace tandem;

std::string_view trim(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
    return s;
}

// Plays the prompts in order; a missing one is logged (by play_sound) and skipped.
awaitable<AppResult> say_files(Channel& chan, const say::Files& files) {
    for (auto& f : files) {
        auto r = co_await play_sound(chan, f);
        if (r.status == PlaybackResult::Status::hungup || chan.hungup()) co_return AppResult::hangup;
    }
    co_return AppResult::next;
}

awaitable<AppResult> say_digits(Channel& chan, const AppArgs& args) {
    co_return co_await say_files(chan, say::characters(args.raw, false));
}

awaitable<AppResult> say_alpha(Channel& chan, const AppArgs& args) {
    co_return co_await say_files(chan, say::characters(args.raw, true));
}

awaitable<AppResult> say_number(Channel& chan, const AppArgs& args) {
    auto text = trim(args[0]);
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || p != text.data() + text.size()) {
        chan.core().log().warning("{}: SayNumber: '{}' is not a whole number", chan.name(), text);
        co_return AppResult::next;
    }
    co_return co_await say_files(chan, say::number(n, chan.language(), trim(args[1])));
}

awaitable<AppResult> say_unixtime(Channel& chan, const AppArgs& args) {
    auto text = trim(args[0]);
    std::int64_t when = std::time(nullptr);
    if (!text.empty()) {
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), when);
        if (ec != std::errc()) {
            chan.core().log().warning("{}: SayUnixTime: '{}' is not a time", chan.name(), text);
            co_return AppResult::next;
        }
    }
    auto zone = trim(args[1]);
    std::tm t{};
    auto tt = static_cast<std::time_t>(when);
    if (zone == "UTC" || zone == "GMT" || zone == "Etc/UTC") {
        gmtime_r(&tt, &t);
    } else {
        if (!zone.empty())
            chan.core().log().notice("{}: SayUnixTime: time zone '{}' not supported; using local time", chan.name(),
                                     zone);
        localtime_r(&tt, &t);
    }
    auto format = trim(args[2]);
    if (format.empty()) format = say::default_format(chan.language());
    co_return co_await say_files(chan, say::datetime(t, format, chan.language()));
}

class SayModule final : public Module {
public:
    void load(Host& host) override {
        regs_.push_back(host.add(
            "SayDigits", Application{"Say digits one by one", "SayDigits(digits)",
                                     "Says each digit (and * # -) in the channel's language.", 0, -1, say_digits}));
        regs_.push_back(host.add(
            "SayAlpha", Application{"Spell a string", "SayAlpha(string)",
                                    "Says each letter, digit and @ . / + - of the string.", 0, -1, say_alpha}));
        regs_.push_back(
            host.add("SayNumber",
                     Application{"Say a number", "SayNumber(number[,gender])",
                                 "Says a whole number in the channel's language (en, fr, it, es; others: English).\n"
                                 "gender: f for the feminine 'one' (fr une, it una, es una), m for es 'un'.",
                                 1, 2, say_number}));
        regs_.push_back(host.add(
            "SayUnixTime", Application{"Say a date and time", "SayUnixTime([unixtime[,timezone[,format]]])",
                                       "Says the time (default: now) with an Asterisk-style format: A weekday,\n"
                                       "B month, d day of month, Y year, H 24-hour, I 12-hour, M minute, S second,\n"
                                       "p AM/PM, 'name' a prompt. timezone: empty (local) or UTC. The default format\n"
                                       "depends on the language (en: \"ABdY 'digits/at' IMp\").",
                                       0, 3, say_unixtime}));
    }

private:
    std::vector<Registration> regs_;
};

}  // namespace

TANDEM_MODULE(SayModule)
