// The dialplan compiler and lookups, without a running core.
#include "dialplan/dialplan.hpp"

#include <doctest/doctest.h>

using namespace tandem;
using namespace tandem::dialplan;

namespace {

Registry<Application>& fake_apps() {
    static Registry<Application> apps(true);
    static std::vector<Registration> regs;
    if (regs.empty()) {
        auto noop = [](Channel&, const AppArgs&) -> awaitable<AppResult> { co_return AppResult::next; };
        regs.push_back(apps.add("NoOp", {"", "NoOp()", "", 0, -1, noop}, nullptr));
        regs.push_back(apps.add("Wait", {"", "Wait(seconds)", "", 1, 1, noop}, nullptr));
        regs.push_back(apps.add("Dial", {"", "Dial(dest[,timeout])", "", 1, 3, noop}, nullptr));
        regs.push_back(apps.add("Answer", {"", "Answer()", "", 0, 1, noop}, nullptr));
    }
    return apps;
}

std::shared_ptr<const Snapshot> build(const std::string& text, std::vector<config::Diagnostic>& problems) {
    auto parsed = config::parse_text(text, "extensions.conf", ".");
    for (auto& e : parsed.errors) problems.push_back(e);
    return compile(parsed.file, &fake_apps(), problems);
}

const Extension* find(const Snapshot& s, std::string_view ctx, std::string_view ext, std::string_view cid = "") {
    return find_extension(s, ctx, ext, cid, std::chrono::system_clock::now());
}

}  // namespace

TEST_CASE("dialplan: priorities, same, labels and hints") {
    std::vector<config::Diagnostic> p;
    auto s = build(
        "[c]\nexten => 100,1,Answer()\n same => n(loop),NoOp(x)\n same => n,Wait(1)\n"
        "exten => 100,hint,SIP/100\nexten => 100,10,NoOp()\n",
        p);
    REQUIRE(s);
    CHECK(p.empty());
    auto* e = find(*s, "c", "100");
    REQUIRE(e);
    CHECK(e->priorities.size() == 4);
    CHECK(e->find_priority(2)->app == "NoOp");
    CHECK(e->find_label("loop") == 2);
    CHECK(e->find_priority(3)->args == "1");
    CHECK(e->find_priority(10));
    CHECK(e->hint == "SIP/100");
}

TEST_CASE("dialplan: exact before patterns, patterns in Asterisk order, includes last") {
    std::vector<config::Diagnostic> p;
    auto s = build(
        "[c]\nexten => _X.,1,NoOp(any)\nexten => _1XX,1,NoOp(1xx)\nexten => _12X,1,NoOp(12x)\n"
        "exten => 123,1,NoOp(exact)\ninclude => other\n[other]\nexten => 999,1,NoOp(other)\n",
        p);
    REQUIRE(s);
    CHECK(find(*s, "c", "123")->priorities[0].args == "exact");
    CHECK(find(*s, "c", "124")->priorities[0].args == "12x");
    CHECK(find(*s, "c", "134")->priorities[0].args == "1xx");
    CHECK(find(*s, "c", "5555")->priorities[0].args == "any");
    // The own context's _X. catches 999 before the include is searched, as in Asterisk.
    CHECK(find(*s, "c", "999")->priorities[0].args == "any");
    CHECK(find(*s, "other", "999")->priorities[0].args == "other");
    CHECK(find(*s, "missing", "1") == nullptr);
}

TEST_CASE("dialplan: caller-id matching prefers the specific variant") {
    std::vector<config::Diagnostic> p;
    auto s = build(
        "[c]\nexten => 100,1,NoOp(anyone)\nexten => 100/1001,1,NoOp(boss)\n"
        "exten => 100/_2XXX,1,NoOp(2xxx)\n",
        p);
    REQUIRE(s);
    CHECK(find(*s, "c", "100", "1001")->priorities[0].args == "boss");
    CHECK(find(*s, "c", "100", "2345")->priorities[0].args == "2xxx");
    CHECK(find(*s, "c", "100", "5555")->priorities[0].args == "anyone");
}

TEST_CASE("dialplan: include loops terminate; time-limited includes") {
    std::vector<config::Diagnostic> p;
    auto s = build(
        "[a]\ninclude => b\n[b]\ninclude => a\nexten => 1,1,NoOp()\n"
        "[t]\ninclude => never,0:00-0:00,*,*,feb&jan\ninclude => always,*,*,*,*\n"
        "[never]\nexten => 5,1,NoOp(never)\n[always]\nexten => 5,1,NoOp(always)\n",
        p);
    REQUIRE(s);
    CHECK(find(*s, "a", "1"));
    CHECK(find(*s, "a", "2") == nullptr);
    // The first include only opens one minute a day in two months; the second always.
    auto* e = find(*s, "t", "5");
    REQUIRE(e);
}

TEST_CASE("dialplan: errors carry file:line and reject the whole plan") {
    std::vector<config::Diagnostic> p;
    auto s = build(
        "[c]\nexten => 1,1,NoOp()\nexten => 2,1,Bogus(x)\nexten => 3,x,NoOp()\n"
        "exten => 4,1,Wait()\nexten => 5,1,Wait(1,2)\nexten => 6,n,NoOp()\nsame => n,NoOp()\n"
        "exten => 1,1,NoOp(dup)\nexten => _[,1,NoOp()\nexten => 7,1,Dial(a\nfoo => bar\n",
        p);
    CHECK(s == nullptr);
    std::string all;
    for (auto& d : p) all += d.str() + "\n";
    CHECK(all.find("extensions.conf:3: unknown application 'Bogus'") != std::string::npos);
    CHECK(all.find("extensions.conf:4: priority must be a number") != std::string::npos);
    CHECK(all.find("extensions.conf:5: Wait takes 1 argument, got 0") != std::string::npos);
    CHECK(all.find("extensions.conf:6: Wait takes 1 argument, got 2") != std::string::npos);
    CHECK(all.find("extensions.conf:7: priority 'n' of '6' follows no earlier priority") != std::string::npos);
    CHECK(all.find("extensions.conf:9: duplicate priority 1 of extension '1'") != std::string::npos);
    CHECK(all.find("extensions.conf:10: bad pattern") != std::string::npos);
    CHECK(all.find("extensions.conf:11: missing ')'") != std::string::npos);
    CHECK(all.find("extensions.conf:12: unknown dialplan statement 'foo'") != std::string::npos);
}

TEST_CASE("dialplan: globals, general and warnings for unknown includes") {
    std::vector<config::Diagnostic> p;
    auto s = build("[general]\nstatic=yes\n[globals]\nA=1\nB=two words\n[c]\ninclude => nowhere\n", p);
    REQUIRE(s);
    CHECK(s->globals.size() == 2);
    CHECK(s->globals[1].second == "two words");
    REQUIRE(s->warnings.size() == 1);
    CHECK(s->warnings[0].find("nowhere") != std::string::npos);
}

TEST_CASE("dialplan: old App,args syntax and Goto targets") {
    std::vector<config::Diagnostic> p;
    auto s = build("[c]\nexten => 1,1,Wait,2\n", p);
    REQUIRE(s);
    CHECK(find(*s, "c", "1")->priorities[0].args == "2");
    auto g = parse_goto("ctx,100,label");
    CHECK(g.context == "ctx");
    CHECK(g.exten == "100");
    CHECK(g.priority == "label");
    CHECK(parse_goto("5").priority == "5");
    CHECK(parse_goto("200,1").exten == "200");
}

TEST_CASE("dialplan: time specs") {
    std::string err;
    auto t = TimeSpec::parse("9:00-17:00,mon-fri,*,*", err);
    REQUIRE(t);
    std::tm tm{};
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 10;   // November
    tm.tm_mday = 23;  // a Monday
    tm.tm_hour = 10;
    tm.tm_isdst = -1;
    auto monday10 = std::chrono::system_clock::from_time_t(std::mktime(&tm));
    CHECK(t->matches(monday10));
    tm.tm_mday = 22;  // Sunday
    CHECK_FALSE(t->matches(std::chrono::system_clock::from_time_t(std::mktime(&tm))));
    tm.tm_mday = 23;
    tm.tm_hour = 18;
    CHECK_FALSE(t->matches(std::chrono::system_clock::from_time_t(std::mktime(&tm))));
    auto wrap = TimeSpec::parse("22:00-6:00,fri-mon,*,dec-feb", err);
    REQUIRE(wrap);
    CHECK_FALSE(TimeSpec::parse("9-17,*,*,*", err));
    CHECK_FALSE(TimeSpec::parse("*,funday,*,*", err));
    CHECK_FALSE(TimeSpec::parse("*,*,*", err));
    CHECK_FALSE(TimeSpec::parse("*,*,32,*", err));
}
