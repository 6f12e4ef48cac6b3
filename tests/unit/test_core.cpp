// A real core booted in-process: calls through the engine, hangup as
// cancellation, reload under load, the module loader, the CLI.
#include "core_fixture.hpp"

#include "cdr/cdr_engine.hpp"
#include "cli/server.hpp"
#include "dialplan/engine.hpp"
#include "loader/module_loader.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <doctest/doctest.h>

#include <map>
#include <mutex>

using namespace tandem;
using namespace std::chrono_literals;

namespace {

struct NullDriver final : ChannelDriver {};

// Runs a Trace channel from exten@context and returns the variables it set
// (last value wins) and its hangup cause.
struct Run {
    std::map<std::string, std::string> vars;
    std::vector<std::string> steps;
    int cause = 0;
};

Run run_call(CoreImpl& core, const std::string& exten, const std::string& context, const std::string& cid = "") {
    auto chan = core.create_channel("Trace", "Trace/" + exten, std::make_unique<NullDriver>(), core.pick_loop());
    REQUIRE(chan);
    chan->caller().number = cid;
    chan->set_position(context, exten, 1);
    auto out = std::make_shared<Run>();
    auto mu = std::make_shared<std::mutex>();
    auto uid = chan->uniqueid();
    auto sub = core.events().subscribe([out, mu, uid](const Event& e) {
        std::lock_guard lock(*mu);
        if (auto* v = std::get_if<event::VariableSet>(&e); v && v->uniqueid == uid) out->vars[v->name] = v->value;
        if (auto* s = std::get_if<event::DialplanStep>(&e); s && s->uniqueid == uid)
            out->steps.push_back(s->exten + ":" + std::to_string(s->priority) + ":" + s->app);
    });
    core.start_pbx(chan);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!chan->finished() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
    REQUIRE(chan->finished());
    sub.reset();
    std::lock_guard lock(*mu);
    out->cause = chan->hangup_cause();
    return *out;
}

struct StringOutput final : CliOutput {
    std::string text;
    void write(std::string_view t) override { text += t; }
};

std::pair<int, std::string> cli(CoreImpl& core, const std::string& line) {
    auto out = std::make_shared<StringOutput>();
    auto f = boost::asio::co_spawn(core.pick_loop(), run_cli_line(core, line, *out), boost::asio::use_future);
    int status = f.get();
    return {status, out->text};
}

}  // namespace

TEST_CASE("core: the engine runs the built-in applications and functions") {
    test::TestCore t(R"(
[globals]
G=global
[t]
exten => s,1,Set(A=1)
 same => n,Set(__INH=forever)
 same => n,Set(B=$[${A} + 41])
 same => n,Set(C=${IF($[${B} = 42]?yes:no)})
 same => n,Set(D=${LEN(hello)})
 same => n,Set(X=one-two-three)
 same => n,Set(E=${CUT(X,-,2)})
 same => n,Set(F=${CUT(X,-,2-3)})
 same => n,Set(G2=${G})
 same => n,Set(H=${REGEX("^[0-9]+$" 12345)})
 same => n,Set(I=${X:4:3})
 same => n,Set(J=${X:-5})
 same => n,GotoIf($[${B} > 40]?big)
 same => n,Set(NOTREACHED=1)
 same => n(big),Gosub(sub,s,1(a1,a2))
 same => n,Set(RET=${GOSUB_RETVAL})
 same => n,ExecIf($[1 = 1]?Set(EXECD=yes):Set(EXECD=no))
 same => n,Set(DB(test/key)=stored)
 same => n,Set(K=${DB(test/key)})
 same => n,Set(L=${DB_EXISTS(test/nokey)})
 same => n,Set(M=${CALLERID(num)})
 same => n,Set(CALLERID(name)=Alice)
 same => n,Set(N=${CALLERID(all)})
 same => n,Set(O=${EXISTS(t,s,big)})
 same => n,Set(P=${CHANNEL(context)})
 same => n,Set(Q=${STRFTIME(0,UTC,%Y)})
 same => n,Set(GLOBAL(NEWG)=set)
 same => n,Goto(t,end,1)
exten => end,1,Set(R=${NEWG})
 same => n,Hangup(USER_BUSY)
 same => n,Set(NOTREACHED2=1)
[sub]
exten => s,1,Set(S1=${ARG1}${ARG2})
 same => n,Return(done)
)");
    auto r = run_call(*t.core, "s", "t", "1001");
    CHECK(r.vars["A"] == "1");
    CHECK(r.vars["B"] == "42");
    CHECK(r.vars["C"] == "yes");
    CHECK(r.vars["D"] == "5");
    CHECK(r.vars["E"] == "two");
    CHECK(r.vars["F"] == "two-three");
    CHECK(r.vars["G2"] == "global");
    CHECK(r.vars["H"] == "1");
    CHECK(r.vars["I"] == "two");
    CHECK(r.vars["J"] == "three");
    CHECK(r.vars.count("NOTREACHED") == 0);
    CHECK(r.vars["S1"] == "a1a2");
    CHECK(r.vars["RET"] == "done");
    CHECK(r.vars["EXECD"] == "yes");
    CHECK(r.vars["K"] == "stored");
    CHECK(r.vars["L"] == "0");
    CHECK(r.vars["M"] == "1001");
    CHECK(r.vars["N"] == "\"Alice\" <1001>");
    CHECK(r.vars["O"] == "1");
    CHECK(r.vars["P"] == "t");
    CHECK(r.vars["Q"] == "1970");
    CHECK(r.vars["R"] == "set");
    CHECK(r.vars.count("NOTREACHED2") == 0);
    CHECK(r.cause == cause::user_busy);
    CHECK(t.core->kv().get("test", "key") == "stored");
}

TEST_CASE("core: invalid extension goes to i, h runs after hangup, fallthrough ends the call") {
    test::TestCore t(R"(
[t]
exten => 1,1,Set(ONE=1)
exten => i,1,Set(INV=${INVALID_EXTEN})
exten => h,1,Set(HUP=${HANGUP_EXTEN})
[noi]
exten => 1,1,NoOp()
)");
    auto r = run_call(*t.core, "1", "t");
    CHECK(r.vars["ONE"] == "1");
    CHECK(r.vars["HUP"] == "1");
    r = run_call(*t.core, "77", "t");
    CHECK(r.vars["INV"] == "77");
    r = run_call(*t.core, "77", "noi");
    CHECK(r.cause == cause::unallocated);
}

TEST_CASE("core: a hangup cancels Wait() at once and runs h") {
    test::TestCore t("[t]\nexten => 1,1,Wait(3600)\nexten => h,1,Set(H=ran)\n");
    auto chan = t.core->create_channel("Trace", "Trace/1", std::make_unique<NullDriver>(), t.core->pick_loop());
    chan->set_position("t", "1", 1);
    std::atomic<bool> h_ran{false};
    auto sub = t.core->events().subscribe([&](const Event& e) {
        if (auto* v = std::get_if<event::VariableSet>(&e); v && v->name == "H") h_ran = true;
    });
    t.core->start_pbx(chan);
    CHECK(t.wait_for([&] { return chan->last_app() == "Wait"; }));
    auto start = std::chrono::steady_clock::now();
    chan->request_hangup(cause::normal_clearing);
    CHECK(t.wait_for([&] { return chan->finished(); }, 2s));
    CHECK(std::chrono::steady_clock::now() - start < 1s);
    CHECK(h_ran.load());
    CHECK(t.wait_for([&] { return t.core->channel_count() == 0; }));
}

TEST_CASE("core: Local channels, originate, reload while calls wait, module unload refused in use") {
    test::TestCore t("[t]\nexten => w,1,Answer()\n same => n,Wait(3600)\n");
    std::string error;
    for (int i = 0; i < 50; ++i) {
        dialplan::OriginateTarget target;
        target.app = "Wait";
        target.app_args = "3600";
        REQUIRE(!dialplan::originate(*t.core, "Local/w@t", target, error).empty());
    }
    CHECK(t.wait_for([&] { return t.core->channel_count() == 100; }));
    CHECK(t.wait_for([&] {
        int up = 0;
        for (auto& c : t.core->channels()) up += c->state() == ChannelState::up;
        return up == 100;
    }));
    // Replace the plan entirely: the calls sit in Wait() and must survive.
    std::ofstream(t.dir / "etc" / "extensions.conf") << "[t]\nexten => w,1,NoOp(new plan)\n";
    std::vector<std::string> problems;
    CHECK(t.core->reload_dialplan(problems));
    std::string report;
    t.core->reload(report);
    std::this_thread::sleep_for(100ms);
    CHECK(t.core->channel_count() == 100);

    std::string msg;
    CHECK_FALSE(t.core->modules().unload("chan_local", msg));
    CHECK(msg.find("in use") != std::string::npos);

    for (auto& c : t.core->channels()) c->request_hangup();
    CHECK(t.wait_for([&] { return t.core->channel_count() == 0; }));
    CHECK(t.core->modules().unload("chan_local", msg));
    int cause = 0;
    CHECK(t.core->request_channel("Local/w@t", nullptr, cause) == nullptr);
    CHECK(cause == cause::requested_chan_unavail);
    CHECK(t.core->modules().load("chan_local", msg));
}

TEST_CASE("core: originate that is never answered times out") {
    test::TestCore t("[t]\nexten => r,1,Ringing()\n same => n,Wait(3600)\n");
    dialplan::OriginateTarget target;
    target.app = "Wait";
    target.app_args = "1";
    target.timeout = 1s;
    std::string error;
    REQUIRE(!dialplan::originate(*t.core, "Local/r@t", target, error).empty());
    CHECK(t.wait_for([&] { return t.core->channel_count() == 2; }));
    CHECK(t.wait_for([&] { return t.core->channel_count() == 0; }, 5s));
    CHECK(dialplan::originate(*t.core, "Nope/r@t", target, error).empty());
    CHECK(error.find("REQUESTED_CHAN_UNAVAIL") != std::string::npos);
}

TEST_CASE("core: module loader refuses bad modules by name and keeps running") {
    test::TestCore t;
    std::string msg;
    CHECK_FALSE(t.core->modules().load(TANDEM_TEST_MODULE_DIR "/test_mod_bad_abi.so", msg));
    CHECK(msg.find("rebuild it against Tandem SDK") != std::string::npos);
    CHECK_FALSE(t.core->modules().load(TANDEM_TEST_MODULE_DIR "/test_mod_fails.so", msg));
    CHECK(msg.find("test_mod_fails failed to load: cannot open /nonexistent/device") != std::string::npos);
    CHECK_FALSE(t.core->applications().contains("TestFails"));
    CHECK_FALSE(t.core->modules().load(TANDEM_TEST_MODULE_DIR "/test_mod_needs_missing.so", msg));
    CHECK(msg.find("no_such_module") != std::string::npos);
    CHECK_FALSE(t.core->modules().load("/nonexistent/x.so", msg));
    CHECK(msg.find("no such file") != std::string::npos);
    CHECK(t.core->modules().load(TANDEM_TEST_MODULE_DIR "/test_mod_good.so", msg));
    CHECK(t.core->applications().contains("TestGood"));
    CHECK_FALSE(t.core->modules().load(TANDEM_TEST_MODULE_DIR "/test_mod_good.so", msg));
    {
        auto lease = t.core->applications().find("TestGood");
        CHECK_FALSE(t.core->modules().unload("test_mod_good", msg));
        CHECK(msg.find("in use") != std::string::npos);
    }
    CHECK(t.core->modules().unload("test_mod_good", msg));
    CHECK_FALSE(t.core->applications().contains("TestGood"));
    CHECK_FALSE(t.core->cli_commands().contains("testgood hello"));
}

TEST_CASE("core: CLI dispatch, usage, completion") {
    test::TestCore t;
    auto [s1, o1] = cli(*t.core, "core show version");
    CHECK(s1 == 0);
    CHECK(o1.find("Tandem") != std::string::npos);
    auto [s2, o2] = cli(*t.core, "core   show  bogus");
    CHECK(s2 == cli_status::not_found);
    auto [s3, o3] = cli(*t.core, "logger set level");
    CHECK(s3 == cli_status::usage);
    CHECK(o3.find("Usage: logger set level") != std::string::npos);
    auto [s4, o4] = cli(*t.core, "database put fam key \"two words\"");
    CHECK(s4 == 0);
    CHECK(t.core->kv().get("fam", "key") == "two words");

    auto c = complete_cli_line(*t.core, "core sh");
    CHECK(c == std::vector<std::string>{"show"});
    c = complete_cli_line(*t.core, "core show ch");
    CHECK(c == std::vector<std::string>{"channel", "channels"});
    c = complete_cli_line(*t.core, "module unload chan_l");
    CHECK(c == std::vector<std::string>{"chan_local"});
    c = complete_cli_line(*t.core, "logger set level w");
    CHECK(c == std::vector<std::string>{"warning"});
    CHECK(tokenize_cli("a  \"b c\" d") == std::vector<std::string>{"a", "b c", "d"});
}

TEST_CASE("core: CDRs reach the back-end when calls end, and maxcalls is enforced") {
    test::TestCore t("[t]\nexten => 1,1,Answer()\n same => n,Set(CDR_NOTE=x)\n same => n,Hangup()\n");
    dialplan::OriginateTarget target;
    target.app = "Wait";
    target.app_args = "0";
    std::string error;
    REQUIRE(!dialplan::originate(*t.core, "Local/1@t", target, error).empty());
    CHECK(t.wait_for([&] { return t.core->channel_count() == 0; }));
    t.core->cdr().drain();
    auto csv = t.dir / "log" / "cdr-csv" / "Master.csv";
    CHECK(t.wait_for([&] { return std::filesystem::exists(csv); }));
    std::ifstream in(csv);
    std::string line;
    int lines = 0;
    bool answered = false;
    while (std::getline(in, line)) {
        ++lines;
        answered = answered || line.find("\"ANSWERED\"") != std::string::npos;
    }
    CHECK(lines == 2);
    CHECK(answered);
}

TEST_CASE("core: modules.conf noload, load and require") {
    {
        test::TestCore t({}, false);
        std::ofstream(t.dir / "etc" / "modules.conf") << "[modules]\nautoload = yes\nnoload => cdr_csv.so\n";
        std::vector<std::string> problems;
        REQUIRE(t.core->start(problems));
        std::vector<std::string> names;
        for (auto& m : t.core->modules().list()) names.push_back(m.name);
        CHECK(std::find(names.begin(), names.end(), "chan_local") != names.end());
        CHECK(std::find(names.begin(), names.end(), "cdr_csv") == names.end());
    }
    {
        test::TestCore t({}, false);
        std::ofstream(t.dir / "etc" / "modules.conf") << "[modules]\nautoload = no\nload => cdr_csv\n";
        std::vector<std::string> problems;
        REQUIRE(t.core->start(problems));
        auto list = t.core->modules().list();
        REQUIRE(list.size() == 1);
        CHECK(list[0].name == "cdr_csv");
    }
    {
        test::TestCore t({}, false);
        std::ofstream(t.dir / "etc" / "modules.conf")
            << "[modules]\nautoload = yes\nrequire => res_missing\nbogus = 1\n";
        std::vector<std::string> problems;
        CHECK_FALSE(t.core->start(problems));
        std::string all;
        for (auto& p : problems) all += p + "\n";
        CHECK(all.find("res_missing") != std::string::npos);
        CHECK(all.find("modules.conf:4: unknown modules.conf option 'bogus'") != std::string::npos);
    }
}

TEST_CASE("core: inherited variables pass one generation with _ and all with __") {
    test::TestCore t;
    auto mk = [&] {
        return t.core->create_channel("Trace", "Trace/x", std::make_unique<NullDriver>(), t.core->pick_loop());
    };
    auto a = mk(), b = mk(), c = mk();
    a->set_variable("_ONE", "1");
    a->set_variable("__ALL", "2");
    a->set_variable("PLAIN", "3");
    b->inherit_from(*a);
    c->inherit_from(*b);
    CHECK(b->variable("ONE") == "1");
    CHECK(b->variable("ALL") == "2");
    CHECK_FALSE(b->variable("PLAIN"));
    CHECK_FALSE(c->variable("ONE"));
    CHECK(c->variable("ALL") == "2");
    CHECK(c->linkedid() == a->linkedid());
    for (auto& ch : {a, b, c}) boost::asio::post(ch->loop(), [&t, ch] { t.core->end_channel(ch); });
    CHECK(t.wait_for([&] { return t.core->channel_count() == 0; }));
}
