// The two frozen pretrained parts of Model-S on the CPU, random fp32 weights with the real
// shapes (only the shapes matter for time):
//   - CLIP ViT-B/32 vision tower + projection: images per second at batch 8 (224 x 224),
//     plus clip_preprocess of a 1280 x 720 frame;
//   - EnCodec 32 kHz: decode of 10 s of codes (4 x 500 frames) in one pass and through
//     decode_chunked (default 500-frame chunks, 50 frames of overlap), as a real-time factor
//     (compute seconds per second of audio; < 1 is faster than real time), and encode of 10 s.
// Median of a few repetitions after one warm-up. JSON on stdout.
//   bench_clip_encodec [threads]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "nn/clip_vision.h"
#include "nn/encodec.h"
#include "nn/state_dict.h"

using namespace v2m::nn;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds of `reps` runs of f after one warm-up run.
double time_median(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s();
    f();
    t.push_back(now_s() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  at::set_num_threads(argc > 1 ? std::atoi(argv[1]) : 2);
  at::InferenceMode guard;
  torch::manual_seed(0);

  // CLIP ViT-B/32.
  ClipVision clip(ClipVisionConfig{});
  clip->eval();
  const int64_t batch = 8;
  at::Tensor px = at::randn({batch, 3, 224, 224});
  const double clip_s = time_median(3, [&] { clip->forward(px); });
  std::vector<uint8_t> frame(1280 * 720 * 3);
  for (size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<uint8_t>(i * 31);
  const double pre_s = time_median(5, [&] { clip_preprocess(frame.data(), 720, 1280); });

  // EnCodec 32 kHz.
  EncodecConfig ec;
  Encodec codec(ec);
  codec->eval();
  const double seconds = 10.0;
  const int64_t frames = static_cast<int64_t>(seconds * ec.frame_rate());
  at::Tensor codes = at::randint(0, ec.codebook_size, {1, ec.num_codebooks, frames}, at::kLong);
  const double dec_s = time_median(3, [&] { codec->decode(codes); });
  const double dec_chunked_s = time_median(3, [&] { codec->decode_chunked(codes); });
  at::Tensor audio = at::randn({1, 1, frames * ec.hop_length()}) * 0.1;
  const double enc_s = time_median(3, [&] { codec->encode(audio); });

  std::printf(
      "{\n  \"bench\": \"clip_encodec\",\n  \"threads\": %d,\n"
      "  \"clip\": {\"model\": \"ViT-B/32 vision + projection (fp32, random weights)\", \"parameters\": %lld,\n"
      "           \"batch\": %lld, \"batch_s\": %.4f, \"images_per_s\": %.2f, \"preprocess_1280x720_ms\": %.2f},\n"
      "  \"encodec\": {\"model\": \"encodec_32khz (fp32, random weights)\", \"parameters\": %lld,\n"
      "              \"audio_s\": %.1f, \"frames\": %lld,\n"
      "              \"decode_s\": %.4f, \"decode_rtf\": %.4f,\n"
      "              \"decode_chunked_s\": %.4f, \"decode_chunked_rtf\": %.4f,\n"
      "              \"encode_s\": %.4f, \"encode_rtf\": %.4f}\n}\n",
      at::get_num_threads(), static_cast<long long>(count_parameters(*clip)), static_cast<long long>(batch), clip_s,
      batch / clip_s, pre_s * 1e3, static_cast<long long>(count_parameters(*codec)), seconds,
      static_cast<long long>(frames), dec_s, dec_s / seconds, dec_chunked_s, dec_chunked_s / seconds, enc_s,
      enc_s / seconds);
  return 0;
}
