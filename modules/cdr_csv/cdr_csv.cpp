// cdr_csv: call detail records appended to <log dir>/cdr-csv/Master.csv.
//
// The columns are Asterisk's, so existing billing scripts read the file as is.
// Each record is one write(2) of one whole line to a file opened O_APPEND, so
// concurrent writers or a crash never leave half a line in the middle of the
// file; records reach the kernel before write() returns.
#include <tandem/config.hpp>
#include <tandem/core.hpp>
#include <tandem/module.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace {

using namespace tandem;
namespace fs = std::filesystem;

const config::OptionSpec csv_schema[] = {
    {"enabled", config::OptionType::boolean, "yes", 0, 0, {}, "Write CSV CDRs."},
    {"file", config::OptionType::string, "cdr-csv/Master.csv", 0, 0, {}, "File, relative to the log directory."},
    {"usegmtime", config::OptionType::boolean, "no", 0, 0, {}, "Times in UTC instead of local time."},
    {"loguniqueid", config::OptionType::boolean, "yes", 0, 0, {}, "Add the uniqueid column."},
    {"loguserfield", config::OptionType::boolean, "yes", 0, 0, {}, "Add the userfield column."},
    {"fsync",
     config::OptionType::boolean,
     "no",
     0,
     0,
     {},
     "fdatasync after every record (slower, survives power loss)."},
};

std::string quote(std::string_view s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"')
            out += "\"\"";
        else if (c == '\n' || c == '\r')
            out += ' ';
        else
            out += c;
    }
    out += '"';
    return out;
}

struct Settings {
    bool enabled = true, gmt = false, uniqueid = true, userfield = true, sync = false;
    fs::path path;
};

class CsvModule final : public Module {
public:
    void load(Host& host) override {
        configure(host);
        backend_ = host.add(
            "csv", CdrBackend{"CSV file", [this](const CdrRecord& r, std::string& error) { return write(r, error); },
                              [this] {
                                  std::lock_guard lock(mu_);
                                  if (fd_ >= 0) ::fdatasync(fd_);
                              }});
    }

    void reload(Host& host) override { configure(host); }

    ~CsvModule() override {
        if (fd_ >= 0) ::close(fd_);
    }

private:
    void configure(Host& host) {
        auto parsed = host.read_config("cdr.conf");
        config::Options o;
        static const config::Section none;
        auto* s = parsed.file.section("csv");
        for (auto& d : config::bind(s ? *s : none, csv_schema, o)) host.config_error(d);
        Settings next;
        next.enabled = o.boolean("enabled");
        next.gmt = o.boolean("usegmtime");
        next.uniqueid = o.boolean("loguniqueid");
        next.userfield = o.boolean("loguserfield");
        next.sync = o.boolean("fsync");
        fs::path p = o.str("file");
        next.path = p.is_absolute() ? p : host.core().paths().log_dir / p;
        std::lock_guard lock(mu_);
        if (fd_ >= 0 && next.path != settings_.path) {
            ::close(fd_);
            fd_ = -1;
        }
        settings_ = std::move(next);
    }

    std::string format_time(std::chrono::system_clock::time_point t, bool gmt) const {
        if (t == std::chrono::system_clock::time_point{}) return "";
        auto tt = std::chrono::system_clock::to_time_t(t);
        std::tm tm{};
        if (gmt)
            gmtime_r(&tt, &tm);
        else
            localtime_r(&tt, &tm);
        return fmt::format("{:%Y-%m-%d %H:%M:%S}", tm);
    }

    bool write(const CdrRecord& r, std::string& error) {
        std::lock_guard lock(mu_);
        if (!settings_.enabled) return true;
        if (fd_ < 0) {
            std::error_code ec;
            fs::create_directories(settings_.path.parent_path(), ec);
            fd_ = ::open(settings_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
            if (fd_ < 0) {
                error = fmt::format("cannot open {}: {}", settings_.path.string(), std::strerror(errno));
                return false;
            }
        }
        auto line = fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}", quote(r.accountcode), quote(r.src),
                                quote(r.dst), quote(r.dcontext), quote(r.clid), quote(r.channel), quote(r.dstchannel),
                                quote(r.lastapp), quote(r.lastdata), quote(format_time(r.start, settings_.gmt)),
                                quote(format_time(r.answer, settings_.gmt)), quote(format_time(r.end, settings_.gmt)),
                                r.duration, r.billsec, quote(r.disposition), quote(r.amaflags));
        if (settings_.uniqueid) line += "," + quote(r.uniqueid);
        if (settings_.userfield) line += "," + quote(r.userfield);
        line += '\n';
        ssize_t n = ::write(fd_, line.data(), line.size());
        if (n != static_cast<ssize_t>(line.size())) {
            error = fmt::format("write to {} failed: {}", settings_.path.string(),
                                n < 0 ? std::strerror(errno) : "short write (disk full?)");
            if (n > 0) {
                // Never leave a partial line for the next record to glue onto.
                if (::ftruncate(fd_, ::lseek(fd_, 0, SEEK_END) - n) != 0) {
                }
            }
            ::close(fd_);
            fd_ = -1;
            return false;
        }
        if (settings_.sync) ::fdatasync(fd_);
        return true;
    }

    std::mutex mu_;
    Settings settings_;
    int fd_ = -1;
    Registration backend_;
};

}  // namespace

TANDEM_MODULE(CsvModule)
