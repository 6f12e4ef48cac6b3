#include "media/media_cli.hpp"

#include "cli/server.hpp"
#include "media/translate.hpp"
#include "runtime/core_impl.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace tandem {

namespace {

constexpr Format linear_formats[] = {Format::slin8, Format::slin16, Format::slin48};

bool is_slin(Format f) {
    return std::find(std::begin(linear_formats), std::end(linear_formats), f) != std::end(linear_formats);
}

std::string_view kind_name(MediaKind k) {
    switch (k) {
        case MediaKind::audio:
            return "audio";
        case MediaKind::video:
            return "video";
        case MediaKind::image:
            return "image";
    }
    return "?";
}

// "yes" when some chain of translators joins `f` and signed linear in the
// direction asked.
std::string_view linear_reach(TranslatorGraph& graph, Format f, bool decode) {
    if (format_info(f).kind != MediaKind::audio) return "n/a";
    if (is_slin(f)) return "linear";
    for (Format s : linear_formats)
        if (decode ? graph.plan(f, s) : graph.plan(s, f)) return "yes";
    return "no";
}

// Audio formats that appear in at least one registered step, in Format order.
std::vector<Format> translated_formats(const std::vector<TranslatorStep>& steps) {
    std::vector<Format> out;
    for (std::size_t i = 1; i < static_cast<std::size_t>(Format::count_); ++i) {
        auto f = static_cast<Format>(i);
        if (format_info(f).kind != MediaKind::audio) continue;
        bool used = std::any_of(steps.begin(), steps.end(), [f](auto& s) { return s.from == f || s.to == f; });
        if (used) out.push_back(f);
    }
    return out;
}

void print_matrix(TranslatorGraph& graph, CliOutput& out) {
    auto formats = translated_formats(graph.steps());
    if (formats.empty()) {
        out.print("No translators registered.\n");
        return;
    }
    // cells[row][col]: the cost of the cheapest path, "-" without one.
    std::vector<std::vector<std::string>> cells;
    std::size_t width = 5, label = 0;
    for (Format from : formats) {
        label = std::max(label, format_info(from).name.size());
        width = std::max(width, format_info(from).name.size());
        auto& row = cells.emplace_back();
        for (Format to : formats) {
            auto p = from == to ? std::nullopt : graph.plan(from, to);
            row.push_back(p ? std::to_string(p->cost) : "-");
            width = std::max(width, row.back().size());
        }
    }
    out.print("Translation costs between formats (microseconds per 20 ms frame, cheapest path)\n");
    out.print("Source format (rows), destination format (columns); '-': no path\n\n");
    std::string line(label + 2, ' ');
    for (Format to : formats) line += fmt::format(" {:>{}}", format_info(to).name, width);
    out.print("{}\n", line);
    for (std::size_t r = 0; r < formats.size(); ++r) {
        line = fmt::format("  {:>{}}", format_info(formats[r]).name, label);
        for (auto& cell : cells[r]) line += fmt::format(" {:>{}}", cell, width);
        out.print("{}\n", line);
    }
}

}  // namespace

void register_media_commands(CoreImpl& core, std::vector<Registration>& out) {
    auto add = [&](CliCommand c) { out.push_back(add_command(core.cli_commands(), std::move(c), &core.core_use())); };

    add({{"core", "show", "codecs"},
         "Show the media formats and whether they can be translated",
         "Usage: core show codecs\n"
         "  Lists every media format: kind, SDP name and clock, static RTP payload type,\n"
         "  and whether translators lead from it to signed linear (decode) and back (encode).",
         [&core](CliRequest& r) -> awaitable<int> {
             if (!r.args.empty()) co_return cli_status::usage;
             auto& graph = core.translator_graph();
             r.out.print("{:<8} {:<6} {:<16} {:<8} {:>6}  {:<7} {}\n", "Format", "Kind", "SDP", "Payload", "Rate",
                         "Decode", "Encode");
             int n = 0;
             for (std::size_t i = 1; i < static_cast<std::size_t>(Format::count_); ++i, ++n) {
                 auto& fi = format_info(static_cast<Format>(i));
                 std::string sdp = fmt::format("{}/{}", fi.encoding_name, fi.rtp_clock);
                 if (fi.channels > 1) sdp += fmt::format("/{}", fi.channels);
                 auto rate = fi.sample_rate ? std::to_string(fi.sample_rate) : std::string("-");
                 auto pt = fi.static_payload >= 0 ? std::to_string(fi.static_payload) : std::string("dynamic");
                 r.out.print("{:<8} {:<6} {:<16} {:<8} {:>6}  {:<7} {}\n", fi.name, kind_name(fi.kind), sdp, pt, rate,
                             linear_reach(graph, fi.format, true), linear_reach(graph, fi.format, false));
             }
             r.out.print("{} formats\n", n);
             co_return cli_status::ok;
         },
         nullptr});

    add({{"core", "show", "translation"},
         "Show the cost of translating between audio formats",
         "Usage: core show translation [recalc]\n"
         "  Shows the cheapest path's cost (microseconds per 20 ms frame, measured on this\n"
         "  machine) between every pair of audio formats that have translators.\n"
         "  recalc: measure every translator again first (takes a moment).",
         [&core](CliRequest& r) -> awaitable<int> {
             auto& graph = core.translator_graph();
             if (r.args.size() > 1 || (r.args.size() == 1 && r.args[0] != "recalc")) co_return cli_status::usage;
             if (!r.args.empty()) {
                 r.out.print("Measuring every translator again...\n");
                 // Timing runs module code for a while: on the worker pool, not this loop.
                 co_await run_blocking(core, [&graph] {
                     graph.measure(true);
                     return 0;
                 });
             }
             print_matrix(graph, r.out);
             co_return cli_status::ok;
         },
         [](const std::vector<std::string>&, std::size_t index, std::string_view) {
             return index == 0 ? std::vector<std::string>{"recalc"} : std::vector<std::string>{};
         }});

    add({{"core", "show", "translators"},
         "List the registered translator steps with their costs",
         "Usage: core show translators\n"
         "  Each registered step (one direction of one codec or resampler), its cost in\n"
         "  microseconds per 20 ms frame and where that cost comes from (measured on this\n"
         "  machine, assumed when it cannot be measured, pending until measured), and the\n"
         "  module that registered it.",
         [&core](CliRequest& r) -> awaitable<int> {
             if (!r.args.empty()) co_return cli_status::usage;
             auto steps = core.translator_graph().steps();
             r.out.print("{:<18} {:>6}  {:<9} {:<14} {}\n", "Translator", "Cost", "Source", "Module", "Description");
             for (auto& s : steps)
                 r.out.print("{:<18} {:>6}  {:<9} {:<14} {}\n", s.name, s.cost, to_string(s.source),
                             s.module.empty() ? "-" : s.module, s.description);
             r.out.print("{} translator{}\n", steps.size(), steps.size() == 1 ? "" : "s");
             co_return cli_status::ok;
         },
         nullptr});
}

}  // namespace tandem
