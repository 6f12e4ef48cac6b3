#include <tandem/cause.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string>

namespace tandem::cause {

namespace {
struct Entry {
    int code;
    std::string_view name;
};
constexpr Entry table[] = {
    {unallocated, "UNALLOCATED"},
    {no_route_destination, "NO_ROUTE_DESTINATION"},
    {normal_clearing, "NORMAL_CLEARING"},
    {user_busy, "USER_BUSY"},
    {no_user_response, "NO_USER_RESPONSE"},
    {no_answer, "NO_ANSWER"},
    {subscriber_absent, "SUBSCRIBER_ABSENT"},
    {call_rejected, "CALL_REJECTED"},
    {number_changed, "NUMBER_CHANGED"},
    {exchange_routing_error, "EXCHANGE_ROUTING_ERROR"},
    {destination_out_of_order, "DESTINATION_OUT_OF_ORDER"},
    {invalid_number_format, "INVALID_NUMBER_FORMAT"},
    {normal_unspecified, "NORMAL_UNSPECIFIED"},
    {normal_circuit_congestion, "NORMAL_CIRCUIT_CONGESTION"},
    {network_out_of_order, "NETWORK_OUT_OF_ORDER"},
    {temporary_failure, "NORMAL_TEMPORARY_FAILURE"},
    {switch_congestion, "SWITCH_CONGESTION"},
    {requested_chan_unavail, "REQUESTED_CHAN_UNAVAIL"},
    {facility_not_subscribed, "FACILITY_NOT_SUBSCRIBED"},
    {outgoing_call_barred, "OUTGOING_CALL_BARRED"},
    {bearer_capability_notavail, "BEARERCAPABILITY_NOTAVAIL"},
    {invalid_call_reference, "INVALID_CALL_REFERENCE"},
    {incompatible_destination, "INCOMPATIBLE_DESTINATION"},
    {interworking, "INTERWORKING"},
};
}  // namespace

std::string_view name(int c) {
    for (auto& e : table)
        if (e.code == c) return e.name;
    return "UNKNOWN";
}

int parse(std::string_view text) {
    int n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec == std::errc() && p == text.data() + text.size()) return (n > 0 && n < 128) ? n : 0;
    std::string up(text);
    std::transform(up.begin(), up.end(), up.begin(), [](unsigned char ch) { return std::toupper(ch); });
    // Asterisk's short forms used by Hangup(): BUSY, CONGESTION, NOANSWER.
    if (up == "BUSY") return user_busy;
    if (up == "CONGESTION") return normal_circuit_congestion;
    if (up == "NOANSWER") return no_answer;
    for (auto& e : table)
        if (e.name == up) return e.code;
    return 0;
}

}  // namespace tandem::cause
