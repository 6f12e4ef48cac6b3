// Unit tests for tandem::config: the .conf parser and typed option binding.
#include <doctest/doctest.h>

#include <tandem/config.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace tandem::config;
using namespace std::chrono_literals;

namespace {

// A unique scratch directory under the system temp dir, removed on scope exit.
class TempDir {
public:
    TempDir() {
        static std::atomic<unsigned> counter{0};
        std::random_device rd;
        const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
        root_ = fs::temp_directory_path() / ("tandem-config-test-" + std::to_string(rd()) + "-" +
                                             std::to_string(stamp) + "-" + std::to_string(counter++));
        fs::create_directories(root_);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    // Writes `content` byte for byte to root/rel; returns the full path.
    fs::path write(const std::string& rel, const std::string& content) const {
        const fs::path p = root_ / rel;
        fs::create_directories(p.parent_path());
        std::ofstream out(p, std::ios::binary);
        out << content;
        return p;
    }
    const fs::path& root() const { return root_; }
    std::string path(const std::string& rel) const { return (root_ / rel).string(); }

private:
    fs::path root_;
};

ParseResult text(std::string_view t, std::string name = "t.conf") {
    return parse_text(t, std::move(name), fs::path("."));
}

std::vector<std::string> error_strings(const std::vector<Diagnostic>& d) {
    std::vector<std::string> out;
    for (const auto& e : d) out.push_back(e.str());
    return out;
}

std::vector<std::string> values(const Section& s) {
    std::vector<std::string> out;
    for (const auto& v : s.variables) out.push_back(v.name + "=" + v.value);
    return out;
}

using Strings = std::vector<std::string>;

}  // namespace

// --- basic structure ---------------------------------------------------------------

TEST_CASE("config: sections, both operators, general section, duplicate keys") {
    const auto r = text(
        "top = 1\n"
        "\n"
        "[general]\n"
        "  bindport   =   5060  \n"
        "context=default\n"
        "[default]\n"
        "exten => 100,1,Answer()\n"
        "exten => 100,n,Hangup()\n"
        "same=>n,NoOp(x)\n");
    REQUIRE(r.ok());
    REQUIRE(r.file.sections.size() == 3);
    CHECK(r.file.path == "t.conf");

    const Section* top = r.file.section("");
    REQUIRE(top);
    CHECK(top->get("top") == "1");
    CHECK(top->variables[0].where.str() == "t.conf:1");

    const Section* g = r.file.section("general");
    REQUIRE(g);
    CHECK(g->where.str() == "t.conf:3");
    CHECK(g->get("bindport") == "5060");
    CHECK(g->get("context") == "default");
    CHECK_FALSE(g->find("bindport")->object);
    CHECK(g->get("missing", "fallback") == "fallback");
    CHECK(g->find("missing") == nullptr);

    const Section* d = r.file.section("default");
    REQUIRE(d);
    CHECK(values(*d) == Strings{"exten=100,1,Answer()", "exten=100,n,Hangup()", "same=n,NoOp(x)"});
    CHECK(d->variables[0].object);
    CHECK(d->variables[2].object);
    CHECK(d->variables[1].where.line == 8);
    const auto exts = d->all("exten");
    REQUIRE(exts.size() == 2);
    CHECK(exts[0]->value == "100,1,Answer()");
    CHECK(d->find("exten")->value == "100,n,Hangup()");  // last one wins
    CHECK(r.file.section("nope") == nullptr);
}

TEST_CASE("config: variable lookup ignores case, section names do not") {
    const auto r = text("[Ctx]\nPort=1\nport=2\n");
    REQUIRE(r.ok());
    REQUIRE(r.file.section("Ctx"));
    CHECK(r.file.section("ctx") == nullptr);
    CHECK(r.file.section("Ctx")->get("PORT") == "2");
    CHECK(r.file.section("Ctx")->all("port").size() == 2);
}

TEST_CASE("config: empty input and value-less variables") {
    CHECK(text("").file.sections.empty());
    CHECK(text("\n\n   \n; only comments\n").file.sections.empty());
    const auto r = text("[s]\nempty =\nobj =>\n");
    REQUIRE(r.ok());
    CHECK(r.file.section("s")->find("empty")->value.empty());
    CHECK(r.file.section("s")->find("obj")->object);
    CHECK(text("[s]\n").file.section("s")->variables.empty());
}

TEST_CASE("config: Location and Diagnostic formatting") {
    CHECK(Location{"a.conf", 3}.str() == "a.conf:3");
    CHECK(Location{"a.conf", 0}.str() == "a.conf");
    CHECK(Diagnostic{{"a.conf", 7}, "boom"}.str() == "a.conf:7: boom");
}

// --- comments, escapes, quotes ---------------------------------------------------

TEST_CASE("config: line comments, escaped semicolons and quotes") {
    const auto r = text(
        "; a full-line comment\n"
        "[s] ; comment after a header\n"
        "a = 1 ; trailing comment\n"
        "b = x\\;y\n"
        "c = \"q;uoted\" ; real comment\n"
        "d = \"unterminated ; still value\n"
        "e = back\\,slash \\n \\\\ kept\n"
        "f = \\\"; comment after an escaped quote\n"
        "g=;nothing\n");
    REQUIRE(r.ok());
    const Section& s = *r.file.section("s");
    CHECK(s.get("a") == "1");
    CHECK(s.get("b") == "x;y");
    CHECK(s.get("c") == "\"q;uoted\"");
    CHECK(s.get("d") == "\"unterminated ; still value");
    CHECK(s.get("e") == "back\\,slash \\n \\\\ kept");
    CHECK(s.get("f") == "\\\"");
    CHECK(s.get("g").empty());
}

TEST_CASE("config: block comments, single line, multi line, mid line, nested") {
    const auto r = text(
        "[s]\n"                                  // 1
        "a = 1 ;-- inline --; 2\n"               // 2
        ";-- spanning\n"                         // 3
        "hidden = yes\n"                         // 4
        "--;\n"                                  // 5
        "b = start ;-- begins mid line\n"        // 6
        "hidden2 = yes\n"                        // 7
        "ends mid line --; c = after\n"          // 8
        ";-- outer ;-- inner --; still outer\n"  // 9
        "hidden3 = yes\n"                        // 10
        "--; d = 4\n"                            // 11
        "e = \"x ;-- not a comment --;\"\n");    // 12
    REQUIRE(r.ok());
    const Section& s = *r.file.section("s");
    CHECK(values(s) == Strings{"a=1  2", "b=start", "c=after", "d=4", "e=\"x ;-- not a comment --;\""});
    CHECK(s.find("c")->where.line == 8);
    CHECK(s.find("d")->where.line == 11);
}

TEST_CASE("config: unterminated block comment is reported where it began") {
    const auto r = text("[s]\na = 1\n;-- never closed\nb = 2\nc = 3\n", "blk.conf");
    CHECK(error_strings(r.errors) == Strings{"blk.conf:3: unterminated block comment (';--' without matching '--;')"});
    CHECK(values(*r.file.section("s")) == Strings{"a=1"});
}

// --- malformed input ---------------------------------------------------------

TEST_CASE("config: malformed lines are reported with file:line and parsing continues") {
    const auto r = text(
        "[ok]\n"                 // 1
        "garbage\n"              // 2
        "[unterminated\n"        // 3
        " = value\n"             // 4
        "=> obj\n"               // 5
        "[]\n"                   // 6
        "[x] trailing\n"         // 7
        "#bogus thing\n"         // 8
        "#include\n"             // 9
        "#include \"half\n"      // 10
        "#include <a.conf> b\n"  // 11
        "good = yes\n",          // 12
        "bad.conf");
    CHECK(error_strings(r.errors) ==
          Strings{
              "bad.conf:2: expected 'name = value', '[section]' or a directive, got 'garbage'",
              "bad.conf:3: unterminated section header '[unterminated'",
              "bad.conf:4: missing variable name before '='",
              "bad.conf:5: missing variable name before '=>'",
              "bad.conf:6: empty section name",
              "bad.conf:7: unexpected text after section header [x]: 'trailing'",
              "bad.conf:8: unknown directive '#bogus'",
              "bad.conf:9: #include requires a file name",
              "bad.conf:10: #include: unterminated file name '\"half'",
              "bad.conf:11: #include: unexpected text after file name '<a.conf> b'",
          });
    CHECK_FALSE(r.ok());
    // [x] still opened despite its trailing text, and later lines still parse.
    REQUIRE(r.file.section("x"));
    CHECK(r.file.section("x")->get("good") == "yes");
    CHECK(r.file.section("ok")->variables.empty());
}

TEST_CASE("config: binary junk and NUL bytes are reported, not fatal") {
    std::string t = "[s]\na = 1\n";
    t += std::string("b = x\0y\n", 8);
    t += "\x01\x02\x7f\xff\xfe junk\n";
    t += "c = 3\n";
    const auto r = text(t, "bin.conf");
    CHECK(error_strings(r.errors) == Strings{"bin.conf:3: line contains binary data (byte 0x00); ignored",
                                             "bin.conf:4: line contains binary data (byte 0x01); ignored"});
    CHECK(values(*r.file.section("s")) == Strings{"a=1", "c=3"});

    // High-bit bytes alone (UTF-8 text) are fine; control bytes inside a
    // comment are ignored with the comment.
    const auto u = text("[s]\nname = Zo\xC3\xAB ; \x01\x02\n");
    CHECK(u.ok());
    CHECK(u.file.section("s")->get("name") == "Zo\xC3\xAB");
}

TEST_CASE("config: a wholly binary file stops after too many errors") {
    std::mt19937 rng(42);
    std::string junk;
    for (int i = 0; i < 200000; ++i) junk += static_cast<char>(rng() & 0xFF);
    const auto r = text(junk, "noise.conf");
    CHECK_FALSE(r.ok());
    CHECK(r.errors.size() <= 101);
    CHECK(r.errors.back().message == "too many errors; ignoring the rest of this file");
}

TEST_CASE("config: CRLF line endings, UTF-8 BOM and very long lines") {
    const auto crlf = text("[s]\r\na = 1\r\nb => 2 ; c\r\n\r\n", "crlf.conf");
    REQUIRE(crlf.ok());
    CHECK(values(*crlf.file.section("s")) == Strings{"a=1", "b=2"});
    CHECK(crlf.file.section("s")->find("b")->where.line == 3);

    const auto bom = text("\xEF\xBB\xBF[s]\na = 1\n");
    REQUIRE(bom.ok());
    CHECK(bom.file.section("s"));

    const std::string big(1 << 20, 'x');
    const auto longline = text("[s]\nk = " + big + "\nafter = 1\n");
    REQUIRE(longline.ok());
    CHECK(longline.file.section("s")->get("k") == big);
    CHECK(longline.file.section("s")->get("after") == "1");

    const auto no_final_newline = text("[s]\nlast = 1");
    CHECK(no_final_newline.file.section("s")->get("last") == "1");
}

// --- templates and re-opened sections ---------------------------------------------

TEST_CASE("config: templates, multiple and chained inheritance") {
    const auto r = text(
        "[base](!)\n"              // 1
        "type = friend\n"          // 2
        "host = dynamic\n"         // 3
        "[codecs](!)\n"            // 4
        "allow = ulaw\n"           // 5
        "[both](!,base,codecs)\n"  // 6
        "nat = yes\n"              // 7
        "[100](both)\n"            // 8
        "host = 10.0.0.1\n"        // 9
        "[200](codecs,base)\n",    // 10
        "sip.conf");
    REQUIRE(r.ok());
    const File& f = r.file;
    REQUIRE(f.sections.size() == 5);
    CHECK(f.section("base")->is_template);
    CHECK(f.section("both")->is_template);
    CHECK_FALSE(f.section("100")->is_template);

    const Section& both = *f.section("both");
    CHECK(both.templates == Strings{"base", "codecs"});
    CHECK(values(both) == Strings{"type=friend", "host=dynamic", "allow=ulaw", "nat=yes"});

    const Section& s100 = *f.section("100");
    CHECK(s100.templates == Strings{"both"});
    CHECK(values(s100) == Strings{"type=friend", "host=dynamic", "allow=ulaw", "nat=yes", "host=10.0.0.1"});
    CHECK(s100.get("host") == "10.0.0.1");  // own value overrides the template's
    // Inherited variables keep the template's own lines.
    CHECK(s100.find("type")->where.str() == "sip.conf:2");
    CHECK(s100.find("nat")->where.str() == "sip.conf:7");
    CHECK(s100.where.str() == "sip.conf:8");

    const Section& s200 = *f.section("200");
    CHECK(values(s200) == Strings{"allow=ulaw", "type=friend", "host=dynamic"});
}

TEST_CASE("config: unknown template and self inheritance are errors") {
    const auto r = text("[a](nosuch)\nx = 1\n[a](a)\n[b](!, ,a)\n", "tpl.conf");
    CHECK(error_strings(r.errors) == Strings{"tpl.conf:1: unknown template 'nosuch' for section [a]",
                                             "tpl.conf:3: section [a] cannot inherit from itself",
                                             "tpl.conf:4: empty template name in section header [b]"});
    REQUIRE(r.file.section("a"));
    CHECK(r.file.section("a")->get("x") == "1");
    CHECK(r.file.section("a")->templates.empty());
    CHECK(r.file.section("b")->templates == Strings{"a"});
}

TEST_CASE("config: re-opened sections and (+) append to the same Section") {
    const auto r = text(
        "[ctx]\n"
        "exten => 1,1,NoOp()\n"
        "[other]\n"
        "a = 1\n"
        "[ctx]\n"
        "exten => 2,1,NoOp()\n"
        "[other](+)\n"
        "b = 2\n",
        "ext.conf");
    REQUIRE(r.ok());
    REQUIRE(r.file.sections.size() == 2);
    CHECK(r.file.sections[0].name == "ctx");
    CHECK(r.file.sections[0].where.line == 1);
    CHECK(values(r.file.sections[0]) == Strings{"exten=1,1,NoOp()", "exten=2,1,NoOp()"});
    CHECK(values(r.file.sections[1]) == Strings{"a=1", "b=2"});

    const auto bad = text("[fresh](+)\nx = 1\n", "ext.conf");
    CHECK(error_strings(bad.errors) ==
          Strings{"ext.conf:1: cannot append to section [fresh]: it has not been declared"});
    CHECK(bad.file.section("fresh")->get("x") == "1");
}

// --- includes ---------------------------------------------------------------------

TEST_CASE("config: #include inside a section continues that section") {
    TempDir dir;
    dir.write("sub/ext-extra.conf", "exten => 2,1,Playback(hello)\nexten => 2,n,Hangup()\n");
    const auto main = dir.write("extensions.conf",
                                "[default]\n"
                                "exten => 1,1,Answer()\n"
                                "#include \"sub/ext-extra.conf\"\n"
                                "exten => 3,1,Answer()\n");
    const auto r = parse_file(main);
    REQUIRE(r.ok());
    CHECK(r.file.path == main.string());
    const Section& d = *r.file.section("default");
    CHECK(values(d) ==
          Strings{"exten=1,1,Answer()", "exten=2,1,Playback(hello)", "exten=2,n,Hangup()", "exten=3,1,Answer()"});
    CHECK(d.variables[1].where.str() == dir.path("sub/ext-extra.conf") + ":1");
    CHECK(d.variables[2].where.str() == dir.path("sub/ext-extra.conf") + ":2");
    CHECK(d.variables[3].where.str() == main.string() + ":4");
    CHECK(r.file.files_read == Strings{main.string(), dir.path("sub/ext-extra.conf")});
}

TEST_CASE("config: include forms, nested relative paths and absolute paths") {
    TempDir dir;
    dir.write("a/inner.conf", "inner = 1\n#include deeper/d.conf\n");
    dir.write("a/deeper/d.conf", "deep = 1\n");  // relative to a/, not to the top file
    dir.write("b.conf", "angle = 1\n");
    dir.write("abs.conf", "abs = 1\n");
    const auto main = dir.write("main.conf",
                                "[s]\n"
                                "#include a/inner.conf ; bare, with a comment\n"
                                "#include <b.conf>\n"
                                "#include \"" +
                                    dir.path("abs.conf") +
                                    "\"\n"
                                    "#tryinclude \"b.conf\"\n");
    const auto r = parse_file(main);
    REQUIRE(r.ok());
    CHECK(values(*r.file.section("s")) == Strings{"inner=1", "deep=1", "angle=1", "abs=1", "angle=1"});
    CHECK(r.file.files_read.size() == 6);
    CHECK(r.file.section("s")->find("deep")->where.str() == dir.path("a/deeper/d.conf") + ":1");
}

TEST_CASE("config: sections opened in an included file stay current") {
    TempDir dir;
    dir.write("peers.conf", "[peer1]\nsecret = x\n");
    const auto main = dir.write("sip.conf", "[general]\n#include peers.conf\nafter = 1\n");
    const auto r = parse_file(main);
    REQUIRE(r.ok());
    CHECK(r.file.section("general")->variables.empty());
    CHECK(values(*r.file.section("peer1")) == Strings{"secret=x", "after=1"});
    CHECK(r.file.section("peer1")->where.str() == dir.path("peers.conf") + ":1");
}

TEST_CASE("config: glob includes are read in sorted order; an empty glob is fine") {
    TempDir dir;
    dir.write("conf.d/20-b.conf", "order = 20\n");
    dir.write("conf.d/03-a.conf", "order = 03\n");
    dir.write("conf.d/10-c.conf", "order = 10\n");
    dir.write("conf.d/99-skip.txt", "order = nope\n");
    dir.write("conf.d/.hidden.conf", "order = hidden\n");
    dir.write("conf.d/sub.conf/x.conf", "order = dir\n");  // a directory matching *.conf
    dir.write("other/a1.conf", "order = a1\n");
    dir.write("other/b2.conf", "order = b2\n");
    const auto main = dir.write("main.conf",
                                "[s]\n"
                                "#include \"conf.d/*.conf\"\n"
                                "#include \"empty.d/*.conf\"\n"
                                "#include other/[a-z]?.conf\n"
                                "#tryinclude \"nothing-*.conf\"\n");
    const auto r = parse_file(main);
    REQUIRE(r.ok());
    Strings order;
    for (const auto* v : r.file.section("s")->all("order")) order.push_back(v->value);
    CHECK(order == Strings{"03", "10", "20", "a1", "b2"});
    CHECK(r.file.files_read == Strings{main.string(), dir.path("conf.d/03-a.conf"), dir.path("conf.d/10-c.conf"),
                                       dir.path("conf.d/20-b.conf"), dir.path("other/a1.conf"),
                                       dir.path("other/b2.conf")});
}

TEST_CASE("config: missing include is an error, #tryinclude is not") {
    TempDir dir;
    const auto main = dir.write("main.conf",
                                "[s]\n"
                                "a = 1\n"
                                "#include \"missing.conf\"\n"
                                "#tryinclude \"also-missing.conf\"\n"
                                "#include \"adir\"\n"
                                "b = 2\n");
    fs::create_directories(dir.root() / "adir");
    const auto r = parse_file(main);
    CHECK(error_strings(r.errors) ==
          Strings{main.string() + ":3: cannot read include file '" + dir.path("missing.conf") +
                      "': No such file or directory",
                  main.string() + ":5: cannot read include file '" + dir.path("adir") + "': is a directory"});
    CHECK(values(*r.file.section("s")) == Strings{"a=1", "b=2"});
}

TEST_CASE("config: include loops are detected, repeated includes are not loops") {
    TempDir dir;
    dir.write("a.conf", "a = 1\n#include b.conf\n");
    dir.write("b.conf", "b = 1\n#include \"./a.conf\"\n");
    const auto main = dir.write("main.conf", "[s]\n#include a.conf\n");
    const auto r = parse_file(main);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].where.str() == dir.path("b.conf") + ":2");
    CHECK(r.errors[0].message == "include loop: " + main.string() + " -> " + dir.path("a.conf") + " -> " +
                                     dir.path("b.conf") + " -> " + dir.path("a.conf"));
    CHECK(values(*r.file.section("s")) == Strings{"a=1", "b=1"});

    const auto self = dir.write("self.conf", "x = 1\n#include self.conf\n");
    const auto rs = parse_file(self);
    REQUIRE(rs.errors.size() == 1);
    CHECK(rs.errors[0].where.str() == self.string() + ":2");

    dir.write("common.conf", "c = 1\n");
    const auto twice = dir.write("twice.conf", "#include common.conf\n#include common.conf\n");
    const auto rt = parse_file(twice);
    REQUIRE(rt.ok());
    CHECK(rt.file.section("")->all("c").size() == 2);
}

TEST_CASE("config: include depth is limited to 32") {
    TempDir dir;
    // f0 includes f1 ... each file i sets level=i.
    const auto chain = [&](int files) {
        for (int i = 0; i < files; ++i) {
            std::string body = "level = " + std::to_string(i) + "\n";
            if (i + 1 < files) body += "#include f" + std::to_string(i + 1) + ".conf\n";
            dir.write("f" + std::to_string(i) + ".conf", body);
        }
    };
    chain(33);  // f0 plus 32 nested levels: allowed
    const auto ok = parse_file(dir.root() / "f0.conf");
    CHECK(ok.ok());
    CHECK(ok.file.section("")->get("level") == "32");

    chain(40);
    const auto deep = parse_file(dir.root() / "f0.conf");
    REQUIRE(deep.errors.size() == 1);
    CHECK(deep.errors[0].where.str() == dir.path("f32.conf") + ":2");
    CHECK(deep.errors[0].message.starts_with("includes nested too deeply (limit 32)"));
    CHECK(deep.file.section("")->get("level") == "32");
}

TEST_CASE("config: #exec is refused") {
    const auto r = text("[s]\n#exec /bin/echo x = 1\ny = 2\n", "exec.conf");
    CHECK(error_strings(r.errors) == Strings{"exec.conf:2: #exec is not supported"});
    CHECK(values(*r.file.section("s")) == Strings{"y=2"});
}

TEST_CASE("config: parse_text resolves includes against include_base") {
    TempDir dir;
    dir.write("x.conf", "from_x = 1\n");
    const auto r = parse_text("[s]\n#include x.conf\n", "<memory>", dir.root());
    REQUIRE(r.ok());
    CHECK(r.file.path == "<memory>");
    CHECK(r.file.section("s")->get("from_x") == "1");
    CHECK(r.file.files_read == Strings{dir.path("x.conf")});
}

TEST_CASE("config: included files get their own BOM, CRLF and comment handling") {
    TempDir dir;
    dir.write("inc.conf", "\xEF\xBB\xBFinc = 1\r\n;-- open\r\n");
    const auto main = dir.write("main.conf", "[s]\n#include inc.conf\nafter = 1\n");
    const auto r = parse_file(main);
    // The unterminated block comment belongs to inc.conf and does not swallow
    // the rest of main.conf.
    CHECK(error_strings(r.errors) ==
          Strings{dir.path("inc.conf") + ":2: unterminated block comment (';--' without matching '--;')"});
    CHECK(values(*r.file.section("s")) == Strings{"inc=1", "after=1"});
}

TEST_CASE("config: an unreadable top-level file is a diagnostic, not an exception") {
    TempDir dir;
    const auto r = parse_file(dir.root() / "nope.conf");
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].str() == dir.path("nope.conf") + ": cannot read config file: No such file or directory");
    CHECK(r.file.sections.empty());
    CHECK(r.file.files_read.empty());

    const auto d = parse_file(dir.root());
    REQUIRE(d.errors.size() == 1);
    CHECK(d.errors[0].message == "cannot read config file: is a directory");
}

// --- option binding -------------------------------------------------------------

namespace {

std::vector<OptionSpec> sip_schema() {
    return {
        {.name = "bindaddr", .type = OptionType::string, .default_value = "0.0.0.0"},
        {.name = "port", .type = OptionType::integer, .default_value = "5060", .min = 1, .max = 65535},
        {.name = "nat", .type = OptionType::boolean, .default_value = "no"},
        {.name = "timeout", .type = OptionType::duration, .default_value = "30s"},
        {.name = "dtmfmode",
         .type = OptionType::choice,
         .default_value = "rfc2833",
         .choices = {"rfc2833", "inband", "info"}},
        {.name = "allow", .type = OptionType::list},
        {.name = "secret", .type = OptionType::string, .required = true},
    };
}

}  // namespace

TEST_CASE("config: bind reads every option type") {
    const auto r = text(
        "[peer]\n"
        "bindaddr = \"10.0.0.1\"\n"
        "port = 5080\n"
        "nat = On\n"
        "timeout = 1500ms\n"
        "dtmfmode = INBAND\n"
        "allow = ulaw, alaw,, g722 ,\n"
        "secret = \"s3cr;t\"\n",
        "sip.conf");
    REQUIRE(r.ok());
    Options o;
    const auto schema = sip_schema();
    const auto diags = bind(*r.file.section("peer"), schema, o);
    CHECK(error_strings(diags).empty());
    CHECK(o.str("bindaddr") == "10.0.0.1");
    CHECK(o.integer("port") == 5080);
    CHECK(o.str("port") == "5080");
    CHECK(o.boolean("nat"));
    CHECK(o.duration("timeout") == 1500ms);
    CHECK(o.str("dtmfmode") == "inband");  // canonical spelling from the schema
    CHECK(o.list("allow") == Strings{"ulaw", "alaw", "g722"});
    CHECK(o.str("secret") == "s3cr;t");
    CHECK(o.has("port"));
    REQUIRE(o.where("port"));
    CHECK(o.where("port")->str() == "sip.conf:3");
}

TEST_CASE("config: bind applies defaults and reports missing required options") {
    const auto r = text("[general]\n[peer]\nsecret = x\n", "sip.conf");
    Options o;
    const auto schema = sip_schema();
    CHECK(error_strings(bind(*r.file.section("peer"), schema, o)).empty());
    CHECK(o.str("bindaddr") == "0.0.0.0");
    CHECK(o.integer("port") == 5060);
    CHECK_FALSE(o.boolean("nat"));
    CHECK(o.duration("timeout") == 30s);
    CHECK(o.str("dtmfmode") == "rfc2833");
    CHECK(o.list("allow").empty());
    CHECK_FALSE(o.has("port"));
    CHECK_FALSE(o.where("port"));

    CHECK(error_strings(bind(*r.file.section("general"), schema, o)) ==
          Strings{"sip.conf:1: required option 'secret' missing in [general]"});
    CHECK(o.str("secret").empty());
}

TEST_CASE("config: booleans accept every spelling in any case") {
    const std::vector<OptionSpec> schema{{.name = "b", .type = OptionType::boolean}};
    for (const char* yes : {"yes", "YES", "true", "True", "on", "ON", "1"}) {
        Options o;
        CHECK(bind(*text(std::string("[s]\nb=") + yes).file.section("s"), schema, o).empty());
        CHECK(o.boolean("b"));
    }
    for (const char* no : {"no", "No", "false", "FALSE", "off", "Off", "0"}) {
        Options o;
        CHECK(bind(*text(std::string("[s]\nb=") + no).file.section("s"), schema, o).empty());
        CHECK_FALSE(o.boolean("b"));
    }
    Options o;
    CHECK(error_strings(bind(*text("[s]\nb = maybe\n", "x.conf").file.section("s"), schema, o)) ==
          Strings{"x.conf:2: option 'b' must be a boolean (yes/no, true/false, on/off, 1/0), got 'maybe'"});
}

TEST_CASE("config: integer values and ranges") {
    const auto schema = sip_schema();
    const auto check_port = [&](const std::string& v) {
        Options o;
        return error_strings(bind(*text("[p]\nsecret=x\nport = " + v + "\n", "sip.conf").file.section("p"), schema, o));
    };
    const std::string msg = "sip.conf:3: option 'port' must be an integer between 1 and 65535, got ";
    CHECK(check_port("abc") == Strings{msg + "'abc'"});
    CHECK(check_port("0") == Strings{msg + "'0'"});
    CHECK(check_port("65536") == Strings{msg + "'65536'"});
    CHECK(check_port("12x") == Strings{msg + "'12x'"});
    CHECK(check_port("") == Strings{msg + "''"});
    CHECK(check_port("99999999999999999999999") == Strings{msg + "'99999999999999999999999'"});
    CHECK(check_port("1").empty());
    CHECK(check_port("+65535").empty());
    CHECK(check_port("\"443\"").empty());

    // One-sided and unbounded ranges.
    const std::vector<OptionSpec> s2{{.name = "lo", .type = OptionType::integer, .min = 0},
                                     {.name = "hi", .type = OptionType::integer, .max = 10},
                                     {.name = "any", .type = OptionType::integer}};
    Options o;
    CHECK(error_strings(bind(*text("[s]\nlo=-1\nhi=11\nany=-9223372036854775808\n", "i.conf").file.section("s"), s2,
                             o)) == Strings{"i.conf:2: option 'lo' must be an integer of at least 0, got '-1'",
                                            "i.conf:3: option 'hi' must be an integer of at most 10, got '11'"});
    CHECK(o.integer("any") == std::numeric_limits<long long>::min());
    CHECK(o.integer("lo") == 0);  // invalid value: no default, reads as zero
    CHECK_FALSE(o.has("lo"));
}

TEST_CASE("config: durations") {
    const std::vector<OptionSpec> schema{{.name = "d", .type = OptionType::duration, .default_value = "2h"},
                                         {.name = "r", .type = OptionType::duration, .min = 1000, .max = 60000}};
    const auto dur = [&](const std::string& v, std::chrono::milliseconds want) {
        Options o;
        CHECK(bind(*text("[s]\nd = " + v + "\n").file.section("s"), schema, o).empty());
        CHECK(o.duration("d") == want);
    };
    dur("500ms", 500ms);
    dur("30s", 30s);
    dur("5m", 5min);
    dur("2h", 2h);
    dur("45", 45s);
    dur("0", 0ms);
    dur("10 S", 10s);
    Options o;
    CHECK(bind(*text("[s]\n").file.section("s"), schema, o).empty());
    CHECK(o.duration("d") == 2h);

    for (const char* bad : {"abc", "-5s", "5x", "1.5s", "ms", "99999999999999999h"}) {
        const auto e = bind(*text(std::string("[s]\nd = ") + bad + "\n", "d.conf").file.section("s"), schema, o);
        REQUIRE(e.size() == 1);
        CHECK(e[0].str() == std::string("d.conf:2: option 'd' must be a duration such as 500ms, 30s, 5m "
                                        "or 2h, got '") +
                                bad + "'");
    }
    CHECK(error_strings(bind(*text("[s]\nr = 2m\n", "d.conf").file.section("s"), schema, o)) ==
          Strings{"d.conf:2: option 'r' must be a duration such as 500ms, 30s, 5m or 2h between "
                  "1000ms and 60000ms, got '2m'"});
}

TEST_CASE("config: choices and lists") {
    const auto schema = sip_schema();
    Options o;
    CHECK(error_strings(bind(*text("[p]\nsecret=x\ndtmfmode = auto\n", "sip.conf").file.section("p"), schema, o)) ==
          Strings{"sip.conf:3: option 'dtmfmode' must be one of rfc2833, inband, info, got 'auto'"});
    CHECK(o.str("dtmfmode") == "rfc2833");  // default kept after an invalid value

    CHECK(bind(*text("[p]\nsecret=x\nallow = \n").file.section("p"), schema, o).empty());
    CHECK(o.list("allow").empty());
    CHECK(o.has("allow"));
    CHECK(bind(*text("[p]\nsecret=x\nallow = \"a, b\"\n").file.section("p"), schema, o).empty());
    CHECK(o.list("allow") == Strings{"a", "b"});
}

TEST_CASE("config: quotes are stripped only when they enclose the whole value") {
    const std::vector<OptionSpec> schema{{.name = "s", .type = OptionType::string}};
    const auto val = [&](const std::string& v) {
        Options o;
        bind(*text("[x]\ns = " + v + "\n").file.section("x"), schema, o);
        return o.str("s");
    };
    CHECK(val("\"hello world\"") == "hello world");
    CHECK(val("\"\"").empty());
    CHECK(val("\"a\" \"b\"") == "\"a\" \"b\"");
    CHECK(val("say \"hi\"") == "say \"hi\"");
    CHECK(val("\"") == "\"");
}

TEST_CASE("config: unknown options, allow_unknown, and the last occurrence wins") {
    const auto r = text(
        "[t](!)\n"         // 1
        "port = bad\n"     // 2  overridden below, so not reported
        "[p](t)\n"         // 3
        "secret = x\n"     // 4
        "colour = red\n"   // 5
        "COLOUR = blue\n"  // 6  same unknown name: reported once
        "Port = 5061\n"    // 7  names match regardless of case
        "typo = 1\n",      // 8
        "sip.conf");
    const auto schema = sip_schema();
    Options o;
    CHECK(error_strings(bind(*r.file.section("p"), schema, o)) ==
          Strings{"sip.conf:5: unknown option 'colour' in [p]", "sip.conf:8: unknown option 'typo' in [p]"});
    CHECK(o.integer("port") == 5061);
    CHECK(o.where("port")->line == 7);

    CHECK(bind(*r.file.section("p"), schema, o, true).empty());
    CHECK(o.integer("port") == 5061);
}

TEST_CASE("config: errors in inherited values point at the template") {
    const auto r = text("[t](!)\nport = abc\n[p](t)\nsecret = x\n", "sip.conf");
    Options o;
    CHECK(error_strings(bind(*r.file.section("p"), sip_schema(), o)) ==
          Strings{"sip.conf:2: option 'port' must be an integer between 1 and 65535, got 'abc'"});
}

TEST_CASE("config: Options accessors reject programming errors") {
    Options o;
    bind(*text("[p]\nsecret = x\n").file.section("p"), sip_schema(), o);
    CHECK_THROWS_AS(o.str("nosuch"), std::out_of_range);
    CHECK_THROWS_AS(o.integer("nosuch"), std::out_of_range);
    CHECK_THROWS_AS(o.boolean("nosuch"), std::out_of_range);
    CHECK_THROWS_AS(o.duration("nosuch"), std::out_of_range);
    CHECK_THROWS_AS(o.list("nosuch"), std::out_of_range);
    CHECK_THROWS_AS(o.has("nosuch"), std::out_of_range);
    CHECK_THROWS_AS(o.integer("nat"), std::invalid_argument);
    CHECK_THROWS_AS(o.boolean("port"), std::invalid_argument);
    CHECK_THROWS_AS(o.list("secret"), std::invalid_argument);
    CHECK_THROWS_AS(o.duration("port"), std::invalid_argument);
    CHECK(o.str("nat") == "no");  // str() reads any type

    Options fresh;
    CHECK_THROWS_AS(fresh.str("port"), std::out_of_range);  // nothing bound yet
}

TEST_CASE("config: a malformed schema throws std::invalid_argument") {
    const Section s;
    Options o;
    const std::vector<OptionSpec> bad_default{
        {.name = "p", .type = OptionType::integer, .default_value = "0", .min = 1}};
    CHECK_THROWS_AS(bind(s, bad_default, o), std::invalid_argument);
    const std::vector<OptionSpec> dup{{.name = "a"}, {.name = "a"}};
    CHECK_THROWS_AS(bind(s, dup, o), std::invalid_argument);
    const std::vector<OptionSpec> no_choices{{.name = "c", .type = OptionType::choice}};
    CHECK_THROWS_AS(bind(s, no_choices, o), std::invalid_argument);
    const std::vector<OptionSpec> unnamed{{.name = ""}};
    CHECK_THROWS_AS(bind(s, unnamed, o), std::invalid_argument);
}

TEST_CASE("config: bind replaces previous contents of Options") {
    Options o;
    const std::vector<OptionSpec> a{{.name = "a", .type = OptionType::string, .default_value = "1"}};
    const std::vector<OptionSpec> b{{.name = "b", .type = OptionType::string}};
    const Section s;
    bind(s, a, o);
    CHECK(o.str("a") == "1");
    bind(s, b, o);
    CHECK_THROWS_AS(o.str("a"), std::out_of_range);
}

TEST_CASE("config: random token soup never crashes or throws") {
    // Deterministic, so a failure is reproducible.
    const std::vector<std::string> tokens{"[",
                                          "]",
                                          "(",
                                          ")",
                                          "!",
                                          "+",
                                          ",",
                                          ";",
                                          ";--",
                                          "--;",
                                          "\"",
                                          "\\",
                                          "\\;",
                                          "=",
                                          "=>",
                                          " ",
                                          "\t",
                                          "\n",
                                          "\r\n",
                                          std::string(1, '\0'),
                                          "\xEF\xBB\xBF",
                                          "\xff",
                                          "a",
                                          "ctx",
                                          "#include ",
                                          "#tryinclude ",
                                          "#exec ",
                                          "nosuch.conf",
                                          "*.conf",
                                          "<",
                                          ">",
                                          "#"};
    std::mt19937 rng(1234);
    int misplaced = 0;
    for (int round = 0; round < 2000; ++round) {
        std::string input;
        const int n = static_cast<int>(rng() % 60);
        for (int i = 0; i < n; ++i) input += tokens[rng() % tokens.size()];
        ParseResult r;
        REQUIRE_NOTHROW(r = parse_text(input, "fuzz.conf", fs::path("/nonexistent-tandem-dir")));
        for (const auto& e : r.errors) misplaced += (e.where.file != "fuzz.conf" || e.where.line < 1);
    }
    CHECK(misplaced == 0);
}
