// The two frozen pretrained parts of Model-S on the CPU, random fp32 weights with the real
// shapes (only the shapes matter for time):
//   - CLIP ViT-B/32 vision tower + projection: images per second at batch 8 (224 x 224),
//     plus clip_preprocess of a 1280 x 720 frame;
//   - EnCodec 32 kHz: decode of 10 s of codes (4 x 500 frames) in one pass and through
//     decode_chunked with 250-frame chunks and 50 frames of overlap (two 5 s chunks: the cost
//     of the context), as a real-time factor (compute seconds per second of audio; < 1 is
//     faster than real time), and encode of 10 s.
// LibTorch's CPU tensors come from v2m's caching allocator, as in the CLI (V2M_CPU_CACHE_MB=0
// for LibTorch's own). Median of 2 repetitions (preprocessing: 5) after one warm-up, as wall seconds and as
// process CPU seconds (all threads; on a shared, loaded machine cpu_s / threads is the
// better estimate of the uncontended wall time). JSON on stdout.
//   bench_clip_encodec [threads]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "nn/clip_vision.h"
#include "nn/encodec.h"
#include "nn/state_dict.h"
#include "v2m/runtime.h"

using namespace v2m::nn;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Timing {
  double wall = 0, cpu = 0;
};

// Median wall and CPU seconds of `reps` runs of f after one warm-up run.
Timing time_median(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> w, c;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s(), c0 = cpu_s();
    f();
    w.push_back(now_s() - t0);
    c.push_back(cpu_s() - c0);
  }
  std::sort(w.begin(), w.end());
  std::sort(c.begin(), c.end());
  return {w[w.size() / 2], c[c.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  v2m::reexec_with_thread_env(argv);  // as the CLI
  v2m::use_caching_cpu_allocator();  // as the CLI (V2M_CPU_CACHE_MB=0: off)
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  at::InferenceMode guard;
  torch::manual_seed(0);

  // CLIP ViT-B/32.
  ClipVision clip(ClipVisionConfig{});
  clip->eval();
  const int64_t batch = 8;
  at::Tensor px = at::randn({batch, 3, 224, 224});
  const Timing clip_t = time_median(2, [&] { clip->forward(px); });
  std::vector<uint8_t> frame(1280 * 720 * 3);
  for (size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<uint8_t>(i * 31);
  const Timing pre = time_median(5, [&] { clip_preprocess(frame.data(), 720, 1280); });

  // EnCodec 32 kHz.
  EncodecConfig ec;
  Encodec codec(ec);
  codec->eval();
  const double seconds = 10.0;
  const int64_t frames = static_cast<int64_t>(seconds * ec.frame_rate());
  at::Tensor codes = at::randint(0, ec.codebook_size, {1, ec.num_codebooks, frames}, at::kLong);
  const Timing dec = time_median(2, [&] { codec->decode(codes); });
  const Timing dec_chunked = time_median(2, [&] { codec->decode_chunked(codes, 250, 50); });
  at::Tensor audio = at::randn({1, 1, frames * ec.hop_length()}) * 0.1;
  const Timing enc = time_median(2, [&] { codec->encode(audio); });

  std::printf(
      "{\n  \"bench\": \"clip_encodec\",\n  \"threads\": %d,\n  \"cpu_cache_mb\": %zu,\n"
      "  \"clip\": {\"model\": \"ViT-B/32 vision + projection (fp32, random weights)\", \"parameters\": %lld,\n"
      "           \"batch\": %lld, \"batch_s\": %.4f, \"batch_cpu_s\": %.4f, \"images_per_s\": %.2f,\n"
      "           \"preprocess_1280x720_ms\": %.2f},\n"
      "  \"encodec\": {\"model\": \"encodec_32khz (fp32, random weights)\", \"parameters\": %lld,\n"
      "              \"audio_s\": %.1f, \"frames\": %lld,\n"
      "              \"decode_s\": %.4f, \"decode_cpu_s\": %.4f, \"decode_rtf\": %.4f,\n"
      "              \"decode_chunked_s\": %.4f, \"decode_chunked_cpu_s\": %.4f, \"decode_chunked_rtf\": %.4f,\n"
      "              \"encode_s\": %.4f, \"encode_cpu_s\": %.4f, \"encode_rtf\": %.4f}\n}\n",
      at::get_num_threads(), v2m::cpu_cache_stats().cap_bytes >> 20,
      static_cast<long long>(count_parameters(*clip)), static_cast<long long>(batch), clip_t.wall,
      clip_t.cpu, batch / clip_t.wall, pre.wall * 1e3, static_cast<long long>(count_parameters(*codec)), seconds,
      static_cast<long long>(frames), dec.wall, dec.cpu, dec.wall / seconds, dec_chunked.wall, dec_chunked.cpu,
      dec_chunked.wall / seconds, enc.wall, enc.cpu, enc.wall / seconds);
  return 0;
}
