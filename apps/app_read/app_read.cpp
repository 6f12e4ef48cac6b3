// app_read: Read() — plays a prompt and collects DTMF digits into a variable.
//
// The first digit interrupts the prompt and counts. Collection ends at `#`
// (not stored), at maxdigits, or when `timeout` seconds pass without a digit;
// an attempt that got nothing plays the prompt again, up to `attempts` times.
// On the channel's loop; prompts are read on the worker pool by play_sound().
#include "../app_playback/split_list.hpp"

#include <tandem/core.hpp>
#include <tandem/file.hpp>
#include <tandem/module.hpp>

#include <cctype>
#include <charconv>
#include <string>
#include <vector>

namespace {

using namespace tandem;
using apps::split_list;
using namespace std::chrono_literals;

constexpr int max_digits_limit = 255;

double number_arg(std::string_view s, double fallback) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() ? v : fallback;
}

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

bool valid_variable_name(std::string_view v) {
    if (v.empty()) return false;
    for (char c : v)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '(' || c == ')')) return false;
    return true;
}

awaitable<AppResult> read_app(Channel& chan, const AppArgs& args) {
    const std::string var = args[0];
    auto files = split_list(args[1], '&');
    int maxdigits = static_cast<int>(number_arg(args[2], 0));
    if (maxdigits <= 0 || maxdigits > max_digits_limit) maxdigits = max_digits_limit;
    const std::string options = args[3];
    int attempts = static_cast<int>(number_arg(args[4], 1));
    if (attempts < 1) attempts = 1;
    double timeout_s = number_arg(args[5], 5);
    auto timeout = std::chrono::milliseconds(static_cast<long long>((timeout_s > 0 ? timeout_s : 5) * 1000));

    if (!valid_variable_name(var)) {
        chan.core().log().warning("{}: Read: '{}' is not a variable name", chan.name(), var);
        chan.set_variable("READSTATUS", "ERROR");
        co_return AppResult::next;
    }
    if (chan.state() != ChannelState::up) {
        if (options.find('s') != std::string::npos) {
            chan.set_variable("READSTATUS", "SKIPPED");
            co_return AppResult::next;
        }
        if (options.find('n') == std::string::npos && !co_await chan.answer()) co_return AppResult::hangup;
    }

    std::string digits;
    bool terminated = false;
    for (int attempt = 0; attempt < attempts && digits.empty() && !terminated; ++attempt) {
        for (auto& f : files) {
            auto r = co_await play_sound(chan, f, any_dtmf);
            if (r.status == PlaybackResult::Status::hungup || chan.hungup()) break;
            if (r.status == PlaybackResult::Status::interrupted) {
                if (r.digit == '#')
                    terminated = true;
                else
                    digits += r.digit;
                break;
            }
            if (r.status == PlaybackResult::Status::failed) {
                chan.set_variable("READSTATUS", "ERROR");
                co_return AppResult::next;
            }
        }
        while (!terminated && !chan.hungup() && static_cast<int>(digits.size()) < maxdigits) {
            char d = co_await next_digit(chan, timeout);
            if (!d) break;
            if (d == '#') {
                terminated = true;
                break;
            }
            digits += d;
        }
        if (chan.hungup()) break;
    }
    chan.set_variable(var, digits);
    if (chan.hungup()) {
        chan.set_variable("READSTATUS", "HANGUP");
        co_return AppResult::hangup;
    }
    chan.set_variable("READSTATUS", digits.empty() && !terminated ? "TIMEOUT" : "OK");
    co_return AppResult::next;
}

class ReadModule final : public Module {
public:
    void load(Host& host) override {
        app_ = host.add(
            "Read", Application{"Read digits into a variable",
                                "Read(variable[,filename[&filename2...][,maxdigits[,options[,attempts[,timeout]]]]])",
                                "Plays the files (a digit interrupts them and counts), then collects DTMF into\n"
                                "the variable until '#' (not stored), maxdigits digits (0: up to 255), or\n"
                                "timeout seconds (default 5) without a digit. With nothing entered, the prompt\n"
                                "is played again, up to `attempts` times (default 1).\n"
                                "Options: s — skip if the channel is not answered; n — read without answering.\n"
                                "Sets READSTATUS: OK, TIMEOUT (nothing entered), SKIPPED, HANGUP, ERROR.",
                                1, 6, read_app});
    }

private:
    Registration app_;
};

}  // namespace

TANDEM_MODULE(ReadModule)
