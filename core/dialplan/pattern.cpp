// Extension pattern compilation, matching and ordering; see pattern.hpp.
#include "dialplan/pattern.hpp"

namespace tandem::dialplan {

namespace {

using Element = Pattern::Element;

// Position weights. Character classes weigh (count << 8) | lowest character,
// so they all fall below the wildcards and the end of the pattern.
constexpr std::uint32_t kWeightOneOrMore = 0x18000;   // '.'
constexpr std::uint32_t kWeightZeroOrMore = 0x28000;  // '!'
constexpr std::uint32_t kWeightEnd = 0x30000;         // end of the pattern
constexpr std::uint32_t kWeightBrokenSet = 0x40000;   // '[' without ']' (sorting only)

void add_char(Element& e, unsigned char c) {
    e.set[c >> 6] |= std::uint64_t{1} << (c & 63);
}

bool has_char(const Element& e, unsigned char c) {
    return ((e.set[c >> 6] >> (c & 63)) & 1U) != 0;
}

Element range_element(unsigned char lo, unsigned char hi) {
    Element e;
    for (unsigned c = lo; c <= hi; ++c) add_char(e, static_cast<unsigned char>(c));
    e.weight = ((static_cast<std::uint32_t>(hi) - lo + 1) << 8) | lo;
    return e;
}

Element literal_element(unsigned char c) {
    Element e;
    add_char(e, c);
    e.weight = 0x100U | c;
    return e;
}

Element wildcard_element(std::uint32_t weight) {
    Element e;
    e.weight = weight;
    return e;
}

std::string quoted(std::string_view s) {
    std::string out = "'";
    out.append(s);
    out += '\'';
    return out;
}

// Parses the text after '_'. Strict mode (compile) rejects malformed sets;
// lenient mode (sorting raw names) handles them the way Asterisk sorts them:
// empty sets and reversed ranges contribute nothing, and an unterminated '['
// becomes a position that sorts after everything else.
bool parse_body(std::string_view body, bool strict, std::vector<Element>& out, std::string* error) {
    std::size_t i = 0;
    const std::size_t n = body.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(body[i]);
        switch (c) {
            case '-':
                ++i;
                continue;
            case 'X':
            case 'x':
                out.push_back(range_element('0', '9'));
                break;
            case 'Z':
            case 'z':
                out.push_back(range_element('1', '9'));
                break;
            case 'N':
            case 'n':
                out.push_back(range_element('2', '9'));
                break;
            case '.':
                out.push_back(wildcard_element(kWeightOneOrMore));
                break;
            case '!':
                out.push_back(wildcard_element(kWeightZeroOrMore));
                break;
            case '[': {
                const std::size_t end = body.find(']', i + 1);
                if (end == std::string_view::npos) {
                    if (strict) {
                        if (error) *error = "unterminated '[' in pattern";
                        return false;
                    }
                    out.push_back(wildcard_element(kWeightBrokenSet));
                    ++i;
                    continue;
                }
                Element e;
                unsigned count = 0;
                unsigned lowest = 0xFF;
                std::size_t j = i + 1;
                while (j < end) {
                    const auto first = static_cast<unsigned char>(body[j]);
                    auto last = first;
                    if (j + 2 < end && body[j + 1] == '-') {
                        last = static_cast<unsigned char>(body[j + 2]);
                        if (last < first && strict) {
                            if (error) *error = "invalid range " + quoted(body.substr(j, 3)) + " in pattern";
                            return false;
                        }
                        j += 3;
                    } else {
                        ++j;
                    }
                    if (first < lowest) lowest = first;
                    for (unsigned ch = first; ch <= last; ++ch) {
                        if (!has_char(e, static_cast<unsigned char>(ch))) {
                            add_char(e, static_cast<unsigned char>(ch));
                            ++count;
                        }
                    }
                }
                if (count == 0) {
                    if (strict) {
                        if (error)
                            *error = "empty character set " + quoted(body.substr(i, end - i + 1)) + " in pattern";
                        return false;
                    }
                } else {
                    e.weight = (count << 8) | lowest;
                    out.push_back(e);
                }
                i = end + 1;
                continue;
            }
            default:
                out.push_back(literal_element(c));
                break;
        }
        ++i;
    }
    return true;
}

int compare_sets(const Element& a, const Element& b) {
    for (std::size_t w = 0; w < a.set.size(); ++w) {
        const std::uint64_t diff = a.set[w] ^ b.set[w];
        if (diff != 0) {
            // The set holding the lowest character the other lacks comes first.
            const std::uint64_t lowest = diff & (~diff + 1);
            return (a.set[w] & lowest) != 0 ? -1 : 1;
        }
    }
    return 0;
}

int compare_elements(const std::vector<Element>& a, const std::vector<Element>& b) {
    const std::size_t n = a.size() > b.size() ? a.size() : b.size();
    for (std::size_t i = 0; i <= n; ++i) {
        const bool a_end = i >= a.size();
        const bool b_end = i >= b.size();
        if (a_end && b_end) return 0;
        const std::uint32_t wa = a_end ? kWeightEnd : a[i].weight;
        const std::uint32_t wb = b_end ? kWeightEnd : b[i].weight;
        if (wa != wb) return wa < wb ? -1 : 1;
        if (!a_end && !b_end) {
            if (const int c = compare_sets(a[i], b[i]); c != 0) return c;
        }
    }
    return 0;
}

// Bytewise comparison ignoring '-' (Asterisk's ext_cmp_exten).
int compare_plain(std::string_view a, std::string_view b) {
    std::size_t i = 0;
    std::size_t j = 0;
    for (;;) {
        while (i < a.size() && a[i] == '-') ++i;
        while (j < b.size() && b[j] == '-') ++j;
        const bool a_end = i >= a.size();
        const bool b_end = j >= b.size();
        if (a_end || b_end) return a_end == b_end ? 0 : (a_end ? -1 : 1);
        const auto ca = static_cast<unsigned char>(a[i]);
        const auto cb = static_cast<unsigned char>(b[j]);
        if (ca != cb) return ca < cb ? -1 : 1;
        ++i;
        ++j;
    }
}

int sign(int v) {
    return v < 0 ? -1 : (v > 0 ? 1 : 0);
}

bool is_pattern_text(std::string_view ext) {
    return !ext.empty() && ext.front() == '_';
}

}  // namespace

std::string strip_dashes(std::string_view number) {
    std::string out;
    out.reserve(number.size());
    for (const char c : number) {
        if (c != '-') out += c;
    }
    return out;
}

std::optional<Pattern> Pattern::compile(std::string_view ext, std::string* error) {
    Pattern p;
    p.text_ = std::string(ext);
    p.pattern_ = is_pattern_text(ext);
    if (!p.pattern_) {
        p.canonical_ = strip_dashes(ext);
        return p;
    }
    std::string why;
    if (!parse_body(ext.substr(1), true, p.elements_, &why)) {
        if (error) *error = why + " " + quoted(ext);
        return std::nullopt;
    }
    p.canonical_ = p.text_;
    return p;
}

MatchMore Pattern::can_match(std::string_view prefix) const {
    if (!pattern_) {
        // Plain names: the dialed digits must be the name or a prefix of it.
        std::size_t i = 0;
        std::size_t j = 0;
        const std::string& name = canonical_;
        for (;;) {
            while (j < prefix.size() && prefix[j] == '-') ++j;
            if (j >= prefix.size()) return i == name.size() ? MatchMore::full : MatchMore::more;
            if (i >= name.size() || name[i] != prefix[j]) return MatchMore::none;
            ++i;
            ++j;
        }
    }
    std::size_t i = 0;  // position in prefix
    std::size_t k = 0;  // position in elements_
    for (;;) {
        while (i < prefix.size() && prefix[i] == '-') ++i;
        if (i >= prefix.size() || k >= elements_.size()) break;
        const Element& e = elements_[k];
        if (e.weight == kWeightOneOrMore) return MatchMore::both;
        if (e.weight == kWeightZeroOrMore) return MatchMore::early;
        if (!has_char(e, static_cast<unsigned char>(prefix[i]))) return MatchMore::none;
        ++i;
        ++k;
    }
    if (i < prefix.size()) return MatchMore::none;  // the number outran the pattern
    if (k >= elements_.size()) return MatchMore::full;
    if (elements_[k].weight == kWeightZeroOrMore) return MatchMore::early;
    return MatchMore::more;
}

bool Pattern::matches(std::string_view number) const {
    if (pattern_ && is_pattern_text(number)) {
        // A pattern given as the number (as Goto or "dialplan show" may pass)
        // names the same extension when it sorts identically.
        std::vector<Element> other;
        parse_body(number.substr(1), false, other, nullptr);
        if (compare_elements(elements_, other) == 0) return true;
    }
    return is_match(can_match(number));
}

int Pattern::compare(const Pattern& other) const noexcept {
    if (pattern_ != other.pattern_) return pattern_ ? 1 : -1;
    if (!pattern_) return compare_plain(canonical_, other.canonical_);
    return compare_elements(elements_, other.elements_);
}

int compare_extensions(std::string_view a, std::string_view b) {
    const bool pa = is_pattern_text(a);
    const bool pb = is_pattern_text(b);
    if (pa != pb) return pa ? 1 : -1;
    if (!pa) return sign(compare_plain(a, b));
    std::vector<Element> ea;
    std::vector<Element> eb;
    parse_body(a.substr(1), false, ea, nullptr);
    parse_body(b.substr(1), false, eb, nullptr);
    return compare_elements(ea, eb);
}

bool caller_matches(std::string_view cid_pattern, std::string_view callerid) {
    if (callerid.empty()) return cid_pattern.empty();
    const auto p = Pattern::compile(cid_pattern);
    return p && p->matches(callerid);
}

}  // namespace tandem::dialplan
