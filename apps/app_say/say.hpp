// The prompts that speak a number, a digit string, a spelled string or a
// date in English, French, Italian and Spanish — as lists of prompt names
// (`digits/21`, `digits/et`), built from the building blocks described in
// sounds/README.md and chained per language as Asterisk's say.c does.
//
// Pure functions with no I/O, so they are tested without a channel; the
// applications play the lists with play_sound().
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::say {

using Files = std::vector<std::string>;

inline std::string d(std::int64_t n) {
    return "digits/" + std::to_string(n);
}

// The language's base code: "fr_CA" and "fr-ca" speak French; unknown: English.
inline std::string base_language(std::string_view lang) {
    auto code = std::string(lang.substr(0, 2));
    for (auto& c : code) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (code == "fr" || code == "it" || code == "es") return code;
    return "en";
}

namespace detail {

inline void en(std::int64_t n, Files& out) {
    if (n >= 1000000) {
        en(n / 1000000, out);
        out.push_back("digits/million");
        n %= 1000000;
        if (!n) return;
    }
    if (n >= 1000) {
        en(n / 1000, out);
        out.push_back("digits/thousand");
        n %= 1000;
        if (!n) return;
    }
    if (n >= 100) {
        out.push_back(d(n / 100));
        out.push_back("digits/hundred");
        n %= 100;
        if (!n) return;
    }
    if (n < 20) {
        out.push_back(d(n));
        return;
    }
    out.push_back(d(n / 10 * 10));
    if (n % 10) out.push_back(d(n % 10));
}

// `feminine` changes a final "un" into "une".
inline void fr(std::int64_t n, Files& out, bool feminine) {
    auto one = [&](Files& o) { o.push_back(feminine ? "digits/1F" : "digits/1"); };
    if (n >= 1000000) {
        fr(n / 1000000, out, false);
        out.push_back("digits/million");
        n %= 1000000;
        if (!n) return;
    }
    if (n >= 1000) {
        if (n / 1000 > 1) fr(n / 1000, out, false);  // "mille", never "un mille"
        out.push_back("digits/thousand");
        n %= 1000;
        if (!n) return;
    }
    if (n >= 100) {
        if (n / 100 > 1) out.push_back(d(n / 100));  // "cent", "deux cent"
        out.push_back("digits/hundred");
        n %= 100;
        if (!n) return;
    }
    if (n == 1) {
        one(out);
    } else if (n <= 20) {
        out.push_back(d(n));
    } else if (n < 70) {
        out.push_back(d(n / 10 * 10));
        if (n % 10 == 1) {
            out.push_back("digits/et");
            one(out);
        } else if (n % 10) {
            out.push_back(d(n % 10));
        }
    } else if (n < 80) {  // soixante-dix .. soixante-dix-neuf; 71: soixante et onze
        out.push_back("digits/60");
        if (n == 71) out.push_back("digits/et");
        out.push_back(d(n - 60));
    } else {  // quatre-vingt(s) .. quatre-vingt-dix-neuf, no "et"
        out.push_back("digits/80");
        if (n > 80) {
            if (n == 81)
                one(out);
            else
                out.push_back(d(n - 80));
        }
    }
}

inline void it(std::int64_t n, Files& out) {
    if (n >= 1000000) {
        if (n / 1000000 == 1) {
            out.push_back("digits/million");  // "un milione"
        } else {
            it(n / 1000000, out);
            out.push_back("digits/millions");
        }
        n %= 1000000;
        if (!n) return;
    }
    if (n >= 1000) {
        if (n / 1000 == 1) {
            out.push_back("digits/thousand");  // "mille"
        } else {
            it(n / 1000, out);
            out.push_back("digits/thousands");  // "mila"
        }
        n %= 1000;
        if (!n) return;
    }
    if (n >= 100) {
        if (n / 100 > 1) out.push_back(d(n / 100));
        out.push_back("digits/hundred");  // "cento"
        n %= 100;
        if (!n) return;
    }
    // 21, 28, 31, 38 ... 91, 98 drop a vowel and have their own files.
    if (n <= 30 || n % 10 == 1 || n % 10 == 8) {
        out.push_back(d(n));
        return;
    }
    out.push_back(d(n / 10 * 10));
    if (n % 10) out.push_back(d(n % 10));
}

// `gender`: 'f' for "una", 'm' (before millón) for "un", else "uno".
inline void es(std::int64_t n, Files& out, char gender) {
    if (n >= 1000000) {
        if (n / 1000000 == 1) {
            out.push_back("digits/1M");
            out.push_back("digits/million");
        } else {
            es(n / 1000000, out, 'm');
            out.push_back("digits/millions");
        }
        n %= 1000000;
        if (!n) return;
    }
    if (n >= 1000) {
        if (n / 1000 > 1) es(n / 1000, out, 'm');  // "mil", "dos mil"
        out.push_back("digits/thousand");
        n %= 1000;
        if (!n) return;
    }
    if (n >= 100) {
        if (n == 100) {
            out.push_back("digits/100");  // "cien"
            return;
        }
        out.push_back(n / 100 == 1 ? "digits/100-and" : d(n / 100 * 100));  // "ciento", "doscientos"
        n %= 100;
        if (!n) return;
    }
    if (n == 1) {
        out.push_back(gender == 'f' ? "digits/1F" : gender == 'm' ? "digits/1M" : "digits/1");
    } else if (n <= 30) {
        out.push_back(d(n));
    } else {
        out.push_back(d(n / 10 * 10));
        if (n % 10) {
            out.push_back("digits/y");
            if (n % 10 == 1)
                out.push_back(gender == 'f' ? "digits/1F" : gender == 'm' ? "digits/1M" : "digits/1");
            else
                out.push_back(d(n % 10));
        }
    }
}

}  // namespace detail

// A whole number; gender "f" picks the feminine "one" where a language has it.
inline Files number(std::int64_t n, std::string_view language, std::string_view gender = {}) {
    Files out;
    if (n < 0) {
        out.push_back("digits/minus");
        if (n == INT64_MIN) n = INT64_MAX;
        n = -n;
    }
    if (n == 0) {
        out.push_back("digits/0");
        return out;
    }
    auto lang = base_language(language);
    char g = gender.empty() ? 0 : gender[0];
    if (lang == "fr")
        detail::fr(n, out, g == 'f');
    else if (lang == "it")
        detail::it(n, out);
    else if (lang == "es")
        detail::es(n, out, g);
    else
        detail::en(n, out);
    return out;
}

// One prompt per character; characters with no prompt are skipped.
inline Files characters(std::string_view s, bool alpha) {
    Files out;
    for (char c : s) {
        if (c >= '0' && c <= '9') {
            out.push_back(std::string("digits/") + c);
        } else if (c == '*') {
            out.push_back("digits/star");
        } else if (c == '#') {
            out.push_back("digits/pound");
        } else if (c == '-') {
            out.push_back(alpha ? "letters/dash" : "digits/minus");
        } else if (alpha && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
            out.push_back(std::string("letters/") + static_cast<char>(c | 0x20));
        } else if (alpha) {
            switch (c) {
                case '@':
                    out.push_back("letters/at");
                    break;
                case '.':
                    out.push_back("letters/dot");
                    break;
                case '/':
                    out.push_back("letters/slash");
                    break;
                case '+':
                    out.push_back("letters/plus");
                    break;
                default:
                    break;
            }
        }
    }
    return out;
}

// The default date and time formats of SayUnixTime, per language (Asterisk's
// format letters; quoted text is a prompt name).
inline std::string_view default_format(std::string_view language) {
    auto lang = base_language(language);
    if (lang == "fr") return "AdBY 'digits/at' H 'digits/hours' M 'digits/minutes'";
    if (lang == "it") return "AdB 'digits/at' H 'digits/hours' M 'digits/minutes'";
    if (lang == "es") return "'digits/the' Ad 'digits/of' B 'digits/of' Y 'digits/at' H M";
    return "ABdY 'digits/at' IMp";
}

// A broken-down time spoken by an Asterisk-style format: A/a weekday, B/b/h
// month, d/e day of month, Y year, H/k hour (24 h), I/l hour (12 h), M minute,
// S second, p AM/PM, 'name' a prompt. Unknown letters are skipped.
inline Files datetime(const std::tm& t, std::string_view format, std::string_view language) {
    Files out;
    auto lang = base_language(language);
    auto num = [&](std::int64_t n) {
        auto f = number(n, lang);
        out.insert(out.end(), f.begin(), f.end());
    };
    for (std::size_t i = 0; i < format.size(); ++i) {
        char c = format[i];
        switch (c) {
            case '\'': {
                auto end = format.find('\'', i + 1);
                if (end == std::string_view::npos) end = format.size();
                if (end > i + 1) out.emplace_back(format.substr(i + 1, end - i - 1));
                i = end;
                break;
            }
            case 'A':
            case 'a':
                out.push_back("digits/day-" + std::to_string(t.tm_wday));
                break;
            case 'B':
            case 'b':
            case 'h':
                out.push_back("digits/mon-" + std::to_string(t.tm_mon));
                break;
            case 'd':
            case 'e':
                // English says ordinals; French and Italian only for the first.
                if (lang == "en" || ((lang == "fr" || lang == "it") && t.tm_mday == 1))
                    out.push_back("digits/h-" + std::to_string(t.tm_mday));
                else
                    num(t.tm_mday);
                break;
            case 'Y': {
                int y = t.tm_year + 1900;
                if (lang == "en" && y >= 1100 && y < 2000) {  // nineteen eighty-four
                    num(y / 100);
                    if (y % 100 == 0) {
                        out.push_back("digits/hundred");
                    } else {
                        if (y % 100 < 10) out.push_back("digits/oh");
                        num(y % 100);
                    }
                } else {
                    num(y);
                }
                break;
            }
            case 'H':
            case 'k':
                if (lang == "en" && c == 'H' && t.tm_hour < 10) out.push_back("digits/oh");
                num(t.tm_hour);
                break;
            case 'I':
            case 'l': {
                int h = t.tm_hour % 12;
                num(h == 0 ? 12 : h);
                break;
            }
            case 'M':
                if (lang == "en" && t.tm_min == 0) {
                    out.push_back("digits/oclock");
                } else {
                    if (lang == "en" && t.tm_min < 10) out.push_back("digits/oh");
                    num(t.tm_min);
                }
                break;
            case 'S':
                num(t.tm_sec);
                break;
            case 'p':
            case 'P':
                out.push_back(t.tm_hour < 12 ? "digits/a-m" : "digits/p-m");
                break;
            default:
                break;
        }
    }
    return out;
}

}  // namespace tandem::say
