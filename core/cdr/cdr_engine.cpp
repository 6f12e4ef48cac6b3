#include "cdr/cdr_engine.hpp"

#include "runtime/core_impl.hpp"

#include <chrono>

namespace tandem {

CdrEngine::CdrEngine(CoreImpl& core) : core_(core) {}

CdrEngine::~CdrEngine() {
    stop();
}

void CdrEngine::start() {
    std::lock_guard lock(mu_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "cdr");
        run();
    });
}

std::string CdrEngine::disposition_of(const Channel& chan) {
    if (chan.answered_at() != std::chrono::system_clock::time_point{}) return "ANSWERED";
    switch (chan.hangup_cause()) {
        case cause::user_busy:
            return "BUSY";
        case cause::normal_circuit_congestion:
        case cause::switch_congestion:
            return "CONGESTION";
        case cause::no_answer:
        case cause::no_user_response:
        case cause::normal_clearing:
            return "NO ANSWER";
        default:
            return "FAILED";
    }
}

CdrRecord CdrEngine::record_of(const Channel& chan) {
    using namespace std::chrono;
    CdrRecord r;
    r.accountcode = chan.accountcode();
    r.src = chan.caller().number;
    // The `h` extension runs after the call: the record names where the call was.
    r.dst = chan.exten() == "h" ? chan.variable("HANGUP_EXTEN").value_or("h") : chan.exten();
    r.dcontext = chan.context();
    if (!chan.caller().name.empty())
        r.clid = "\"" + chan.caller().name + "\" <" + chan.caller().number + ">";
    else
        r.clid = chan.caller().number;
    r.channel = chan.name();
    r.dstchannel = chan.peer_name();
    r.lastapp = chan.last_app();
    r.lastdata = chan.last_data();
    r.start = chan.created_at();
    r.answer = chan.answered_at();
    r.end = system_clock::now();
    r.duration = duration_cast<seconds>(r.end - r.start).count();
    r.billsec = r.answer == system_clock::time_point{} ? 0 : duration_cast<seconds>(r.end - r.answer).count();
    r.disposition = disposition_of(chan);
    r.uniqueid = chan.uniqueid();
    r.linkedid = chan.linkedid();
    r.userfield = chan.userfield();
    r.hangup_cause = chan.hangup_cause();
    if (auto ama = chan.variable("CDR_AMAFLAGS")) r.amaflags = *ama;
    return r;
}

void CdrEngine::post(const Channel& chan) {
    if (chan.variable("CDR_DISABLED").value_or("") == "1") return;
    post(record_of(chan));
}

void CdrEngine::post(CdrRecord record) {
    {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(record));
    }
    cv_.notify_one();
}

void CdrEngine::drain() {
    std::unique_lock lock(mu_);
    if (!thread_.joinable()) return;
    idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void CdrEngine::stop() {
    {
        std::lock_guard lock(mu_);
        if (!thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_one();
    thread_.join();
}

void CdrEngine::run() {
    using namespace std::chrono_literals;
    for (;;) {
        CdrRecord rec;
        {
            std::unique_lock lock(mu_);
            busy_ = false;
            idle_cv_.notify_all();
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) break;
            rec = std::move(queue_.front());
            queue_.pop_front();
            busy_ = true;
        }
        core_.cdr_backends().for_each([&](const std::string& name, const CdrBackend& be, const std::string&) {
            // A failing back-end is retried a few times, then the record is
            // logged in full so that nothing is lost silently.
            auto delay = 100ms;
            for (int attempt = 0;; ++attempt) {
                std::string error;
                bool ok = false;
                try {
                    ok = be.write(rec, error);
                } catch (const std::exception& e) {
                    error = e.what();
                }
                if (ok) break;
                if (attempt == 3) {
                    core_.log().error("CDR back-end {} lost record {} ({} -> {}, {}s): {}", name, rec.uniqueid, rec.src,
                                      rec.dst, rec.duration, error);
                    break;
                }
                core_.log().warning("CDR back-end {} failed (retrying): {}", name, error);
                std::this_thread::sleep_for(delay);
                delay *= 4;
            }
        });
    }
    core_.cdr_backends().for_each([](const std::string&, const CdrBackend& be, const std::string&) {
        if (be.flush) be.flush();
    });
    std::lock_guard lock(mu_);
    busy_ = false;
    idle_cv_.notify_all();
}

}  // namespace tandem
