#include "causes.hpp"

#include <tandem/cause.hpp>

namespace tandem::sip {

int cause_from_status(int status) {
    switch (status) {
        case 401:
        case 403:
        case 407:
        case 603:
            return cause::call_rejected;
        case 404:
        case 485:
        case 604:
            return cause::unallocated;
        case 408:
            return cause::no_user_response;
        case 409:
            return cause::temporary_failure;
        case 410:
            return cause::number_changed;
        case 420:
            return cause::no_route_destination;
        case 480:
            return cause::no_answer;
        case 483:
            return cause::exchange_routing_error;
        case 484:
            return cause::invalid_number_format;
        case 486:
        case 600:
            return cause::user_busy;
        case 488:
        case 606:
            return cause::bearer_capability_notavail;
        case 500:
            return cause::network_out_of_order;
        case 501:
            return cause_facility_rejected;
        case 502:
            return cause::destination_out_of_order;
        case 503:
            return cause::normal_circuit_congestion;
        case 504:
            return cause_recovery_on_timer_expire;
        default:
            break;
    }
    // 405, 411, 413-415, 481, 482, 487, 491, 493, 505 and the unknown 4xx.
    if (status >= 400 && status < 500) return cause::interworking;
    if (status >= 500 && status < 600) return cause::network_out_of_order;
    if (status >= 600) return cause::call_rejected;
    return cause::normal_unspecified;
}

int status_from_cause(int c) {
    switch (c) {
        case cause::unallocated:
        case 2:  // no route to transit network
        case cause::no_route_destination:
            return 404;
        case cause::user_busy:
            return 486;
        case cause::no_user_response:
            return 408;
        case cause::no_answer:
        case cause::subscriber_absent:
        case cause::normal_unspecified:
            return 480;
        case cause::call_rejected:
        case cause::facility_not_subscribed:
        case cause::outgoing_call_barred:
            return 403;
        case cause::number_changed:
            return 410;
        case cause::exchange_routing_error:
            return 483;
        case cause::destination_out_of_order:
            return 502;
        case cause::invalid_number_format:
            return 484;
        case cause_facility_rejected:
        case 66:  // channel type not implemented
            return 501;
        case cause::normal_circuit_congestion:
        case cause::network_out_of_order:
        case cause::temporary_failure:
        case cause::switch_congestion:
        case cause::requested_chan_unavail:
            return 503;
        case cause::bearer_capability_notavail:
        case cause::incompatible_destination:
            return 488;
        case cause_recovery_on_timer_expire:
            return 504;
        case cause::interworking:
            return 500;
        default:
            // NORMAL_CLEARING and anything without a status of its own.
            return 603;
    }
}

std::string_view status_phrase(int status) {
    switch (status) {
        case 100:
            return "Trying";
        case 180:
            return "Ringing";
        case 181:
            return "Call Is Being Forwarded";
        case 182:
            return "Queued";
        case 183:
            return "Session Progress";
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 407:
            return "Proxy Authentication Required";
        case 408:
            return "Request Timeout";
        case 410:
            return "Gone";
        case 415:
            return "Unsupported Media Type";
        case 420:
            return "Bad Extension";
        case 480:
            return "Temporarily Unavailable";
        case 481:
            return "Call/Transaction Does Not Exist";
        case 483:
            return "Too Many Hops";
        case 484:
            return "Address Incomplete";
        case 486:
            return "Busy Here";
        case 487:
            return "Request Terminated";
        case 488:
            return "Not Acceptable Here";
        case 491:
            return "Request Pending";
        case 500:
            return "Server Internal Error";
        case 501:
            return "Not Implemented";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Server Time-out";
        case 600:
            return "Busy Everywhere";
        case 603:
            return "Decline";
        case 604:
            return "Does Not Exist Anywhere";
        case 606:
            return "Not Acceptable";
        default:
            return "";
    }
}

}  // namespace tandem::sip
