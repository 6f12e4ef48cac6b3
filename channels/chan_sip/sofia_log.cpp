#include "sofia_log.hpp"

#include <utility>

namespace tandem::sip {

namespace {

constexpr std::size_t max_buffer = 256 * 1024;

bool is_separator(std::string_view line) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.size() < 20) return false;
    for (char c : line)
        if (c != '-') return false;
    return true;
}

bool is_stamp(std::string_view s) {
    return (s.starts_with("recv ") || s.starts_with("send ")) && s.find(" bytes ") != std::string_view::npos;
}

// "recv 512 bytes from udp/[192.0.2.1]:5060 at 12:00:00.000000:" without the clock.
std::string clean_stamp(std::string_view line) {
    auto at = line.rfind(" at ");
    if (at != std::string_view::npos) line = line.substr(0, at);
    while (!line.empty() && (line.back() == ':' || line.back() == ' ')) line.remove_suffix(1);
    return std::string(line);
}

// Removes the three-space indentation and the trailing blank lines.
std::string clean_body(std::string_view body) {
    std::string out;
    std::size_t start = 0;
    while (start < body.size()) {
        auto end = body.find('\n', start);
        auto line = body.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (line.starts_with("   ")) line.remove_prefix(3);
        while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        out.append(line);
        out += '\n';
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

}  // namespace

std::vector<SofiaLogAssembler::Item> SofiaLogAssembler::feed(std::string_view fragment) {
    std::vector<Item> out;
    auto finish_message = [&] {
        out.push_back({true, head_ + "\n" + clean_body(body_)});
        head_.clear();
        body_.clear();
        in_message_ = false;
    };
    while (!fragment.empty()) {
        if (!in_message_) {
            if (line_.empty() && is_stamp(fragment)) {
                auto nl = fragment.find('\n');
                head_ = clean_stamp(fragment.substr(0, nl));
                in_message_ = true;
                body_.clear();
                if (nl == std::string_view::npos) return out;
                fragment.remove_prefix(nl + 1);
                // The opening separator usually shares the stamp's fragment.
                auto next = fragment.find('\n');
                if (is_separator(fragment.substr(0, next)))
                    fragment.remove_prefix(next == std::string_view::npos ? fragment.size() : next + 1);
                continue;
            }
            auto nl = fragment.find('\n');
            line_.append(fragment.substr(0, nl));
            if (nl == std::string_view::npos) {
                if (line_.size() > max_buffer) out.push_back({false, std::exchange(line_, {})});
                return out;
            }
            fragment.remove_prefix(nl + 1);
            if (!line_.empty()) out.push_back({false, std::exchange(line_, {})});
            continue;
        }
        // Inside a message: a separator line ends it.
        auto nl = fragment.find('\n');
        auto piece = fragment.substr(0, nl == std::string_view::npos ? fragment.size() : nl + 1);
        fragment.remove_prefix(piece.size());
        auto last_nl = body_.rfind('\n');
        auto current_line = std::string_view(body_).substr(last_nl == std::string::npos ? 0 : last_nl + 1);
        if ((current_line.empty() || current_line.find_first_not_of(' ') == std::string_view::npos) &&
            is_separator(piece)) {
            finish_message();
            continue;
        }
        if (is_stamp(piece) && (current_line.empty())) {
            // A new message began before this one closed: keep both.
            finish_message();
            fragment = std::string_view(piece.data(), piece.size() + fragment.size());
            continue;
        }
        body_.append(piece);
        if (body_.size() > max_buffer) finish_message();
    }
    return out;
}

std::vector<SofiaLogAssembler::Item> SofiaLogAssembler::flush() {
    std::vector<Item> out;
    if (in_message_) out.push_back({true, head_ + "\n" + clean_body(body_)});
    if (!line_.empty()) out.push_back({false, line_});
    in_message_ = false;
    head_.clear();
    body_.clear();
    line_.clear();
    return out;
}

}  // namespace tandem::sip
