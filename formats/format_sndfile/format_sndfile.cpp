// format_sndfile: media files through libsndfile, and the raw telephony formats.
//
// WAV holds PCM (any rate), µ-law, A-law or GSM 06.10. µ-law and A-law WAV
// are read and written as their encoded bytes (sf_read_raw/sf_write_raw), so a
// µ-law prompt plays to a µ-law channel with no translation at all; PCM at
// 8, 16 or 48 kHz comes out as slin8/16/48; GSM WAV (Microsoft's 65-byte
// framing) is decoded to slin8 by libsndfile. MP3 is decoded by libsndfile
// (mpg123). Audio at a rate the core has no slin format for (44.1 kHz music,
// 22.05 kHz WAV) is mixed to mono and resampled here with SpeexDSP to the next
// core rate up (48 kHz above 16 kHz), so music on hold can use ordinary MP3s.
//
// The raw formats (.ulaw .alaw .sln .sln16 .sln48 .gsm) are headerless
// streams read and written with plain stdio: raw .gsm is 33-byte GSM 06.10
// frames, passed through as Format::gsm without decoding.
//
// Writers write to `<name>.tmp` and rename on commit() after fsync (see
// tandem/file.hpp). Everything here is blocking file I/O, run by the caller
// on the worker pool; one object is used by one thread at a time.
#include <tandem/file.hpp>
#include <tandem/module.hpp>

#include <sndfile.h>
#include <speex/speex_resampler.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using namespace tandem;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

std::string errno_text(int e) {
    return std::strerror(e);
}

fs::path temp_name(const fs::path& final_name) {
    fs::path p = final_name;
    p += ".tmp";
    return p;
}

// fsync of the folder makes the rename itself durable.
void sync_dir(const fs::path& dir) {
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    ::fsync(fd);
    ::close(fd);
}

void fill_voice(Frame& out, Format f, std::uint32_t samples, std::uint64_t position,
                std::span<const std::uint8_t> bytes) {
    out.kind = FrameKind::voice;
    out.subclass = static_cast<std::uint32_t>(f);
    out.samples = samples;
    out.timestamp = static_cast<std::uint32_t>(position);
    out.duration_ms = 0;
    out.set_payload(bytes);
}

// --- raw streams ---------------------------------------------------------

struct RawLayout {
    Format format;
    std::uint32_t block_bytes;    // bytes per block
    std::uint32_t block_samples;  // samples per block
    std::uint32_t rate;
};

class RawReader final : public MediaReader {
public:
    RawReader(fs::path path, std::FILE* f, RawLayout layout, std::uint64_t bytes)
        : path_(std::move(path)), file_(f), layout_(layout), total_blocks_(bytes / layout.block_bytes) {}
    ~RawReader() override { std::fclose(file_); }

    Format format() const override { return layout_.format; }
    std::uint32_t sample_rate() const override { return layout_.rate; }
    bool read(Frame& out, std::uint32_t samples) override {
        std::uint64_t blocks = std::max<std::uint32_t>(1, samples / layout_.block_samples);
        blocks = std::min(blocks, total_blocks_ - std::min(total_blocks_, block_));
        if (blocks == 0) return false;
        buf_.resize(blocks * layout_.block_bytes);
        auto got = std::fread(buf_.data(), 1, buf_.size(), file_) / layout_.block_bytes;
        if (got == 0) return false;
        fill_voice(out, layout_.format, static_cast<std::uint32_t>(got * layout_.block_samples),
                   block_ * layout_.block_samples, std::span(buf_.data(), got * layout_.block_bytes));
        block_ += got;
        return true;
    }
    bool seek(milliseconds position) override {
        auto sample = static_cast<std::uint64_t>(std::max<std::int64_t>(0, position.count())) * layout_.rate / 1000;
        auto block = std::min(total_blocks_, sample / layout_.block_samples);
        if (std::fseek(file_, static_cast<long>(block * layout_.block_bytes), SEEK_SET) != 0) return false;
        block_ = block;
        return true;
    }
    milliseconds length() const override { return to_ms(total_blocks_); }
    milliseconds position() const override { return to_ms(block_); }
    const fs::path& path() const override { return path_; }

private:
    milliseconds to_ms(std::uint64_t blocks) const {
        return milliseconds(static_cast<std::int64_t>(blocks * layout_.block_samples * 1000 / layout_.rate));
    }
    fs::path path_;
    std::FILE* file_;
    RawLayout layout_;
    std::uint64_t total_blocks_;
    std::uint64_t block_ = 0;
    std::vector<std::uint8_t> buf_;
};

// The part of a writer every format shares: the temporary file's descriptor,
// commit (fsync, rename, fsync of the folder) and abort.
class TempFile {
public:
    bool open(const fs::path& final_name, std::string& error) {
        final_ = final_name;
        tmp_ = temp_name(final_name);
        fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd_ < 0) {
            error = tmp_.string() + ": " + errno_text(errno);
            return false;
        }
        return true;
    }
    int fd() const { return fd_; }
    const fs::path& final_name() const { return final_; }
    // After the format flushed everything to fd().
    bool commit(std::string& error) {
        if (fd_ < 0) {
            error = final_.string() + ": already finished";
            return false;
        }
        if (::fsync(fd_) != 0) {
            error = tmp_.string() + ": fsync: " + errno_text(errno);
            abort();
            return false;
        }
        ::close(std::exchange(fd_, -1));
        if (std::rename(tmp_.c_str(), final_.c_str()) != 0) {
            error = final_.string() + ": rename: " + errno_text(errno);
            ::unlink(tmp_.c_str());
            return false;
        }
        sync_dir(final_.parent_path());
        return true;
    }
    void abort() {
        if (fd_ < 0) return;
        ::close(std::exchange(fd_, -1));
        ::unlink(tmp_.c_str());
    }
    bool done() const { return fd_ < 0; }
    ~TempFile() { abort(); }

private:
    fs::path final_, tmp_;
    int fd_ = -1;
};

class RawWriter final : public MediaWriter {
public:
    explicit RawWriter(RawLayout layout) : layout_(layout) {}
    ~RawWriter() override { abort(); }
    bool open(const fs::path& p, std::string& error) {
        if (!tmp_.open(p, error)) return false;
        file_ = ::fdopen(::dup(tmp_.fd()), "w");
        if (!file_) {
            error = p.string() + ": " + errno_text(errno);
            tmp_.abort();
            return false;
        }
        return true;
    }
    Format format() const override { return layout_.format; }
    bool write(const Frame& f) override {
        if (f.kind != FrameKind::voice || f.subclass != static_cast<std::uint32_t>(layout_.format)) return true;
        if (failed_ || !file_) return false;
        auto p = f.payload();
        auto whole = p.size() / layout_.block_bytes * layout_.block_bytes;
        if (std::fwrite(p.data(), 1, whole, file_) != whole) failed_ = true;
        samples_ += whole / layout_.block_bytes * layout_.block_samples;
        return !failed_;
    }
    bool commit(std::string& error) override {
        if (!file_) {
            error = tmp_.final_name().string() + ": already finished";
            return false;
        }
        bool flushed = std::fflush(file_) == 0 && !failed_;
        int e = errno;
        std::fclose(std::exchange(file_, nullptr));
        if (!flushed) {
            error = tmp_.final_name().string() + ": write failed: " + errno_text(failed_ ? ENOSPC : e);
            tmp_.abort();
            return false;
        }
        return tmp_.commit(error);
    }
    void abort() override {
        if (file_) std::fclose(std::exchange(file_, nullptr));
        tmp_.abort();
    }
    std::uint64_t samples() const override { return samples_; }
    const fs::path& path() const override { return tmp_.final_name(); }

private:
    RawLayout layout_;
    TempFile tmp_;
    std::FILE* file_ = nullptr;
    bool failed_ = false;
    std::uint64_t samples_ = 0;
};

std::unique_ptr<MediaReader> open_raw(const fs::path& p, RawLayout layout, std::string& error) {
    std::FILE* f = std::fopen(p.c_str(), "rbe");
    if (!f) {
        error = p.string() + ": " + errno_text(errno);
        return nullptr;
    }
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    if (ec) size = 0;
    return std::make_unique<RawReader>(p, f, layout, size);
}

// --- libsndfile ------------------------------------------------------------

// The rate frames come out at: the file's own when the core has a slin
// format for it, else the next core rate up.
std::uint32_t output_rate(int file_rate) {
    if (file_rate == 8000 || file_rate == 16000 || file_rate == 48000) return static_cast<std::uint32_t>(file_rate);
    if (file_rate < 8000) return 8000;
    if (file_rate < 16000) return 16000;
    return 48000;
}

// What a reader of this file produces: raw G.711 for mono µ-law/A-law at
// 8 kHz, else signed linear.
Format output_format(const SF_INFO& info) {
    int sub = info.format & SF_FORMAT_SUBMASK;
    if (info.channels == 1 && info.samplerate == 8000) {
        if (sub == SF_FORMAT_ULAW) return Format::ulaw;
        if (sub == SF_FORMAT_ALAW) return Format::alaw;
    }
    return slin_at(output_rate(info.samplerate));
}

class SndReader final : public MediaReader {
public:
    SndReader(fs::path path, SNDFILE* sf, SF_INFO info)
        : path_(std::move(path)), sf_(sf), info_(info), format_(output_format(info)) {
        raw_ = format_ == Format::ulaw || format_ == Format::alaw;
        rate_ = raw_ ? 8000 : output_rate(info.samplerate);
        if (!raw_ && rate_ != static_cast<std::uint32_t>(info.samplerate)) {
            int err = 0;
            resampler_ = speex_resampler_init(1, static_cast<spx_uint32_t>(info.samplerate), rate_, 4, &err);
        }
    }
    ~SndReader() override {
        if (resampler_) speex_resampler_destroy(resampler_);
        sf_close(sf_);
    }
    bool usable() const { return raw_ || rate_ == static_cast<std::uint32_t>(info_.samplerate) || resampler_; }

    Format format() const override { return format_; }
    std::uint32_t sample_rate() const override { return rate_; }

    bool read(Frame& out, std::uint32_t samples) override {
        if (samples == 0) samples = 1;
        if (raw_) {
            bytes_.resize(samples);
            auto got = sf_read_raw(sf_, bytes_.data(), samples);
            if (got <= 0) return false;
            fill_voice(out, format_, static_cast<std::uint32_t>(got), position_, std::span(bytes_.data(), got));
            position_ += static_cast<std::uint64_t>(got);
            return true;
        }
        pcm_.resize(samples);
        std::size_t made = resampler_ ? read_resampled(samples) : read_mono(pcm_.data(), samples);
        if (made == 0) return false;
        fill_voice(out, format_, static_cast<std::uint32_t>(made), position_,
                   std::span(reinterpret_cast<const std::uint8_t*>(pcm_.data()), made * 2));
        position_ += made;
        return true;
    }

    bool seek(milliseconds position) override {
        auto ms = std::max<std::int64_t>(0, position.count());
        sf_count_t frame = static_cast<sf_count_t>(ms * info_.samplerate / 1000);
        if (info_.frames > 0) frame = std::min<sf_count_t>(frame, info_.frames);
        if (sf_seek(sf_, frame, SEEK_SET) < 0) return false;
        position_ = static_cast<std::uint64_t>(ms) * rate_ / 1000;
        pending_.clear();
        pending_at_ = 0;
        eof_ = false;
        if (resampler_) speex_resampler_reset_mem(resampler_);
        return true;
    }
    milliseconds length() const override {
        if (info_.frames <= 0 || info_.samplerate <= 0) return milliseconds(0);
        return milliseconds(info_.frames * 1000 / info_.samplerate);
    }
    milliseconds position() const override { return milliseconds(static_cast<std::int64_t>(position_ * 1000 / rate_)); }
    const fs::path& path() const override { return path_; }

private:
    // Up to `n` mono samples at the file's rate into `dst` (mixing channels).
    std::size_t read_mono(std::int16_t* dst, std::size_t n) {
        if (info_.channels == 1) {
            auto got = sf_readf_short(sf_, dst, static_cast<sf_count_t>(n));
            return got > 0 ? static_cast<std::size_t>(got) : 0;
        }
        auto ch = static_cast<std::size_t>(info_.channels);
        interleaved_.resize(n * ch);
        auto got = sf_readf_short(sf_, interleaved_.data(), static_cast<sf_count_t>(n));
        if (got <= 0) return 0;
        for (std::size_t i = 0; i < static_cast<std::size_t>(got); ++i) {
            int sum = 0;
            for (std::size_t c = 0; c < ch; ++c) sum += interleaved_[i * ch + c];
            dst[i] = static_cast<std::int16_t>(sum / static_cast<int>(ch));
        }
        return static_cast<std::size_t>(got);
    }

    // Up to `n` samples at rate_ into pcm_, through the resampler.
    std::size_t read_resampled(std::size_t n) {
        std::size_t made = 0;
        while (made < n) {
            if (pending_at_ >= pending_.size()) {
                if (eof_) break;
                pending_.resize(1024);
                pending_.resize(read_mono(pending_.data(), pending_.size()));
                pending_at_ = 0;
                if (pending_.empty()) {
                    eof_ = true;
                    break;
                }
            }
            auto in_len = static_cast<spx_uint32_t>(pending_.size() - pending_at_);
            auto out_len = static_cast<spx_uint32_t>(n - made);
            speex_resampler_process_int(resampler_, 0, pending_.data() + pending_at_, &in_len, pcm_.data() + made,
                                        &out_len);
            pending_at_ += in_len;
            made += out_len;
            if (in_len == 0 && out_len == 0) break;
        }
        return made;
    }

    fs::path path_;
    SNDFILE* sf_;
    SF_INFO info_;
    Format format_;
    bool raw_ = false;
    std::uint32_t rate_ = 8000;
    SpeexResamplerState* resampler_ = nullptr;
    std::uint64_t position_ = 0;  // samples at rate_
    std::vector<std::uint8_t> bytes_;
    std::vector<std::int16_t> pcm_, interleaved_, pending_;
    std::size_t pending_at_ = 0;
    bool eof_ = false;
};

std::unique_ptr<MediaReader> open_sndfile(const fs::path& p, std::string& error) {
    SF_INFO info{};
    SNDFILE* sf = sf_open(p.c_str(), SFM_READ, &info);
    if (!sf) {
        error = p.string() + ": " + sf_strerror(nullptr);
        return nullptr;
    }
    if (info.channels < 1 || info.samplerate < 1000 || info.samplerate > 192000) {
        sf_close(sf);
        error = p.string() + ": unsupported layout (" + std::to_string(info.channels) + " channels at " +
                std::to_string(info.samplerate) + " Hz)";
        return nullptr;
    }
    auto r = std::make_unique<SndReader>(p, sf, info);
    if (!r->usable()) {
        error = p.string() + ": cannot resample from " + std::to_string(info.samplerate) + " Hz";
        return nullptr;
    }
    return r;
}

Format probe_sndfile(const fs::path& p) {
    SF_INFO info{};
    SNDFILE* sf = sf_open(p.c_str(), SFM_READ, &info);
    if (!sf) return Format::none;
    sf_close(sf);
    if (info.channels < 1 || info.samplerate < 1000 || info.samplerate > 192000) return Format::none;
    return output_format(info);
}

class SndWriter final : public MediaWriter {
public:
    explicit SndWriter(Format f) : format_(f) {}
    ~SndWriter() override { abort(); }

    bool open(const fs::path& p, int sf_format, int rate, std::string& error) {
        if (!tmp_.open(p, error)) return false;
        SF_INFO info{};
        info.samplerate = rate;
        info.channels = 1;
        info.format = sf_format;
        if (!sf_format_check(&info)) {
            error = p.string() + ": libsndfile cannot write this format";
            tmp_.abort();
            return false;
        }
        sf_ = sf_open_fd(tmp_.fd(), SFM_WRITE, &info, SF_FALSE);
        if (!sf_) {
            error = p.string() + ": " + sf_strerror(nullptr);
            tmp_.abort();
            return false;
        }
        raw_ = format_ == Format::ulaw || format_ == Format::alaw;
        return true;
    }

    Format format() const override { return format_; }
    bool write(const Frame& f) override {
        if (f.kind != FrameKind::voice || f.subclass != static_cast<std::uint32_t>(format_)) return true;
        if (failed_ || !sf_) return false;
        auto p = f.payload();
        if (raw_) {
            auto n = static_cast<sf_count_t>(p.size());
            if (sf_write_raw(sf_, p.data(), n) != n) failed_ = true;
            samples_ += p.size();
        } else {
            std::size_t n = p.size() / 2;
            pcm_.resize(n);  // the payload's bytes may not be aligned for int16_t
            std::memcpy(pcm_.data(), p.data(), n * 2);
            if (sf_writef_short(sf_, pcm_.data(), static_cast<sf_count_t>(n)) != static_cast<sf_count_t>(n))
                failed_ = true;
            samples_ += n;
        }
        return !failed_;
    }
    bool commit(std::string& error) override {
        if (!sf_) {
            error = tmp_.final_name().string() + ": already finished";
            return false;
        }
        sf_write_sync(sf_);
        int close_err = sf_close(std::exchange(sf_, nullptr));  // writes the final header
        if (failed_ || close_err != 0) {
            error = tmp_.final_name().string() + ": write failed: " +
                    (failed_ ? std::string("short write (disk full?)") : sf_error_number(close_err));
            tmp_.abort();
            return false;
        }
        return tmp_.commit(error);
    }
    void abort() override {
        if (sf_) sf_close(std::exchange(sf_, nullptr));
        tmp_.abort();
    }
    std::uint64_t samples() const override { return samples_; }
    const fs::path& path() const override { return tmp_.final_name(); }

private:
    Format format_;
    TempFile tmp_;
    SNDFILE* sf_ = nullptr;
    bool raw_ = false;
    bool failed_ = false;
    std::uint64_t samples_ = 0;
    std::vector<std::int16_t> pcm_;
};

// WAV encodings by the frames a writer is fed.
std::unique_ptr<MediaWriter> create_wav(const fs::path& p, Format f, std::string& error) {
    int sub = 0, rate = 8000;
    switch (f) {
        case Format::none:
        case Format::slin8:
            f = Format::slin8;
            sub = SF_FORMAT_PCM_16;
            break;
        case Format::slin16:
            sub = SF_FORMAT_PCM_16;
            rate = 16000;
            break;
        case Format::slin48:
            sub = SF_FORMAT_PCM_16;
            rate = 48000;
            break;
        case Format::ulaw:
            sub = SF_FORMAT_ULAW;
            break;
        case Format::alaw:
            sub = SF_FORMAT_ALAW;
            break;
        default:
            error = p.string() + ": WAV files hold slin8, slin16, slin48, ulaw or alaw, not " +
                    std::string(format_info(f).name);
            return nullptr;
    }
    auto w = std::make_unique<SndWriter>(f);
    if (!w->open(p, SF_FORMAT_WAV | sub, rate, error)) return nullptr;
    return w;
}

std::unique_ptr<MediaWriter> create_mp3(const fs::path& p, Format f, std::string& error) {
    if (f == Format::none) f = Format::slin8;
    auto rate = format_info(f).sample_rate;
    if (f != Format::slin8 && f != Format::slin16 && f != Format::slin48) {
        error = p.string() + ": MP3 files are written from slin8, slin16 or slin48";
        return nullptr;
    }
    auto w = std::make_unique<SndWriter>(f);
    if (!w->open(p, SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, static_cast<int>(rate), error)) return nullptr;
    return w;
}

FileFormat raw_format(std::string description, std::vector<std::string> exts, RawLayout layout) {
    FileFormat ff;
    ff.description = std::move(description);
    ff.extensions = std::move(exts);
    ff.format = layout.format;
    ff.can_read = ff.can_write = true;
    ff.open = [layout](const fs::path& p, std::string& error) { return open_raw(p, layout, error); };
    ff.create = [layout](const fs::path& p, Format f, std::string& error) -> std::unique_ptr<MediaWriter> {
        if (f != Format::none && f != layout.format) {
            error = p.string() + ": this file holds " + std::string(format_info(layout.format).name) + ", not " +
                    std::string(format_info(f).name);
            return nullptr;
        }
        auto w = std::make_unique<RawWriter>(layout);
        if (!w->open(p, error)) return nullptr;
        return w;
    };
    return ff;
}

class SndfileModule final : public Module {
public:
    void load(Host& host) override {
        FileFormat wav;
        wav.description = "WAV: PCM (any rate), mu-law, A-law (played undecoded), GSM 06.10";
        wav.extensions = {"wav"};
        wav.format = Format::slin8;
        wav.can_read = wav.can_write = true;
        wav.probe = probe_sndfile;
        wav.open = open_sndfile;
        wav.create = create_wav;
        regs_.push_back(host.add("wav", std::move(wav)));

        FileFormat wav16;
        wav16.description = "WAV, 16 kHz signed linear";
        wav16.extensions = {"wav16"};
        wav16.format = Format::slin16;
        wav16.can_read = wav16.can_write = true;
        wav16.probe = probe_sndfile;
        wav16.open = open_sndfile;
        wav16.create = [](const fs::path& p, Format f, std::string& error) {
            return create_wav(p, f == Format::none ? Format::slin16 : f, error);
        };
        regs_.push_back(host.add("wav16", std::move(wav16)));

        FileFormat mp3;
        mp3.description = "MP3 (decoded by mpg123; other rates resampled to 48 kHz)";
        mp3.extensions = {"mp3"};
        mp3.format = Format::slin48;
        mp3.can_read = true;
        SF_INFO check{};
        check.samplerate = 8000;
        check.channels = 1;
        check.format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
        mp3.can_write = sf_format_check(&check) != 0;
        mp3.probe = probe_sndfile;
        mp3.open = open_sndfile;
        if (mp3.can_write) mp3.create = create_mp3;
        regs_.push_back(host.add("mp3", std::move(mp3)));

        regs_.push_back(
            host.add("ulaw", raw_format("Raw G.711 mu-law", {"ulaw", "ul", "pcm", "mu"}, {Format::ulaw, 1, 1, 8000})));
        regs_.push_back(host.add("alaw", raw_format("Raw G.711 A-law", {"alaw", "al"}, {Format::alaw, 1, 1, 8000})));
        regs_.push_back(host.add(
            "sln", raw_format("Raw signed linear, 8 kHz", {"sln", "raw", "slin"}, {Format::slin8, 2, 1, 8000})));
        regs_.push_back(host.add(
            "sln16", raw_format("Raw signed linear, 16 kHz", {"sln16", "slin16"}, {Format::slin16, 2, 1, 16000})));
        regs_.push_back(host.add(
            "sln48", raw_format("Raw signed linear, 48 kHz", {"sln48", "slin48"}, {Format::slin48, 2, 1, 48000})));
        regs_.push_back(
            host.add("gsm", raw_format("Raw GSM 06.10 (33-byte frames)", {"gsm"}, {Format::gsm, 33, 160, 8000})));
    }

private:
    std::vector<Registration> regs_;
};

}  // namespace

TANDEM_MODULE(SndfileModule)
