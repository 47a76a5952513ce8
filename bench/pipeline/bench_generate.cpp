// Whole-`generate` real-time factor with the per-stage split, model load time and peak RSS.
//   bench_generate --model configs/model/tiny.yaml --video examples/demo.mp4 [--duration S]
// JSON on stdout. RTF = seconds of compute per second of audio (lower is faster).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "v2m/runtime.h"
#include "v2m/v2m.h"

int main(int argc, char** argv) {
  std::string model = "configs/model/tiny.yaml", video = "examples/demo.mp4";
  double duration = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--video")) video = argv[i + 1];
    else if (!std::strcmp(argv[i], "--duration")) duration = std::atof(argv[i + 1]);
  }
  v2m::set_threads(0);
  auto t0 = std::chrono::steady_clock::now();
  auto gen = v2m::Generator::load(model);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  v2m::GenerateParams p = v2m::default_generate_params();
  p.duration = duration;
  p.seed = 1;
  t0 = std::chrono::steady_clock::now();
  auto out = gen->generate(video, p);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double audio_s = static_cast<double>(out[0].frames()) / out[0].sample_rate;
  const auto& t = gen->last_times();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\n  \"bench\": \"generate\",\n  \"model\": \"%s\",\n  \"video\": \"%s\",\n  \"threads\": %d,\n"
      "  \"load_s\": %.3f,\n  \"audio_s\": %.3f,\n  \"wall_s\": %.3f,\n  \"rtf\": %.4f,\n"
      "  \"stages_s\": {\"decode\": %.3f, \"clip\": %.3f, \"flow\": %.3f, \"fusion\": %.3f, \"decoder\": %.3f, \"codec\": %.3f},\n"
      "  \"peak_rss_mb\": %.1f\n}\n",
      model.c_str(), video.c_str(), v2m::threads(), load_s, audio_s, wall, wall / audio_s, t.decode, t.clip, t.flow,
      t.fusion, t.decoder, t.codec, ru.ru_maxrss / 1024.0);
  return 0;
}
