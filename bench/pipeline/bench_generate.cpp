// Whole-`generate` real-time factor with the per-stage split, model load time and peak RSS.
//   bench_generate --model configs/model/tiny.yaml --video examples/demo.mp4 [--duration S]
//                  [--weights-dtype auto|fp32|bf16|int8]
//   bench_generate --save DIR --model configs/model/s.yaml   # writes a random-init model dir
// Load time is what Generator::load takes for --model (a directory: mmap'd safetensors, the
// page cache warm after --save; a .yaml: random init). Peak RSS is this process's maximum
// resident set (run --save in its own process so it does not count), compared with the
// bytes of the weight file. JSON on stdout. RTF = seconds of compute per second of audio.
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_util.h"
#include "model/v2m_model.h"
#include "v2m/runtime.h"
#include "v2m/v2m.h"

int main(int argc, char** argv) {
  v2m::reexec_with_thread_env(argv);  // as the CLI
  std::string model = "configs/model/tiny.yaml", video = "examples/demo.mp4", dtype = "auto", save;
  double duration = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--video")) video = argv[i + 1];
    else if (!std::strcmp(argv[i], "--duration")) duration = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--weights-dtype")) dtype = argv[i + 1];
    else if (!std::strcmp(argv[i], "--save")) save = argv[i + 1];
  }
  v2m::use_caching_cpu_allocator();  // as the CLI (V2M_CPU_CACHE_MB=0: off)
  v2m::set_threads(0);
  if (!save.empty()) {
    auto m = v2m::model::load_model(model);
    v2m::model::save_model(m, save);
    std::printf("{\n  \"bench\": \"save\",\n  \"model\": \"%s\",\n  \"dir\": \"%s\"\n}\n", model.c_str(), save.c_str());
    return 0;
  }
  double weight_file_bytes = 0;
  struct stat st {};
  if (::stat((model + "/model.safetensors").c_str(), &st) == 0) weight_file_bytes = static_cast<double>(st.st_size);

  auto t0 = std::chrono::steady_clock::now();
  auto gen = v2m::Generator::load(model, "cpu", false, dtype);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_after_load = ru.ru_maxrss / 1024.0;
  v2m::GenerateParams p = v2m::default_generate_params();
  p.duration = duration;
  p.seed = 1;
  t0 = std::chrono::steady_clock::now();
  auto out = gen->generate(video, p);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double audio_s = static_cast<double>(out[0].frames()) / out[0].sample_rate;
  const auto& t = gen->last_times();
  getrusage(RUSAGE_SELF, &ru);
  const double peak = ru.ru_maxrss / 1024.0;
  const double non_decoder = t.total() > 0 ? (t.total() - t.decoder) / t.total() : 0;
  std::printf(
      "{\n  \"bench\": \"generate\",\n  \"model\": \"%s\",\n  \"video\": \"%s\",\n  \"weights_dtype\": \"%s\",\n"
      "  \"threads\": %d,\n  \"cpu_cache_mb\": %zu,\n  \"load_s\": %.3f,\n  \"audio_s\": %.3f,\n  \"wall_s\": %.3f,\n  \"rtf\": %.4f,\n"
      "  \"stages_s\": {\"decode\": %.3f, \"clip\": %.3f, \"flow\": %.3f, \"fusion\": %.3f, \"decoder\": %.3f, \"codec\": %.3f},\n"
      "  \"non_decoder_share\": %.3f,\n  \"peak_rss_after_load_mb\": %.1f,\n  \"peak_rss_mb\": %.1f,\n"
      "  \"weight_file_mb\": %.1f,\n  \"peak_rss_over_weight_file\": %.3f\n}\n",
      model.c_str(), video.c_str(), dtype.c_str(), v2m::threads(),
      v2m::cpu_cache_stats().cap_bytes >> 20, load_s, audio_s, wall, wall / audio_s, t.decode,
      t.clip, t.flow, t.fusion, t.decoder, t.codec, non_decoder, rss_after_load, peak, weight_file_bytes / 1048576.0,
      weight_file_bytes > 0 ? peak * 1048576.0 / weight_file_bytes : 0.0);
  return 0;
}
