// v2m public API: load a model once, generate music for many videos.
//
//   auto gen = v2m::Generator::load(v2m::default_model_path(argv[0]));
//   v2m::GenerateParams p = v2m::default_generate_params();
//   p.seed = 7;
//   std::vector<v2m::AudioBuffer> music = gen->generate("video.mp4", p);
//
// LibTorch-free header: programs embedding v2m do not need its build flags.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace v2m {

struct GenerateParams {
  double start = 0.0;      // seconds into the video
  double duration = 0.0;   // seconds of music; <= 0: to the end of the video
  uint64_t seed = 0;
  double cfg_scale = 3.0;  // classifier-free guidance (1 = off)
  double temperature = 1.0;  // 0 = greedy
  int64_t top_k = 250;     // 0 = off
  double top_p = 0.0;      // 0 = off
  int variations = 1;      // independent samples for the same video (one batch)
  double max_duration = 600.0;  // refuse to generate more seconds than this (the video's own
                                // length counts when duration <= 0); <= 0: no limit
  // Called with (seconds of audio generated, seconds in total) as decoding advances.
  std::function<void(double done_s, double total_s)> on_progress;
};
GenerateParams default_generate_params();

struct AudioBuffer {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // planar [channels][frames], in [-1, 1]
  int64_t frames() const { return channels ? static_cast<int64_t>(samples.size()) / channels : 0; }
};

// Seconds spent per stage in the last generate() call.
struct StageTimes {
  double decode = 0, clip = 0, flow = 0, fusion = 0, decoder = 0, codec = 0;
  double total() const { return decode + clip + flow + fusion + decoder + codec; }
};

class Generator {
 public:
  // model: model directory or model config .yaml (random init); device: "cpu" or "cuda[:N]".
  // weights_dtype: storage of the code decoder's linears, "fp32", "bf16" or "int8" (CPU);
  // "auto" = bf16 on CPUs with native bf16 (AVX-512 BF16/AMX), else fp32.
  static std::unique_ptr<Generator> load(const std::string& model, const std::string& device = "cpu",
                                         bool check_weights = false, const std::string& weights_dtype = "auto");
  virtual ~Generator() = default;
  // One AudioBuffer per variation. Throws v2m::Error on bad input.
  virtual std::vector<AudioBuffer> generate(const std::string& video, const GenerateParams& params) = 0;
  virtual int sample_rate() const = 0;
  virtual const StageTimes& last_times() const = 0;
};

// The embedded default model directory: $V2M_MODEL, else models/v2m-tiny next to the
// binary's install prefix (<prefix>/share/v2m/models/v2m-tiny) or the source tree
// (<build>/../models/v2m-tiny). Returns "" when none exists.
std::string default_model_path(const std::string& argv0);

}  // namespace v2m
