// Turns Sofia-SIP's log output back into whole lines and whole messages.
//
// Sofia writes through su_log() in fragments: its transport logger (TPTAG_LOG)
// prints a stamp ("recv 512 bytes from udp/[192.0.2.1]:5060 at ...:"), a
// separator, each line of the message indented by three spaces, and a closing
// separator, one call at a time. The assembler collects those fragments and
// yields one item per SIP message (for `sip set debug on`) and one per
// diagnostic line (logged at debug level).
//
// Threading: one assembler per Sofia thread; not shared.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem::sip {

class SofiaLogAssembler {
public:
    struct Item {
        bool message = false;  // a SIP message dump; otherwise a diagnostic line
        std::string text;      // message: "recv 512 bytes from udp/[...]:5060\n<message>"
    };

    std::vector<Item> feed(std::string_view fragment);
    // Whatever is still buffered (at shutdown).
    std::vector<Item> flush();

private:
    bool in_message_ = false;
    std::string head_, body_, line_;
};

}  // namespace tandem::sip
