// Audio track -> planar float at a requested rate/channel count (libswresample).
extern "C" {
#include <libavutil/channel_layout.h>
}

#include <algorithm>
#include <cmath>

#include "media/av_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

namespace v2m::media {

using namespace detail;

namespace {

constexpr int kMaxChannels = 64;
constexpr int kMinRate = 1000, kMaxRate = 768000;

// Planar-float output side of libswresample, appending to one vector per channel.
class Resampler {
 public:
  Resampler(int out_rate, int out_channels) : out_rate_(out_rate), out_ch_(out_channels) {}

  bool configured() const { return static_cast<bool>(swr_); }
  bool matches(const AVFrame* f) const {
    return swr_ && f->format == in_fmt_ && f->sample_rate == in_rate_ && f->ch_layout.nb_channels == in_ch_;
  }

  void configure(int in_channels, AVSampleFormat in_fmt, int in_rate, const std::string& path) {
    AVChannelLayout in_layout, out_layout;
    av_channel_layout_default(&in_layout, in_channels);
    av_channel_layout_default(&out_layout, out_ch_);
    SwrContext* s = nullptr;
    int err = swr_alloc_set_opts2(&s, &out_layout, AV_SAMPLE_FMT_FLTP, out_rate_, &in_layout, in_fmt, in_rate, 0, nullptr);
    swr_.reset(s);
    if (err >= 0) {
      // Mono <-> multichannel like ML audio tools (torchaudio/librosa): mono is the mean of
      // the channels, mono to N copies at unity. libswresample's default matrix would
      // use -3 dB centre mixing for both. Other layouts keep its standard downmix.
      std::vector<double> m;
      if (in_channels == 1 && out_ch_ > 1) m.assign(out_ch_, 1.0);
      if (out_ch_ == 1 && in_channels > 1) m.assign(in_channels, 1.0 / in_channels);
      if (!m.empty()) err = swr_set_matrix(s, m.data(), in_channels == 1 ? 1 : in_channels);
    }
    if (err >= 0) err = swr_init(s);
    if (err < 0) throw Error(describe("cannot resample audio", path, av_error(err)));
    in_fmt_ = in_fmt;
    in_rate_ = in_rate;
    in_ch_ = in_channels;
  }

  // in == nullptr flushes. Drops the first `*skip` output frames (decrementing it).
  void convert(const uint8_t** in, int in_count, std::vector<std::vector<float>>& out, int64_t* skip) {
    for (;;) {
      int cap = swr_get_out_samples(swr_.get(), in_count);
      if (cap <= 0) cap = in ? 0 : 4096;
      if (cap == 0 && in) break;
      for (auto& b : tmp_) b.resize(cap);
      tmp_.resize(out_ch_, std::vector<float>(cap));
      std::vector<uint8_t*> ptrs(out_ch_);
      for (int c = 0; c < out_ch_; ++c) ptrs[c] = reinterpret_cast<uint8_t*>(tmp_[c].data());
      int n = swr_convert(swr_.get(), ptrs.data(), cap, in, in_count);
      if (n < 0) throw Error("cannot resample audio: " + av_error(n));
      const int64_t drop = std::min<int64_t>(*skip, n);
      *skip -= drop;
      for (int c = 0; c < out_ch_; ++c) out[c].insert(out[c].end(), tmp_[c].begin() + drop, tmp_[c].begin() + n);
      if (in || n == 0) break;  // input consumed in one call; a flush loops until empty
    }
  }

 private:
  int out_rate_, out_ch_;
  int in_fmt_ = -1, in_rate_ = 0, in_ch_ = 0;
  SwrPtr swr_;
  std::vector<std::vector<float>> tmp_;
};

void check_target(int sample_rate, int channels, const std::string& what, const std::string& path) {
  if (sample_rate != 0 && (sample_rate < kMinRate || sample_rate > kMaxRate))
    throw Error(describe(what, path, "sample rate " + std::to_string(sample_rate) + " Hz is outside 1000..768000"));
  if (channels < 0 || channels > kMaxChannels)
    throw Error(describe(what, path, "channel count " + std::to_string(channels) + " is outside 1..64"));
}

// Per-channel vectors -> planar Audio with exactly `frames` frames (cut or zero-padded).
Audio assemble(std::vector<std::vector<float>>& chans, int rate, int64_t frames) {
  Audio a;
  a.sample_rate = rate;
  a.channels = static_cast<int>(chans.size());
  a.samples.assign(static_cast<size_t>(frames) * a.channels, 0.0f);
  for (int c = 0; c < a.channels; ++c) {
    auto& v = chans[c];
    const int64_t n = std::min<int64_t>(frames, static_cast<int64_t>(v.size()));
    std::copy(v.begin(), v.begin() + n, a.samples.begin() + static_cast<size_t>(c) * frames);
    std::vector<float>().swap(v);
  }
  return a;
}

}  // namespace

Audio decode_audio(const std::string& path, int sample_rate, int channels, double start, double duration) {
  const std::string what = "cannot decode audio";
  check_target(sample_rate, channels, what, path);
  if (!std::isfinite(start) || start < 0) throw Error(describe(what, path, "start must be >= 0"));
  if (!std::isfinite(duration)) throw Error(describe(what, path, "duration must be finite"));
  InputPtr fmt = open_input(path, what);
  const int as = find_stream(fmt.get(), AVMEDIA_TYPE_AUDIO, path, what);
  AVStream* st = fmt->streams[as];
  CodecCtxPtr dec = open_decoder(st, path, what);
  const int in_ch = dec->ch_layout.nb_channels;
  if (in_ch <= 0 || in_ch > kMaxChannels || dec->sample_rate <= 0)
    throw Error(describe(what, path, "unsupported stream: " + std::to_string(in_ch) + " channels at " +
                                         std::to_string(dec->sample_rate) + " Hz"));
  const int out_rate = sample_rate > 0 ? sample_rate : dec->sample_rate;
  const int out_ch = channels > 0 ? channels : in_ch;
  check_target(out_rate, out_ch, what, path);  // the source's own rate can be absurd too
  const double origin = origin_seconds(fmt.get());
  if (start > 0) seek_before(fmt.get(), as, start);

  const double want_d = duration > 0 ? std::round(duration * out_rate) : -1.0;
  if (want_d * out_ch * static_cast<double>(sizeof(float)) > static_cast<double>(kMaxBufferBytes))
    throw Error(describe(what, path, "duration " + std::to_string(duration) + " s needs more than " +
                                         std::to_string(kMaxBufferBytes >> 20) + " MiB of samples"));
  const int64_t want = static_cast<int64_t>(want_d);
  std::vector<std::vector<float>> out(out_ch);
  Resampler rs(out_rate, out_ch);
  int64_t skip = 0;
  bool first = true;
  auto on_decoded = [&](AVFrame* f) -> bool {
    if (f->ch_layout.nb_channels <= 0 || f->ch_layout.nb_channels > kMaxChannels || f->sample_rate <= 0) return true;
    if (first) {
      // Place the first decoded sample on the output time line: after a seek it is usually
      // before `start` (drop the excess); a stream that begins late gets leading silence so
      // audio time stays aligned with video time.
      first = false;
      if (f->best_effort_timestamp != AV_NOPTS_VALUE) {
        const double t = ts_seconds(f->best_effort_timestamp, st->time_base, origin);
        // Clamped so a hostile timestamp cannot overflow the int64 conversion (or its negation).
        const double off_d = std::clamp(std::round((t - start) * out_rate), -1e15, 1e15);
        const int64_t offset = std::isfinite(off_d) ? static_cast<int64_t>(off_d) : 0;
        if (offset < 0) skip = -offset;
        const int64_t cap = want >= 0 ? want : static_cast<int64_t>(out_rate) * 600;
        if (offset > 0) for (auto& c : out) c.assign(std::min(offset, cap), 0.0f);
      }
    }
    if (!rs.matches(f)) {
      if (rs.configured()) rs.convert(nullptr, 0, out, &skip);  // format change midway: flush the old one
      rs.configure(f->ch_layout.nb_channels, static_cast<AVSampleFormat>(f->format), f->sample_rate, path);
    }
    rs.convert(const_cast<const uint8_t**>(f->extended_data), f->nb_samples, out, &skip);
    return want < 0 || static_cast<int64_t>(out[0].size()) < want;
  };
  const DecodeStats stats = decode_stream(fmt.get(), dec.get(), as, on_decoded);
  if (stats.frames == 0) {
    std::string why = "no decodable audio";
    if (stats.failed_packets > 0) why += " (" + std::to_string(stats.failed_packets) + " corrupt packets)";
    throw Error(describe(what, path, why));
  }
  if (rs.configured() && (want < 0 || static_cast<int64_t>(out[0].size()) < want)) rs.convert(nullptr, 0, out, &skip);
  const int64_t got = static_cast<int64_t>(out[0].size());
  if (got == 0 && want < 0) throw Error(describe(what, path, "no audio in the requested range"));
  return assemble(out, out_rate, want >= 0 ? want : got);
}

Audio resample(const Audio& in, int sample_rate, int channels) {
  const std::string what = "cannot resample audio";
  if (in.sample_rate <= 0 || in.channels <= 0 || in.channels > kMaxChannels ||
      in.samples.size() % static_cast<size_t>(in.channels) != 0)
    throw Error(describe(what, "", "invalid input buffer (rate " + std::to_string(in.sample_rate) + ", " +
                                       std::to_string(in.channels) + " channels, " +
                                       std::to_string(in.samples.size()) + " samples)"));
  check_target(sample_rate, channels, what, "");
  const int out_rate = sample_rate > 0 ? sample_rate : in.sample_rate;
  const int out_ch = channels > 0 ? channels : in.channels;
  if (out_rate == in.sample_rate && out_ch == in.channels) return in;
  const int64_t n = in.frames();
  const int64_t want = static_cast<int64_t>(std::llround(static_cast<double>(n) * out_rate / in.sample_rate));
  Resampler rs(out_rate, out_ch);
  rs.configure(in.channels, AV_SAMPLE_FMT_FLTP, in.sample_rate, "");
  std::vector<std::vector<float>> out(out_ch);
  int64_t skip = 0;
  constexpr int64_t kChunk = 1 << 16;  // bounds the temporary buffers for long inputs
  std::vector<const uint8_t*> ptrs(in.channels);
  for (int64_t pos = 0; pos < n; pos += kChunk) {
    const int64_t len = std::min(kChunk, n - pos);
    for (int c = 0; c < in.channels; ++c) ptrs[c] = reinterpret_cast<const uint8_t*>(in.channel(c) + pos);
    rs.convert(ptrs.data(), static_cast<int>(len), out, &skip);
  }
  rs.convert(nullptr, 0, out, &skip);
  return assemble(out, out_rate, want);
}

}  // namespace v2m::media
