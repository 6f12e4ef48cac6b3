// Hangup causes: ITU-T Q.850 codes, as carried by ISDN and mapped to SIP.
#pragma once

#include <string_view>

namespace tandem::cause {

inline constexpr int unallocated = 1;
inline constexpr int no_route_destination = 3;
inline constexpr int normal_clearing = 16;
inline constexpr int user_busy = 17;
inline constexpr int no_user_response = 18;
inline constexpr int no_answer = 19;
inline constexpr int subscriber_absent = 20;
inline constexpr int call_rejected = 21;
inline constexpr int number_changed = 22;
inline constexpr int exchange_routing_error = 25;  // SIP 483 Too Many Hops (RFC 3398)
inline constexpr int destination_out_of_order = 27;
inline constexpr int invalid_number_format = 28;
inline constexpr int normal_unspecified = 31;
inline constexpr int normal_circuit_congestion = 34;
inline constexpr int network_out_of_order = 38;
inline constexpr int temporary_failure = 41;
inline constexpr int switch_congestion = 42;
inline constexpr int requested_chan_unavail = 44;
inline constexpr int facility_not_subscribed = 50;
inline constexpr int outgoing_call_barred = 52;
inline constexpr int bearer_capability_notavail = 58;
inline constexpr int invalid_call_reference = 81;
inline constexpr int incompatible_destination = 88;
inline constexpr int interworking = 127;

// Upper-case name as Asterisk prints it (e.g. "NORMAL_CLEARING"); "UNKNOWN" otherwise.
std::string_view name(int cause);
// Accepts a number or a name (case-insensitive); returns 0 when unknown.
int parse(std::string_view text);

}  // namespace tandem::cause
