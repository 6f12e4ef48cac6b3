#include "cli/protocol.hpp"

namespace tandem::cli {

namespace {

void append_frame(std::string& out, FrameType type, std::string_view payload) {
    const auto n = static_cast<std::uint32_t>(payload.size() + 1);
    out.push_back(static_cast<char>((n >> 24) & 0xff));
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    out.push_back(static_cast<char>((n >> 8) & 0xff));
    out.push_back(static_cast<char>(n & 0xff));
    out.push_back(static_cast<char>(type));
    out.append(payload);
}

}  // namespace

bool is_known(FrameType type) {
    switch (type) {
        case FrameType::greeting:
        case FrameType::output:
        case FrameType::result:
        case FrameType::log:
        case FrameType::matches:
        case FrameType::command:
        case FrameType::complete:
        case FrameType::verbosity:
            return true;
    }
    return false;
}

std::string encode(FrameType type, std::string_view payload) {
    std::string out;
    if (payload.size() <= max_payload_length) {
        out.reserve(frame_header_length + 1 + payload.size());
        append_frame(out, type, payload);
        return out;
    }
    if (type == FrameType::output || type == FrameType::log) {
        const std::size_t frames = (payload.size() + max_payload_length - 1) / max_payload_length;
        out.reserve(payload.size() + frames * (frame_header_length + 1));
        while (!payload.empty()) {
            auto chunk = payload.substr(0, max_payload_length);
            append_frame(out, type, chunk);
            payload.remove_prefix(chunk.size());
        }
        return out;
    }
    auto cut = payload.substr(0, max_payload_length);
    if (type == FrameType::matches) {
        // Keep whole candidates only: the separator after the last one that fits
        // is either inside the cut or exactly at its end.
        if (payload[max_payload_length] != '\n') {
            auto nl = cut.rfind('\n');
            cut = cut.substr(0, nl == std::string_view::npos ? 0 : nl);
        }
    }
    append_frame(out, type, cut);
    return out;
}

void Decoder::feed(const char* data, std::size_t size) {
    if (failed_ || size == 0) return;
    // Drop consumed frames before growing, so a long-lived connection does not
    // keep everything it ever read.
    if (pos_ > 0 && (pos_ == buf_.size() || pos_ >= 64 * 1024)) {
        buf_.erase(0, pos_);
        pos_ = 0;
    }
    buf_.append(data, size);
}

std::optional<Frame> Decoder::next() {
    if (failed_) return std::nullopt;
    const std::size_t avail = buf_.size() - pos_;
    if (avail < frame_header_length) return std::nullopt;
    const auto* p = reinterpret_cast<const unsigned char*>(buf_.data() + pos_);
    const std::uint32_t n =
        (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    if (n == 0 || n > max_frame_length) {
        failed_ = true;
        std::string().swap(buf_);
        pos_ = 0;
        return std::nullopt;
    }
    if (avail - frame_header_length < n) return std::nullopt;
    Frame f;
    f.type = static_cast<FrameType>(buf_[pos_ + frame_header_length]);
    f.payload.assign(buf_, pos_ + frame_header_length + 1, n - 1);
    pos_ += frame_header_length + n;
    if (pos_ == buf_.size()) {
        buf_.clear();
        pos_ = 0;
    }
    return f;
}

}  // namespace tandem::cli
