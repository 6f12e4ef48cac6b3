// chan_sip: SIP status <-> Q.850 cause table (RFC 3398, Asterisk's choices).
#include <doctest/doctest.h>

#include "chan_sip/causes.hpp"

#include <tandem/cause.hpp>

using namespace tandem;
using namespace tandem::sip;

TEST_CASE("sip causes: final statuses of a failed INVITE become Q.850 causes") {
    CHECK(cause_from_status(404) == cause::unallocated);
    CHECK(cause_from_status(486) == cause::user_busy);
    CHECK(cause_from_status(600) == cause::user_busy);
    CHECK(cause_from_status(480) == cause::no_answer);
    CHECK(cause_from_status(408) == cause::no_user_response);
    CHECK(cause_from_status(403) == cause::call_rejected);
    CHECK(cause_from_status(603) == cause::call_rejected);
    CHECK(cause_from_status(503) == cause::normal_circuit_congestion);
    CHECK(cause_from_status(484) == cause::invalid_number_format);
    CHECK(cause_from_status(488) == cause::bearer_capability_notavail);
    CHECK(cause_from_status(410) == cause::number_changed);
    CHECK(cause_from_status(502) == cause::destination_out_of_order);
    CHECK(cause_from_status(504) == cause_recovery_on_timer_expire);
    CHECK(cause_from_status(483) == cause::exchange_routing_error);  // RFC 3398 8.2.6.1
    CHECK(cause_from_status(487) == cause::interworking);
    // Unknown statuses by class.
    CHECK(cause_from_status(499) == cause::interworking);
    CHECK(cause_from_status(599) == cause::network_out_of_order);
    CHECK(cause_from_status(699) == cause::call_rejected);
}

TEST_CASE("sip causes: a channel hung up before answer gets a final status") {
    CHECK(status_from_cause(cause::unallocated) == 404);
    CHECK(status_from_cause(cause::no_route_destination) == 404);
    CHECK(status_from_cause(cause::user_busy) == 486);
    CHECK(status_from_cause(cause::no_user_response) == 408);
    CHECK(status_from_cause(cause::no_answer) == 480);
    CHECK(status_from_cause(cause::subscriber_absent) == 480);
    CHECK(status_from_cause(cause::call_rejected) == 403);
    CHECK(status_from_cause(cause::invalid_number_format) == 484);
    for (int c : {cause::normal_circuit_congestion, cause::network_out_of_order, cause::temporary_failure,
                  cause::switch_congestion})
        CHECK(status_from_cause(c) == 503);
    CHECK(status_from_cause(cause::bearer_capability_notavail) == 488);
    CHECK(status_from_cause(cause::interworking) == 500);
    // NORMAL_CLEARING before answer: declined, as Asterisk does.
    CHECK(status_from_cause(cause::normal_clearing) == 603);
    CHECK(status_from_cause(0) == 603);
    for (int c = 0; c < 128; ++c) CHECK(status_from_cause(c) >= 300);
}

TEST_CASE("sip causes: round trips of the common failures") {
    // 483 too: a loop detected two PBXes away still reaches the caller as one.
    for (int s : {404, 486, 480, 403, 503, 484, 488, 483}) CHECK(status_from_cause(cause_from_status(s)) == s);
    CHECK(status_phrase(483) == "Too Many Hops");
    CHECK(cause::name(cause::exchange_routing_error) == "EXCHANGE_ROUTING_ERROR");
    CHECK(status_phrase(486) == "Busy Here");
    CHECK(status_phrase(487) == "Request Terminated");
    CHECK(status_phrase(299).empty());
}
