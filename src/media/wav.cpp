// Hand-written RIFF/WAVE reader and writer: no libav dependency, exact control of the
// sample quantisation (bit-exact round trips), strict bounds on every chunk.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include "media/audio_util.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"

namespace v2m::media {

using detail::check_audio_buffer;
using detail::to_pcm16;

namespace {

constexpr uint16_t kFormatPcm = 1, kFormatFloat = 3, kFormatExtensible = 0xFFFE;
constexpr int kMaxChannels = 64;

void put16(std::vector<uint8_t>& b, uint32_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}
uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t get32(const uint8_t* p) { return get16(p) | (static_cast<uint32_t>(get16(p + 2)) << 16); }

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

}  // namespace

void detail::check_audio_buffer(const Audio& a, const std::string& what, const std::string& path) {
  if (a.sample_rate <= 0 || a.channels <= 0 || a.channels > kMaxChannels)
    throw Error(describe(what, path, "invalid audio: " + std::to_string(a.channels) + " channels at " +
                                         std::to_string(a.sample_rate) + " Hz"));
  if (a.samples.size() % static_cast<size_t>(a.channels) != 0)
    throw Error(describe(what, path, "invalid audio: sample count is not a multiple of the channel count"));
}

void write_wav(const std::string& path, const Audio& audio, WavFormat format) {
  const std::string what = "cannot write wav";
  check_audio_buffer(audio, what, path);
  const int bytes = format == WavFormat::PCM16 ? 2 : 4;
  const uint64_t frames = static_cast<uint64_t>(audio.frames());
  const uint64_t data_bytes = frames * audio.channels * bytes;
  // Float WAV carries the (optional but expected) 18-byte fmt and a fact chunk.
  const uint32_t fmt_size = format == WavFormat::PCM16 ? 16 : 18;
  const uint32_t header = 12 + 8 + fmt_size + (format == WavFormat::Float32 ? 12 : 0) + 8;
  if (data_bytes + header > 0xFFFFFFFFull) throw Error(describe(what, path, "too long for a WAV file (4 GiB limit)"));

  std::vector<uint8_t> h;
  h.insert(h.end(), {'R', 'I', 'F', 'F'});
  put32(h, static_cast<uint32_t>(header - 8 + data_bytes));
  h.insert(h.end(), {'W', 'A', 'V', 'E', 'f', 'm', 't', ' '});
  put32(h, fmt_size);
  put16(h, format == WavFormat::PCM16 ? kFormatPcm : kFormatFloat);
  put16(h, audio.channels);
  put32(h, audio.sample_rate);
  put32(h, audio.sample_rate * audio.channels * bytes);
  put16(h, audio.channels * bytes);
  put16(h, bytes * 8);
  if (format == WavFormat::Float32) {
    put16(h, 0);  // cbSize
    h.insert(h.end(), {'f', 'a', 'c', 't'});
    put32(h, 4);
    put32(h, static_cast<uint32_t>(frames));
  }
  h.insert(h.end(), {'d', 'a', 't', 'a'});
  put32(h, static_cast<uint32_t>(data_bytes));

  atomic_write(path, [&](const std::string& tmp) {
    FilePtr f(std::fopen(tmp.c_str(), "wb"));
    if (!f) throw Error(describe(what, path, std::strerror(errno)));
    bool ok = std::fwrite(h.data(), 1, h.size(), f.get()) == h.size();
    // Interleave in blocks: bounded memory for long audio, little-endian on any host.
    std::vector<uint8_t> buf;
    const uint64_t block = 8192;
    for (uint64_t n0 = 0; ok && n0 < frames; n0 += block) {
      const uint64_t n1 = std::min(frames, n0 + block);
      buf.clear();
      for (uint64_t n = n0; n < n1; ++n) {
        for (int c = 0; c < audio.channels; ++c) {
          const float x = audio.channel(c)[n];
          if (format == WavFormat::PCM16) {
            put16(buf, static_cast<uint16_t>(to_pcm16(x)));
          } else {
            uint32_t u;
            std::memcpy(&u, &x, 4);
            put32(buf, u);
          }
        }
      }
      ok = std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
    }
    if (!ok || std::fflush(f.get()) != 0) throw Error(describe(what, path, std::strerror(errno ? errno : EIO)));
    FILE* raw = f.release();
    if (std::fclose(raw) != 0) throw Error(describe(what, path, std::strerror(errno)));
  });
}

Audio read_wav(const std::string& path) {
  const std::string what = "cannot read wav";
  require_regular_file(path, what);
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(describe(what, path, std::strerror(errno)));
  std::fseek(f.get(), 0, SEEK_END);
  const long file_size = std::ftell(f.get());
  std::fseek(f.get(), 0, SEEK_SET);
  uint8_t riff[12];
  if (file_size < 12 || std::fread(riff, 1, 12, f.get()) != 12 || std::memcmp(riff, "RIFF", 4) != 0 ||
      std::memcmp(riff + 8, "WAVE", 4) != 0)
    throw Error(describe(what, path, "not a RIFF/WAVE file"));

  uint16_t tag = 0, channels = 0, block_align = 0, bits = 0;
  uint32_t rate = 0;
  bool have_fmt = false;
  long pos = 12;
  for (;;) {
    uint8_t ch[8];
    if (pos + 8 > file_size || std::fseek(f.get(), pos, SEEK_SET) != 0 || std::fread(ch, 1, 8, f.get()) != 8)
      throw Error(describe(what, path, have_fmt ? "no data chunk" : "no fmt chunk"));
    const uint32_t size = get32(ch + 4);
    const long body = pos + 8;
    if (std::memcmp(ch, "fmt ", 4) == 0) {
      uint8_t b[40] = {0};
      if (size < 16 || body + static_cast<long>(std::min<uint32_t>(size, 40)) > file_size ||
          std::fread(b, 1, std::min<uint32_t>(size, 40), f.get()) != std::min<uint32_t>(size, 40))
        throw Error(describe(what, path, "truncated fmt chunk"));
      tag = get16(b);
      channels = get16(b + 2);
      rate = get32(b + 4);
      block_align = get16(b + 12);
      bits = get16(b + 14);
      // WAVE_FORMAT_EXTENSIBLE: the real format tag leads the SubFormat GUID.
      if (tag == kFormatExtensible && size >= 40) tag = get16(b + 24);
      have_fmt = true;
    } else if (std::memcmp(ch, "data", 4) == 0) {
      if (!have_fmt) throw Error(describe(what, path, "data chunk before fmt chunk"));
      const bool pcm = tag == kFormatPcm && (bits == 8 || bits == 16 || bits == 24 || bits == 32);
      const bool flt = tag == kFormatFloat && (bits == 32 || bits == 64);
      if (!pcm && !flt)
        throw Error(describe(what, path, "unsupported sample format (tag " + std::to_string(tag) + ", " +
                                             std::to_string(bits) + " bits)"));
      if (channels == 0 || channels > kMaxChannels || rate == 0 || block_align != channels * (bits / 8))
        throw Error(describe(what, path, "inconsistent fmt chunk"));
      // Validate the declared size against the file before allocating anything for it.
      if (body + static_cast<int64_t>(size) > file_size)
        throw Error(describe(what, path, "truncated: data chunk says " + std::to_string(size) + " bytes, file has " +
                                             std::to_string(file_size - body)));
      const uint32_t frames = size / block_align;
      std::vector<uint8_t> raw(static_cast<size_t>(frames) * block_align);
      if (!raw.empty() && std::fread(raw.data(), 1, raw.size(), f.get()) != raw.size())
        throw Error(describe(what, path, "read error"));
      Audio a;
      a.sample_rate = static_cast<int>(rate);
      a.channels = channels;
      a.samples.resize(static_cast<size_t>(frames) * channels);
      const int bps = bits / 8;
      for (uint32_t n = 0; n < frames; ++n) {
        for (int c = 0; c < channels; ++c) {
          const uint8_t* p = raw.data() + static_cast<size_t>(n) * block_align + c * bps;
          float x;
          if (flt && bits == 32) {
            uint32_t u = get32(p);
            std::memcpy(&x, &u, 4);
          } else if (flt) {
            uint64_t u = get32(p) | (static_cast<uint64_t>(get32(p + 4)) << 32);
            double d;
            std::memcpy(&d, &u, 8);
            x = static_cast<float>(d);
          } else if (bits == 8) {
            x = (static_cast<int>(p[0]) - 128) / 128.0f;
          } else if (bits == 16) {
            x = static_cast<int16_t>(get16(p)) / 32768.0f;
          } else if (bits == 24) {
            int32_t v = static_cast<int32_t>((p[0] << 8) | (p[1] << 16) | (static_cast<uint32_t>(p[2]) << 24)) >> 8;
            x = static_cast<float>(v / 8388608.0);
          } else {
            x = static_cast<float>(static_cast<int32_t>(get32(p)) / 2147483648.0);
          }
          a.samples[static_cast<size_t>(c) * frames + n] = x;
        }
      }
      return a;
    }
    pos = body + static_cast<long>(size) + (size & 1);  // chunks are padded to even sizes
  }
}

}  // namespace v2m::media
