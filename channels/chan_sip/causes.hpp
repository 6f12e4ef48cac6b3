// Hangup causes across the SIP boundary: SIP final statuses to Q.850 causes
// and back, after RFC 3398 §7 and the table integrators know from Asterisk.
//
// A failed outgoing INVITE becomes a channel hangup cause (486 → USER_BUSY),
// and a channel hung up before answer becomes the final response of its
// incoming INVITE (USER_BUSY → 486). NORMAL_CLEARING has no final status of
// its own: answered calls end with a BYE, and an unanswered one is declined
// (603), as Asterisk does.
//
// Threading: pure functions.
#pragma once

#include <string_view>

namespace tandem::sip {

// Q.850 causes Tandem's cause.hpp does not name, used by the SIP table.
inline constexpr int cause_facility_rejected = 29;
inline constexpr int cause_recovery_on_timer_expire = 102;

// The Q.850 cause for a SIP final status (>= 300). Unknown 4xx map to
// INTERWORKING, 5xx to NETWORK_OUT_OF_ORDER (failure), 6xx to CALL_REJECTED.
int cause_from_status(int status);

// The SIP final status for a channel hung up before answer with `cause`.
// Never returns less than 300.
int status_from_cause(int cause);

// The standard reason phrase of a SIP status ("Busy Here"); "" when unknown.
std::string_view status_phrase(int status);

}  // namespace tandem::sip
