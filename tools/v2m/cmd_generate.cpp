// v2m generate VIDEO... -o OUT.wav | --out-dir DIR
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "commands.h"
#include "v2m/error.h"
#include "v2m/media.h"
#include "v2m/progress.h"
#include "v2m/v2m.h"

namespace {

struct Opts {
  std::vector<std::string> videos;
  std::string output, out_dir, model, mux, format, device = "cpu", weights_dtype = "auto";
  double duration = 0, start = 0, cfg = 3.0, temperature = 1.0, top_p = 0.0;
  double max_duration = v2m::default_generate_params().max_duration;
  int64_t top_k = 250;
  uint64_t seed = 0;
  int variations = 1;
  bool check_weights = false, float_wav = false;
};

std::string stem(const std::string& path) {
  std::string base = path.substr(path.find_last_of('/') + 1);
  auto dot = base.find_last_of('.');
  return dot == std::string::npos ? base : base.substr(0, dot);
}

std::string with_suffix(const std::string& path, const std::string& suffix) {
  auto slash = path.find_last_of('/');
  auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + suffix;
  return path.substr(0, dot) + suffix + path.substr(dot);
}

void run(const Opts& o, const char* argv0) {
  if (o.videos.size() > 1 && !o.output.empty())
    throw v2m::UsageError("-o names one file; use --out-dir for several videos");
  if (o.output.empty() && o.out_dir.empty()) throw v2m::UsageError("give -o OUT.wav or --out-dir DIR");
  if (!o.mux.empty() && o.videos.size() > 1) throw v2m::UsageError("--mux works with one video");
  if (o.max_duration > 0 && o.duration > o.max_duration)
    throw v2m::UsageError(fmt::format("--duration {:g} s is over the --max-duration limit of {:g} s", o.duration,
                                      o.max_duration));
  std::string model = o.model.empty() ? v2m::default_model_path(argv0) : o.model;
  if (model.empty())
    throw v2m::Error("no model: the embedded default model (models/v2m-tiny) was not found next to the binary; pass --model DIR or set V2M_MODEL");
  if (!o.out_dir.empty()) {
    struct stat st {};
    if (::stat(o.out_dir.c_str(), &st) != 0 && ::mkdir(o.out_dir.c_str(), 0755) != 0)
      throw v2m::Error(v2m::describe("cannot create output directory", o.out_dir, std::strerror(errno)));
  }
  // Check every input up front so a bad third video does not cost two generations.
  for (const auto& v : o.videos) v2m::media::probe(v);

  spdlog::info("loading model {}", model);
  auto gen = v2m::Generator::load(model, o.device, o.check_weights, o.weights_dtype);
  v2m::GenerateParams p = v2m::default_generate_params();
  p.duration = o.duration;
  p.start = o.start;
  p.seed = o.seed;
  p.cfg_scale = o.cfg;
  p.temperature = o.temperature;
  p.top_k = o.top_k;
  p.top_p = o.top_p;
  p.variations = o.variations;
  p.max_duration = o.max_duration;
  const std::string ext = o.format.empty() ? "" : "." + o.format;
  for (const auto& video : o.videos) {
    std::unique_ptr<v2m::Progress> bar;
    p.on_progress = [&](double done, double total) {
      if (!bar) bar = std::make_unique<v2m::Progress>("generate " + stem(video), total, "audio-s");
      bar->set(done);
    };
    auto outs = gen->generate(video, p);
    if (bar) bar->finish();
    for (size_t i = 0; i < outs.size(); ++i) {
      std::string path = o.output.empty() ? o.out_dir + "/" + stem(video) + (ext.empty() ? ".wav" : ext) : o.output;
      if (outs.size() > 1) path = with_suffix(path, "_" + std::to_string(i + 1));
      v2m::media::Audio a;
      a.sample_rate = outs[i].sample_rate;
      a.channels = outs[i].channels;
      a.samples = std::move(outs[i].samples);
      v2m::media::write_audio(path, a, o.float_wav ? v2m::media::WavFormat::Float32 : v2m::media::WavFormat::PCM16);
      std::printf("%s\n", path.c_str());
      if (!o.mux.empty()) {
        const std::string mux_path = outs.size() > 1 ? with_suffix(o.mux, "_" + std::to_string(i + 1)) : o.mux;
        v2m::media::mux(video, a, mux_path);
        std::printf("%s\n", mux_path.c_str());
      }
    }
    const auto& t = gen->last_times();
    spdlog::info("stages (s): decode {:.2f} clip {:.2f} flow {:.2f} fusion {:.2f} decoder {:.2f} codec {:.2f}", t.decode,
                 t.clip, t.flow, t.fusion, t.decoder, t.codec);
  }
}

const v2m::cli::Command reg("generate", "Generate music for one or more videos", [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto o = std::make_shared<Opts>();
  sub.add_option("videos", o->videos, "Input video(s)")->required();
  sub.add_option("-o,--output", o->output, "Output audio file (.wav or .flac)");
  sub.add_option("--out-dir", o->out_dir, "Output directory (one file per video)");
  sub.add_option("--model", o->model, "Model directory or model config .yaml (default: embedded v2m-tiny)");
  sub.add_option("--duration", o->duration, "Seconds of music (default: the video's length)")->check(CLI::NonNegativeNumber);
  sub.add_option("--max-duration", o->max_duration, "Refuse to generate more seconds than this (0 = no limit)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub.add_option("--start", o->start, "Start time in the video (s)")->check(CLI::NonNegativeNumber);
  sub.add_option("--seed", o->seed, "Random seed (same seed, same music)");
  sub.add_option("--cfg", o->cfg, "Classifier-free guidance scale (1 = off)")->check(CLI::Range(0.0, 100.0));
  sub.add_option("--temperature", o->temperature, "Sampling temperature (0 = greedy)")->check(CLI::Range(0.0, 10.0));
  sub.add_option("--top-k", o->top_k, "Top-k sampling (0 = off)")->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub.add_option("--top-p", o->top_p, "Nucleus sampling (0 = off)")->check(CLI::Range(0.0, 1.0));
  sub.add_option("--variations", o->variations, "Samples per video (files get _1, _2, ...)")->check(CLI::Range(1, 64));
  sub.add_option("--mux", o->mux, "Also write a copy of the video with the music as its audio (mp4)");
  sub.add_option("--format", o->format, "Output format for --out-dir")->check(CLI::IsMember({"wav", "flac"}));
  sub.add_flag("--float", o->float_wav, "Write 32-bit float WAV instead of 16-bit PCM");
  sub.add_option("--device", o->device, "cpu or cuda[:N]");
  sub.add_flag("--check-weights", o->check_weights, "Scan weights for NaN/Inf at load");
  sub.add_option("--weights-dtype", o->weights_dtype,
                 "Code decoder weights: auto (bf16 for large decoders on CPUs with native bf16, else fp32), fp32, bf16, int8")
      ->check(CLI::IsMember({"auto", "fp32", "bf16", "int8"}));
  sub.callback([o] { run(*o, "v2m"); });
});

}  // namespace
