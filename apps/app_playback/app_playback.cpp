// app_playback: Playback(), Background() and WaitExten() — prompts, and the
// digits a caller dials over them.
//
// Playback plays and waits; Background plays while listening, and a digit
// stops it and starts an extension match; WaitExten only listens. Digits
// collected by the last two are matched against the dialplan as Asterisk
// does: as soon as the digits form an extension of the context the call jumps
// there unless a longer extension could still match (`1` beside `100`), in
// which case one more digit is awaited for the inter-digit timeout (5 s, or
// TIMEOUT(digit)); digits that no extension starts with go to `i` at once
// (with ${INVALID_EXTEN}); no digit at all in WaitExten goes to `t`.
// TIMEOUT(digit) and TIMEOUT(response) are registered here.
//
// Everything runs on the channel's loop; files are opened and read on the
// worker pool by play_sound().
#include "split_list.hpp"

#include <tandem/core.hpp>
#include <tandem/file.hpp>
#include <tandem/module.hpp>

#include <fmt/format.h>

#include <charconv>
#include <string>
#include <vector>

namespace {

using namespace tandem;
using apps::split_list;
using namespace std::chrono_literals;

constexpr auto digit_timeout = 5s;
constexpr auto default_response_timeout = 10s;

// Playback's options are words ("skip", "noanswer&skip" in older dialplans).
bool has_word(std::string_view options, std::string_view word) {
    for (auto& o : split_list(options, '&'))
        if (o == word) return true;
    return false;
}

// Background's options are letters ("sn").
bool has_flag(std::string_view options, char flag) {
    return options.find(flag) != std::string_view::npos;
}

std::chrono::milliseconds seconds_arg(std::string_view s, std::chrono::milliseconds fallback) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || v <= 0) return fallback;
    return std::chrono::milliseconds(static_cast<long long>(v * 1000));
}

// The next DTMF digit, or 0 on timeout or hangup.
awaitable<char> next_digit(Channel& chan, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!chan.hungup()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        auto f = co_await chan.read_frame(left);
        if (!f) break;
        if (f->kind == FrameKind::dtmf_end) co_return static_cast<char>(f->subclass);
    }
    co_return 0;
}

// TIMEOUT(digit) and TIMEOUT(response) live in these channel variables.
constexpr std::string_view digit_timeout_var = "TANDEM_TIMEOUT_DIGIT";
constexpr std::string_view response_timeout_var = "TANDEM_TIMEOUT_RESPONSE";

std::chrono::milliseconds channel_timeout(const Channel& chan, std::string_view var,
                                          std::chrono::milliseconds fallback) {
    auto v = chan.variable(var);
    return v ? seconds_arg(*v, fallback) : fallback;
}

// Collects digits after `digits` (may be empty) and jumps where they lead, as
// Asterisk's pbx loop does: after each digit, an extension that exists and
// that no longer number could pass wins at once; digits that no extension
// starts with go to 'i' at once; an existing extension that a longer one
// could still pass waits the inter-digit timeout for another digit.
awaitable<void> match_digits(Channel& chan, std::string context, std::string digits,
                             std::chrono::milliseconds first_timeout) {
    auto& core = chan.core();
    auto cid = chan.caller().number;
    auto exists = [&](const std::string& e) { return core.dialplan_exists(context, e, 1, cid); };
    if (digits.empty()) {
        char d = co_await next_digit(chan, first_timeout);
        if (chan.hungup()) co_return;
        if (!d) {
            if (exists("t")) chan.jump_to(context, "t", 1);
            co_return;
        }
        digits += d;
    }
    const auto between = channel_timeout(chan, digit_timeout_var, digit_timeout);
    for (;;) {
        const bool exact = exists(digits);
        const bool more = core.dialplan_match_more(context, digits, cid);
        if (exact && !more) {
            chan.jump_to(context, digits, 1);
            co_return;
        }
        if (!exact && !more) break;  // no extension starts with these digits
        char d = co_await next_digit(chan, between);
        if (chan.hungup()) co_return;
        if (!d) {
            if (exact) {
                chan.jump_to(context, digits, 1);
                co_return;
            }
            break;
        }
        digits += d;
    }
    chan.set_variable("INVALID_EXTEN", digits);
    if (exists("i")) {
        chan.jump_to(context, "i", 1);
    } else {
        core.log().notice("{}: '{}' matches nothing in [{}] and there is no 'i' extension", chan.name(), digits,
                          context);
    }
}

awaitable<AppResult> playback(Channel& chan, const AppArgs& args) {
    auto files = split_list(args[0], '&');
    auto options = args[1];
    bool answered = chan.state() == ChannelState::up;
    if (!answered && has_word(options, "skip")) {
        chan.set_variable("PLAYBACKSTATUS", "SUCCESS");
        co_return AppResult::next;
    }
    if (!answered && !has_word(options, "noanswer")) {
        if (!co_await chan.answer()) co_return AppResult::hangup;
    }
    std::string status = "SUCCESS";
    for (auto& f : files) {
        auto r = co_await play_sound(chan, f);
        if (r.status == PlaybackResult::Status::hungup) co_return AppResult::hangup;
        if (!r.ok()) {
            status = "FAILED";
            break;
        }
    }
    if (files.empty()) status = "FAILED";
    chan.set_variable("PLAYBACKSTATUS", status);
    co_return AppResult::next;
}

awaitable<AppResult> background(Channel& chan, const AppArgs& args) {
    auto files = split_list(args[0], '&');
    auto options = args[1];
    std::string context = args[3].empty() ? chan.context() : args[3];
    bool answered = chan.state() == ChannelState::up;
    if (!answered && has_flag(options, 's')) co_return AppResult::next;
    if (!answered && !has_flag(options, 'n')) {
        if (!co_await chan.answer()) co_return AppResult::hangup;
    }
    std::string saved_language = chan.language();
    if (!args[2].empty()) chan.language() = args[2];
    char digit = 0;
    bool failed = false;
    for (auto& f : files) {
        auto r = co_await play_sound(chan, f, any_dtmf);
        if (r.status == PlaybackResult::Status::hungup) co_return AppResult::hangup;
        if (r.status == PlaybackResult::Status::interrupted) {
            digit = r.digit;
            break;
        }
        if (!r.ok()) failed = true;
    }
    chan.language() = saved_language;
    chan.set_variable("BACKGROUNDSTATUS", failed ? "FAILED" : "SUCCESS");
    if (digit) co_await match_digits(chan, context, std::string(1, digit), 0ms);
    co_return chan.hungup() ? AppResult::hangup : AppResult::next;
}

awaitable<AppResult> wait_exten(Channel& chan, const AppArgs& args) {
    auto timeout = seconds_arg(args[0], channel_timeout(chan, response_timeout_var, default_response_timeout));
    co_await match_digits(chan, chan.context(), {}, timeout);
    co_return chan.hungup() ? AppResult::hangup : AppResult::next;
}

class PlaybackModule final : public Module {
public:
    void load(Host& host) override {
        regs_.push_back(host.add(
            "Playback", Application{"Play one or more files", "Playback(filename[&filename2...][,options])",
                                    "Plays each file (name without extension, looked up in the channel's language,\n"
                                    "then English) and continues. Answers the channel first unless asked not to.\n"
                                    "Options: skip — do nothing if the channel is not answered; noanswer — play\n"
                                    "without answering (early media).\n"
                                    "Sets PLAYBACKSTATUS to SUCCESS, or FAILED when a file is missing or unreadable.",
                                    1, 2, playback}));
        regs_.push_back(host.add(
            "Background", Application{"Play files while listening for digits",
                                      "Background(filename[&filename2...][,options[,langoverride[,context]]])",
                                      "Plays the files; a DTMF digit stops them and the digits dialled are matched\n"
                                      "against the extensions of the context (default: the current one): a match\n"
                                      "jumps there, a string that matches nothing goes to 'i'. When the files end\n"
                                      "without a digit the dialplan continues (usually with WaitExten).\n"
                                      "Options: s — skip if not answered; n — do not answer.\n"
                                      "langoverride plays in that language instead of CHANNEL(language).\n"
                                      "Sets BACKGROUNDSTATUS to SUCCESS or FAILED.",
                                      1, 4, background}));
        regs_.push_back(host.add(
            "WaitExten", Application{"Wait for the caller to dial an extension", "WaitExten([seconds])",
                                     "Waits for digits (default 10 s for the first, 5 s between digits) and jumps\n"
                                     "to the extension they form. No digit: 't' if it exists, else the next priority.\n"
                                     "Digits that match nothing: 'i' (with ${INVALID_EXTEN}) if it exists.",
                                     0, 2, wait_exten}));
        regs_.push_back(host.add(
            "TIMEOUT",
            Function{"Digit timeouts of the channel", "TIMEOUT(digit|response)",
                     "digit: seconds between digits when Background or WaitExten collects an extension\n"
                     "(default 5); response: WaitExten's wait for the first digit when it is given no\n"
                     "argument (default 10). Readable and writable; fractions allowed.",
                     [](Channel* chan, std::string_view args, std::string& error) -> std::optional<std::string> {
                         auto var = timeout_var(args);
                         if (!var) {
                             error = "TIMEOUT: expected digit or response";
                             return std::nullopt;
                         }
                         auto fallback = *var == digit_timeout_var ? digit_timeout : default_response_timeout;
                         auto ms = chan ? channel_timeout(*chan, *var, fallback) : std::chrono::milliseconds(fallback);
                         return fmt::format("{}", static_cast<double>(ms.count()) / 1000.0);
                     },
                     [](Channel* chan, std::string_view args, std::string_view value, std::string& error) {
                         auto var = timeout_var(args);
                         if (!var || !chan) {
                             error = "TIMEOUT: expected digit or response, on a channel";
                             return false;
                         }
                         double v = 0;
                         auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
                         if (ec != std::errc() || v <= 0) {
                             error = "TIMEOUT: the value must be a positive number of seconds";
                             return false;
                         }
                         chan->set_variable(*var, std::string(value));
                         return true;
                     }}));
    }

private:
    static std::optional<std::string_view> timeout_var(std::string_view which) {
        while (!which.empty() && which.front() == ' ') which.remove_prefix(1);
        while (!which.empty() && which.back() == ' ') which.remove_suffix(1);
        if (which == "digit") return digit_timeout_var;
        if (which == "response") return response_timeout_var;
        return std::nullopt;
    }

    std::vector<Registration> regs_;
};

}  // namespace

TANDEM_MODULE(PlaybackModule)
