// Fuzzes media probing and decoding. The input is written to one memfd per process and read
// through its /proc/self/fd path (libav opens it like any file); then the WAV reader, probe, a bounded video
// decode (small output, a few seconds) and a bounded audio decode. Only v2m::Error may escape.
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "v2m/error.h"
#include "v2m/media.h"

namespace {

int g_fd = -1;
std::string g_path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  g_fd = memfd_create("v2m_fuzz_media", 0);
  if (g_fd < 0) std::abort();
  g_path = "/proc/self/fd/" + std::to_string(g_fd);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (ftruncate(g_fd, 0) != 0) std::abort();
  if (size > 0 && pwrite(g_fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
  try {  // the hand-written WAV reader sees the same bytes
    v2m::media::Audio w = v2m::media::read_wav(g_path);
    if (w.channels <= 0 || w.sample_rate <= 0 || w.samples.size() % w.channels) std::abort();
  } catch (const v2m::Error&) {
  }
  try {
    v2m::media::ProbeInfo info = v2m::media::probe(g_path);
    (void)v2m::media::to_json(info);
    (void)v2m::media::to_text(info);
  } catch (const v2m::Error&) {
    return 0;  // decoders open the file the same way: nothing more to find
  }
  try {
    v2m::media::VideoDecodeOptions o;
    o.fps = 4;
    o.duration = 3;
    o.short_side = 32;
    int64_t n = 0;
    v2m::media::decode_video_frames(g_path, o, [&](const cv::Mat& m, double) {
      if (m.empty() || m.rows <= 0 || m.cols <= 0) std::abort();
      ++n;
    });
    if (n > 13) std::abort();  // 3 s at 4 fps: 12 frames (+1 for rounding)
  } catch (const v2m::Error&) {
  }
  try {
    v2m::media::Audio a = v2m::media::decode_audio(g_path, 16000, 1, 0, 2.0);
    if (a.frames() != 32000) std::abort();
  } catch (const v2m::Error&) {
  }
  return 0;
}
