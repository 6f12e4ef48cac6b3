// Channels: one leg of a call, and the driver interface behind it.
//
// A Channel is created on one event loop and lives there for its whole life:
// every method below must be called on that loop (`executor()`), except those
// marked "any thread". Drivers report what happens on the wire by calling the
// `on_*` methods (on the channel's loop); applications act on the channel with
// `answer()`, `indicate()`, `sleep()` and friends, which forward to the driver.
//
// Hangup is a cancellation: `request_hangup()` (any thread) marks the channel
// and cancels whatever the dialplan coroutine awaits, so an application blocked
// in `sleep()` or any other Asio operation unwinds at once, destructors run,
// and the `h` extension gets its turn.
//
// Media: a driver sends and receives one native format (`native_format()`,
// set by the driver after negotiation; slin8 for internal channels). An
// application reads with `read_frame()` and writes with `write()` in its read
// and write formats; the channel translates between those and the native
// format with paths from Core::build_path, built when a format is set or the
// native one changes, never per frame. Frames the driver pushes with
// `on_frame()` go to the frame observer (a bridge or Dial) and, once someone
// has called `read_frame()`, to a small bounded queue. All of this runs on the
// channel's loop, like everything else about a channel: no locks.
#pragma once

#include <tandem/cause.hpp>
#include <tandem/dsp.hpp>
#include <tandem/events.hpp>
#include <tandem/frame.hpp>
#include <tandem/media.hpp>
#include <tandem/registry.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem {

class Core;
class Channel;
// An RTP media session (include/tandem/rtp.hpp). A driver whose media is RTP
// hands it out so a bridge can relay packets between two legs without decoding.
class RtpSession;
// In-band detection on a channel (core/media/dsp.hpp; Channel::set_tone_detection).
class ChannelDsp;

template <class T>
using awaitable = boost::asio::awaitable<T>;

struct CallerId {
    std::string name;
    std::string number;
    bool empty() const { return name.empty() && number.empty(); }
};

std::string_view to_string(ChannelState s);

// What a driver does for one channel. Every method is called on the channel's
// loop. Defaults do nothing, so a driver implements what its wire supports.
class ChannelDriver {
public:
    virtual ~ChannelDriver() = default;
    // Start an outgoing call; report progress with on_indication/on_answered/on_hangup.
    virtual void call(Channel&, std::chrono::milliseconds /*timeout*/) {}
    virtual void answer(Channel&) {}
    // The channel is going away; release the wire side. Called exactly once.
    virtual void hangup(Channel&, int /*cause*/) {}
    virtual void indicate(Channel&, Indication) {}
    // The start of a digit whose end comes with send_digit() (RFC 4733 events
    // sent as they are pressed); drivers that send whole digits ignore it.
    virtual void send_digit_begin(Channel&, char /*digit*/) {}
    virtual void send_digit(Channel&, char /*digit*/, std::chrono::milliseconds /*duration*/) {}
    virtual void send_text(Channel&, std::string_view) {}
    // Voice (in the native format) and video frames to send.
    virtual void write(Channel&, const Frame&) {}
    // The RTP session carrying this channel's media, if its media is RTP: a
    // bridge may then relay packets between two sessions without decoding.
    virtual RtpSession* rtp() { return nullptr; }
    // The RTP session of the channel's video stream, when one is negotiated:
    // a bridge relays it to the other leg's (video is never decoded).
    virtual RtpSession* video_rtp() { return nullptr; }
    // True when the driver deals with hold itself (passes it on, as a Local
    // channel does, or plays its own music): indicate(Indication::hold) then
    // starts no music on hold in the core (tandem/moh.hpp).
    virtual bool handles_hold() const { return false; }
    // Moving the channel to another loop (see move_channel()): can_move()
    // says whether the driver can follow; leave_loop() is called on the old
    // loop, while nothing runs on the channel, and must leave nothing there
    // that touches the channel later; join_loop() is called on the new loop.
    // A driver that keeps nothing bound to its loop moves as it is; the
    // default is not to move.
    virtual bool can_move(const Channel&) const { return false; }
    virtual void leave_loop(Channel&, boost::asio::io_context& /*to*/) {}
    virtual void join_loop(Channel&) {}
};

// Wakes one coroutine that waits for events on several channels at once (a
// bridge watching both legs, Dial watching the caller and every callee).
// Register it with Channel::add_waiter() on each channel and remove it before
// it is destroyed. Loop-bound like the channels it watches.
class EventWaiter {
public:
    explicit EventWaiter(boost::asio::io_context& loop) : timer_(loop) {}
    EventWaiter(const EventWaiter&) = delete;
    EventWaiter& operator=(const EventWaiter&) = delete;
    // Something happened: the current or the next wait() returns at once.
    void notify();
    // Waits for notify() or the timeout; true when notified. Never throws: a
    // hangup of the awaiting coroutine's channel ends the wait early, so the
    // caller checks `hungup()` on the channels it cares about.
    awaitable<bool> wait(std::chrono::milliseconds timeout);

private:
    boost::asio::steady_timer timer_;
    bool signalled_ = false;
};

// Hops a call may still take (SIP's Max-Forwards) when nothing says otherwise.
inline constexpr int default_max_forwards = 70;

// What the dialplan sees of a request for a new outgoing channel.
struct ChannelRequest {
    std::string destination;             // text after "Tech/"
    const Channel* requestor = nullptr;  // the calling channel, if any
    CallerId caller;
    // The new channel's hop budget: the requestor's less one (the core refuses
    // the request when none is left), or default_max_forwards.
    int max_forwards = default_max_forwards;
};

// The registry entry of a channel technology ("Local", "SIP", ...).
struct ChannelTechnology {
    std::string description;
    // Creates an outgoing channel in state down (on any loop the core picks),
    // or returns nullptr and sets `cause`. Called on any thread.
    std::function<std::shared_ptr<Channel>(Core&, const ChannelRequest&, int& cause)> request;
};

struct ChannelVariable {
    std::string name;
    std::string value;
    int inherit = 0;  // 0: none, 1: `_VAR` (one generation), 2: `__VAR` (forever)
};

class Channel : public std::enable_shared_from_this<Channel> {
public:
    // Use Core::create_channel; the core assigns the loop and the unique id.
    Channel(Core& core, boost::asio::io_context& loop, std::string name, std::string uniqueid,
            std::unique_ptr<ChannelDriver> driver, Lease<ChannelTechnology> tech);
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    // --- identity (any thread: immutable after creation) ---
    const std::string& name() const { return name_; }
    const std::string& uniqueid() const { return uniqueid_; }
    std::string_view technology() const;
    Core& core() const { return core_; }
    // The channel's loop: fixed, except that move_channel() may move a channel
    // nothing runs on (any thread may read it).
    boost::asio::io_context& loop() const { return *loop_.load(std::memory_order_acquire); }
    boost::asio::any_io_executor executor() const { return loop().get_executor(); }
    ChannelDriver& driver() const { return *driver_; }

    // --- state ---
    ChannelState state() const { return state_; }
    void set_state(ChannelState s);
    // True once a hangup was requested or happened: stop doing work.
    bool hungup() const { return hangup_requested_; }
    int hangup_cause() const { return hangup_cause_; }
    void set_hangup_cause(int c) { hangup_cause_ = c; }
    std::chrono::system_clock::time_point created_at() const { return created_; }
    std::chrono::system_clock::time_point answered_at() const { return answered_; }

    // --- caller id and call data ---
    CallerId& caller() { return caller_; }
    const CallerId& caller() const { return caller_; }
    CallerId& connected() { return connected_; }
    std::string& dialed_number() { return dnid_; }
    std::string& linkedid() { return linkedid_; }
    std::string& accountcode() { return accountcode_; }
    std::string& userfield() { return userfield_; }
    std::string& language() { return language_; }
    std::string& peer_name() { return peer_; }  // the channel this one is bridged or dialled to
    const std::string& linkedid() const { return linkedid_; }
    const std::string& accountcode() const { return accountcode_; }
    const std::string& userfield() const { return userfield_; }
    const std::string& language() const { return language_; }
    const std::string& peer_name() const { return peer_; }

    // --- variables: channel first, then globals ---
    std::optional<std::string> variable(std::string_view name) const;
    // `_NAME` / `__NAME` mark the variable inheritable (the prefix is not part of the name).
    void set_variable(std::string_view name, std::string value);
    bool unset_variable(std::string_view name);
    const std::vector<ChannelVariable>& variables() const { return vars_; }
    // Copies inheritable variables of a parent channel (one generation for `_`).
    void inherit_from(const Channel& parent);

    // --- dialplan position (used by the engine and by Goto-like apps) ---
    const std::string& context() const { return context_; }
    const std::string& exten() const { return exten_; }
    int priority() const { return priority_; }
    void set_position(std::string context, std::string exten, int priority);
    // Asks the engine to continue at this place after the current application
    // instead of the next priority. A negative priority means "by label".
    void jump_to(std::string context, std::string exten, int priority, std::string label = {});
    struct Jump {
        std::string context, exten, label;
        int priority = 0;
    };
    std::optional<Jump> take_jump() { return take(jump_); }
    // Asterisk's async goto, for fax detection: the dialplan continues at
    // this place now. The running application is cancelled as a hangup
    // would cancel it (its awaited operation ends with operation_aborted),
    // but the call goes on; the engine resets the cancellation and takes the
    // place with take_async_goto(). False, and nothing done, when no
    // coroutine runs on the channel (a callee owned by Dial). On the loop.
    bool async_goto(std::string context, std::string exten, int priority);
    bool async_goto_pending() const { return async_goto_ != nullptr; }
    std::optional<Jump> take_async_goto() { return take(async_goto_); }
    // A transfer's request that the channel leave what it is doing (a bridge,
    // Dial) and go on elsewhere: at a place in the dialplan, or bridged to
    // `bridge_to`, a channel with no dialplan of its own that whoever takes
    // the redirect then owns (ends). Set through Core::redirect(); whoever
    // runs the channel takes it (the bridge ends with BridgeEnd::*_redirected
    // and Dial acts on it). Setting and taking wake waiters.
    struct Redirect {
        std::string context, exten;
        int priority = 1;
        std::shared_ptr<Channel> bridge_to;
    };
    void set_redirect(Redirect r);
    bool redirect_pending() const { return redirect_ != nullptr; }
    std::optional<Redirect> take_redirect();
    // Gosub return stack: positions and their local variable frames.
    struct StackFrame {
        std::string context, exten;
        int priority;
        std::vector<ChannelVariable> saved_locals;
        std::vector<std::string> local_names;
        std::size_t arg_count;
    };
    std::vector<StackFrame>& gosub_stack() { return stack_; }
    std::string& last_app() { return lastapp_; }
    std::string& last_data() { return lastdata_; }
    const std::string& last_app() const { return lastapp_; }
    const std::string& last_data() const { return lastdata_; }

    // --- actions, on the channel's loop ---
    // Answers if not already up. Returns false if the channel hung up.
    awaitable<bool> answer();
    void indicate(Indication i);
    void send_digit(char digit, std::chrono::milliseconds duration = std::chrono::milliseconds(100));
    // Voice frames in another format than the native one (normally the write
    // format) are translated to native first; a format without a path is
    // dropped. DTMF frames become send_digit_begin()/send_digit(), text frames
    // send_text(); control frames are ignored (use indicate()).
    void write(const Frame& f);
    void send_digit_begin(char digit);
    void send_text(std::string_view text);
    // Sleeps unless hung up; returns false when the channel hung up.
    awaitable<bool> sleep(std::chrono::milliseconds d);
    // Starts an outgoing call through the driver.
    void call(std::chrono::milliseconds timeout);

    // Any thread: marks the channel hung up and cancels its dialplan coroutine.
    void request_hangup(int cause = cause::normal_clearing);

    // --- media formats, on the channel's loop ---
    // What the driver sends and receives; set by the driver after negotiation.
    // Changing it rebuilds the read and write paths and wakes waiters (a
    // bridge re-checks whether it can relay).
    Format native_format() const { return native_format_; }
    void set_native_format(Format f);
    // The formats an application reads and writes; Format::none means native.
    Format read_format() const { return read_format_; }
    void set_read_format(Format f);
    Format write_format() const { return write_format_; }
    void set_write_format(Format f);

    // The next frame the driver pushed: voice translated to the read format,
    // DTMF, control and text as they came. std::nullopt on timeout or when the
    // channel hangs up (a hangup ends the wait at once; check hungup()).
    // Frames are queued only once a reader has appeared, in a bounded queue:
    // beyond `max_queued_voice` the oldest voice frame is dropped; DTMF and
    // control frames are kept.
    awaitable<std::optional<Frame>> read_frame(std::chrono::milliseconds timeout);
    static constexpr std::size_t max_queued_voice = 8;  // 160 ms of 20 ms frames
    // Voice frames dropped from the read queue since it was created.
    std::uint64_t dropped_frames() const;

    // "Someone needs this channel's audio" (recording, in-band DTMF detection):
    // while the count is above zero a bridge does not relay RTP around the
    // core. Changes wake waiters so a running bridge re-checks at once.
    void add_audio_tap();
    void remove_audio_tap();
    bool audio_tapped() const { return audio_taps_ > 0; }

    // In-band detection (tandem/dsp.hpp), on the loop: listens to the voice
    // the driver pushes. A digit becomes dtmf_begin/dtmf_end frames exactly
    // as a driver reports RFC 4733 events; a fax tone publishes
    // event::FaxDetect, sets FAXDETECTED=cng|ced and, once per call, sends a
    // channel running the dialplan to the `fax` extension of its context if
    // it has one (FAXEXTEN keeps the extension it was at). While detection
    // is on the channel is audio-tapped. ToneDetection{} turns it off; false
    // when the detector could not be made (detection is then off).
    bool set_tone_detection(ToneDetection what);
    ToneDetection tone_detection() const;

    // --- music on hold (tandem/moh.hpp) ---
    // The class played when this channel is put on hold; empty means the
    // provider's default. CHANNEL(musicclass) in the dialplan; inherited.
    std::string& music_class() { return music_class_; }
    const std::string& music_class() const { return music_class_; }
    // How many more hops the call may take (SIP's Max-Forwards, RFC 3261
    // 8.1.1.6): set from the incoming request by its driver, one less on each
    // channel dialled from this one, sent on in outgoing requests. A call
    // looping through Tandem (a trunk routed back to itself, two PBXes
    // forwarding to each other) ends when it reaches 0. MAX_FORWARDS() in the
    // dialplan.
    int max_forwards() const { return max_forwards_; }
    void set_max_forwards(int hops) { max_forwards_ = hops; }
    // Set by the music player while it plays. The music then owns the
    // outgoing audio: voice frames given to write() are dropped rather than
    // interleaved with it, and the channel counts as audio-tapped so a bridge
    // stops relaying RTP around the core. The player sends with write_music().
    // Indication::hold on a channel whose driver does not handle hold itself
    // starts the channel's class; unhold stops it.
    void set_music_playing(bool on);
    bool music_playing() const { return music_playing_; }
    void write_music(const Frame& f);

    // Wakes `w` on the events wait_for_event() reports, on tap and native
    // format changes. Remove it before `w` is destroyed.
    void add_waiter(EventWaiter& w);
    void remove_waiter(EventWaiter& w);

    // --- driver -> channel, on the channel's loop ---
    void on_answered();
    void on_indication(Indication i);
    void on_frame(Frame f);
    void on_hangup(int cause);

    // Waits until the driver reports something (answer, indication, hangup;
    // not media frames) or the timeout passes. Returns false on timeout. Used by code that
    // drives an outgoing channel (originate, Dial) from the same loop.
    awaitable<bool> wait_for_event(std::chrono::milliseconds timeout);
    std::optional<Indication> last_indication() const { return last_indication_; }

    // The one observer of what the driver reports (a Dial or a bridge), on
    // the loop: every frame pushed with on_frame() as it came (native voice),
    // and each indication as a control frame. One owner at a time; set an
    // empty function to detach.
    using FrameObserver = std::function<void(const Frame&)>;
    void set_frame_observer(FrameObserver f) { observer_ = std::move(f); }

    // The signal whose slot is bound to the channel's dialplan coroutine.
    boost::asio::cancellation_signal& hangup_signal() { return hangup_signal_; }
    // Releases the driver and publishes the hangup; called once by the core.
    void finish();
    bool finished() const { return finished_; }

private:
    friend awaitable<bool> move_channel(std::shared_ptr<Channel> c, boost::asio::io_context& to,
                                        std::chrono::milliseconds patience);
    // On the old loop: whether nothing but its driver ties the channel to its
    // loop, and the move itself.
    bool movable() const;
    void rehome(boost::asio::io_context& to);

    Core& core_;
    std::atomic<boost::asio::io_context*> loop_;
    std::string name_, uniqueid_;
    std::unique_ptr<ChannelDriver> driver_;
    Lease<ChannelTechnology> tech_;
    ChannelState state_ = ChannelState::down;
    bool hangup_requested_ = false;
    bool finished_ = false;
    int hangup_cause_ = 0;
    std::chrono::system_clock::time_point created_, answered_{};
    CallerId caller_, connected_;
    std::string dnid_, linkedid_, accountcode_, userfield_, language_ = "en", peer_;
    std::vector<ChannelVariable> vars_;
    std::string context_, exten_;
    int priority_ = 1;
    int max_forwards_ = default_max_forwards;
    // Rarely set, so held out of line: every channel carries the pointers.
    std::unique_ptr<Jump> jump_;
    std::unique_ptr<Jump> async_goto_;
    std::unique_ptr<Redirect> redirect_;
    template <class T>
    static std::optional<T> take(std::unique_ptr<T>& p) {
        if (!p) return std::nullopt;
        std::optional<T> v(std::move(*p));
        p.reset();
        return v;
    }
    std::vector<StackFrame> stack_;
    std::string lastapp_, lastdata_;
    FrameObserver observer_;
    std::optional<Indication> last_indication_;
    std::vector<EventWaiter*> waiters_;
    void wake_waiters();
    Format native_format_ = Format::slin8;
    Format read_format_ = Format::none;
    Format write_format_ = Format::none;
    int audio_taps_ = 0;
    std::shared_ptr<ChannelDsp> dsp_;
    bool music_playing_ = false;
    std::string music_class_;
    void write_voice(const Frame& f);
    // Read queue, translation paths and the reader's waiter: allocated only
    // when needed, so an idle channel stays small.
    struct Media;
    std::unique_ptr<Media> media_;
    Media& media();
    void queue_frame(const Frame& f);
    boost::asio::cancellation_signal hangup_signal_;
};

// Runs `f` on the channel's loop, from any thread: posted there, and posted
// on should the channel have moved to another loop in the meantime.
void post_to_channel(std::shared_ptr<Channel> c, std::function<void(Channel*)> f);

// Called when the coroutine bound to the channel's hangup signal (its
// dialplan, say) has finished and let the channel go to another owner
// (AppResult::released): the cancellation handler it leaves in the signal's
// slot is dropped on the channel's loop, so that a later hangup of the
// channel does not reach the finished coroutine.
void forget_finished_owner(std::shared_ptr<Channel> c);

// Moves channel `c` to loop `to`, for a new owner that runs there: a transfer
// that connects parties of two loops. Call it on `to`. It waits (up to
// `patience`) on the channel's loop until its previous owner has let it go
// (no redirect pending, no music playing, nothing waiting on it), then the
// driver leaves the old loop and joins `to`. False, with the channel left
// where it was, when it hangs up first, is not let go in time, or its driver
// cannot move; true at once when it is on `to` already.
awaitable<bool> move_channel(std::shared_ptr<Channel> c, boost::asio::io_context& to,
                             std::chrono::milliseconds patience);

}  // namespace tandem
