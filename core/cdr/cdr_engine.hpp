// The CDR engine: turns ended channels into records and feeds the back-ends.
//
// Records are built on the channel's loop (cheap copies) and queued; a single
// writer thread hands them to every registered back-end in order, so a slow
// disk or database never delays a call. stop() drains the queue and flushes.
#pragma once

#include <tandem/cdr.hpp>
#include <tandem/channel.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace tandem {

class CoreImpl;

class CdrEngine {
public:
    explicit CdrEngine(CoreImpl& core);
    ~CdrEngine();

    void start();
    void post(const Channel& chan);
    void post(CdrRecord record);
    // Waits until every record queued so far is handed to the back-ends.
    void drain();
    void stop();

    static CdrRecord record_of(const Channel& chan);
    static std::string disposition_of(const Channel& chan);

private:
    void run();
    CoreImpl& core_;
    std::mutex mu_;
    std::condition_variable cv_, idle_cv_;
    std::deque<CdrRecord> queue_;
    bool stopping_ = false, busy_ = false;
    std::thread thread_;
};

}  // namespace tandem
