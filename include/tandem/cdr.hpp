// Call detail records and the back-ends that store them.
//
// The core builds one CdrRecord per channel when it hangs up and hands it to
// every registered back-end on the CDR writer thread, one record at a time and
// in order: a back-end may block (disk, database) without touching any call.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace tandem {

struct CdrRecord {
    std::string accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata;
    std::chrono::system_clock::time_point start, answer, end;  // answer is epoch 0 if never answered
    long long duration = 0;                                    // seconds, start to end
    long long billsec = 0;                                     // seconds, answer to end
    std::string disposition;                                   // ANSWERED, NO ANSWER, BUSY, FAILED, CONGESTION
    std::string amaflags = "DOCUMENTATION";
    std::string uniqueid, linkedid, userfield;
    int hangup_cause = 0;
};

struct CdrBackend {
    std::string description;
    // Stores one record. Throwing or returning false reports a failure; the core
    // logs it with the back-end's name and keeps the record for a retry.
    std::function<bool(const CdrRecord&, std::string& error)> write;
    // Optional: make everything written so far durable.
    std::function<void()> flush;
};

}  // namespace tandem
