// Frames: what flows through a channel — audio, video, DTMF, control, text.
//
// Drivers push frames into their channel; bridges and applications read them.
// A Frame is a small value. Its payload lives in an inline buffer sized for a
// 20 ms frame of 16 kHz linear audio, so moving media does not allocate;
// larger payloads (video) spill to the heap.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace tandem {

enum class FrameKind : std::uint8_t { voice, video, dtmf_begin, dtmf_end, control, text, null };

// Control subclasses carried by FrameKind::control.
enum class Indication : std::uint8_t {
    ringing,
    progress,
    proceeding,
    busy,
    congestion,
    hold,
    unhold,
    answer,
    hangup,
};

class Frame {
public:
    static constexpr std::size_t inline_capacity = 640;

    FrameKind kind = FrameKind::null;
    std::uint32_t subclass = 0;   // format id, digit, or Indication
    std::uint32_t samples = 0;    // voice: samples per channel
    std::uint32_t timestamp = 0;  // voice/video: media clock
    std::uint32_t duration_ms = 0;

    static Frame digit(FrameKind k, char d, std::uint32_t ms = 0) {
        Frame f;
        f.kind = k;
        f.subclass = static_cast<unsigned char>(d);
        f.duration_ms = ms;
        return f;
    }
    static Frame control(Indication i) {
        Frame f;
        f.kind = FrameKind::control;
        f.subclass = static_cast<std::uint32_t>(i);
        return f;
    }

    std::span<const std::uint8_t> payload() const {
        return heap_.empty() ? std::span<const std::uint8_t>(inline_.data(), size_)
                             : std::span<const std::uint8_t>(heap_);
    }
    void set_payload(std::span<const std::uint8_t> data) {
        if (data.size() <= inline_capacity) {
            heap_.clear();
            std::copy(data.begin(), data.end(), inline_.begin());
            size_ = static_cast<std::uint32_t>(data.size());
        } else {
            heap_.assign(data.begin(), data.end());
            size_ = 0;
        }
    }

private:
    std::array<std::uint8_t, inline_capacity> inline_{};
    std::uint32_t size_ = 0;
    std::vector<std::uint8_t> heap_;
};

}  // namespace tandem
