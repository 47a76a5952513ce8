// Training throughput on the CPU: samples/s of full training steps (fusion + decoder
// forward/backward, AdamW) through train::train() on a synthetic feature cache, for a model
// config at a given window. Random weights and random codes: only the shapes matter.
//
//   bench_train MODEL.yaml [--window S] [--batch B] [--steps N] [--freeze-decoder]
//               [--setup-only DIR]   (write the synthetic cache + run config and exit:
//                                     scripts/bench_train.sh then times `v2m train --nproc 2`)
// JSON on stdout.
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <vector>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "data/manifest.h"
#include "data/run_config.h"
#include "model/v2m_model.h"
#include "train/distributed.h"
#include "train/feature_cache.h"
#include "train/trainer.h"
#include "v2m/runtime.h"

using namespace v2m;

namespace {

std::string read_file(const std::string& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

int main(int argc, char** argv) {
  v2m::reexec_with_thread_env(argv);  // as the CLI
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_train MODEL.yaml [--window S] [--batch B] [--steps N] [--freeze-decoder] [--setup-only DIR]\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);  // results on stdout as JSON only
  at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  std::string model_yaml = argv[1], dir;
  double window = 2.0;
  int batch = 2, steps = 3;
  bool freeze = false, setup_only = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--window" && i + 1 < argc) window = std::atof(argv[++i]);
    else if (a == "--batch" && i + 1 < argc) batch = std::atoi(argv[++i]);
    else if (a == "--steps" && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (a == "--freeze-decoder") freeze = true;
    else if (a == "--setup-only" && i + 1 < argc) { setup_only = true; dir = argv[++i]; }
  }
  if (dir.empty()) {
    char tmpl[] = "/tmp/v2m_bench_train_XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  std::system(("mkdir -p '" + dir + "'").c_str());
  // The model config with the benchmark's window.
  std::string y = read_file(model_yaml);
  auto pos = y.find("window_s:");
  if (pos == std::string::npos) y += "\nwindow_s: " + std::to_string(window) + "\n";
  else y.replace(pos, y.find('\n', pos) - pos, "window_s: " + std::to_string(window));
  pos = y.find("stride_s:");
  if (pos != std::string::npos) y.replace(pos, y.find('\n', pos) - pos, "stride_s: " + std::to_string(window / 2));
  std::ofstream(dir + "/model.yaml") << y;

  const int n_clips = std::max(8, 2 * batch);
  std::vector<data::ClipEntry> clips;
  for (int i = 0; i < n_clips; ++i) {
    data::ClipEntry c;
    c.id = "c" + std::to_string(i);
    c.video = c.id + ".mp4";
    c.split = "train";
    c.duration = window;
    clips.push_back(c);
  }
  data::write_manifest(dir + "/manifest.jsonl", clips);
  std::ofstream(dir + "/run.yaml") << "model: model.yaml\nout_dir: " << dir << "/run\ndata:\n  manifest: " << dir
                                   << "/manifest.jsonl\n  cache_dir: " << dir << "/cache\ntrain:\n  steps: " << steps + 1
                                   << "\n  batch_size: " << batch << "\n  val_every: 0\n  ckpt_every: 1000000\n"
                                   << "  log_every: 1\n  warmup_steps: 0\n  freeze_decoder: " << (freeze ? "true" : "false")
                                   << "\n";
  auto cfg = data::load_run_config(dir + "/run.yaml");
  auto m = train::load_run_model(cfg);
  const auto cdir = train::cache_dir(cfg, m->cfg);
  std::system(("mkdir -p '" + cdir + "'").c_str());
  const double fr = m->frame_rate();
  const int64_t T = static_cast<int64_t>(window * fr) + 1;
  const int64_t Tc = std::max<int64_t>(1, static_cast<int64_t>(window * m->cfg.features.clip_fps));
  const int64_t Tm = std::max<int64_t>(1, static_cast<int64_t>(window * m->cfg.features.flow_fps));
  torch::manual_seed(0);
  for (const auto& s : train::plan_shards(clips, cfg.data.shard_size)) {
    std::vector<train::CachedClip> out;
    for (const auto& c : s.clips) {
      train::CachedClip cc;
      cc.id = c.id;
      cc.clip = at::randn({Tc, m->cfg.clip_dim()});
      cc.clip_t = at::arange(Tc).to(at::kFloat) / m->cfg.features.clip_fps;
      cc.motion = at::randn({Tm, m->cfg.motion.in_dim});
      cc.motion_t = at::arange(Tm).to(at::kFloat) / m->cfg.features.flow_fps;
      cc.codes = at::randint(m->cfg.codec.codebook_size, {m->cfg.decoder.num_codebooks, T}, at::kLong);
      out.push_back(cc);
    }
    train::write_shard(cdir + "/" + s.file, out, {});
  }
  if (setup_only) {
    std::printf("{\"config\": \"%s/run.yaml\"}\n", dir.c_str());
    return 0;
  }
  // One warm-up step (allocator, first-touch), then the timed steps.
  train::Dist dist(train::DistOptions{}, at::kCPU);
  train::TrainOptions o;
  o.resume = false;
  o.max_steps_this_run = 1;
  train::train(cfg, o, dist);
  o.resume = true;
  o.max_steps_this_run = steps;
  auto t0 = std::chrono::steady_clock::now();
  train::train(cfg, o, dist);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Per-step rate from the trainer's own log (samples/s of each step, logged every step):
  // the median of the timed steps, free of model/cache loading and checkpoint writes.
  std::vector<double> rates;
  {
    std::ifstream in(dir + "/run/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto k = line.find("\"samples_per_s\":");
      auto st = line.find("\"step\":");
      if (k == std::string::npos || st == std::string::npos) continue;
      if (std::atoi(line.c_str() + st + 7) <= 1) continue;  // the warm-up step
      rates.push_back(std::atof(line.c_str() + k + 16));
    }
  }
  std::sort(rates.begin(), rates.end());
  const double step_rate = rates.empty() ? 0.0 : rates[rates.size() / 2];
  int64_t trainable = 0;
  for (const auto& p : m->fusion->parameters()) trainable += p.numel();
  if (!freeze)
    for (const auto& p : m->decoder->parameters()) trainable += p.numel();
  // dt includes loading the model and the cache once and one checkpoint write (the trainer
  // always checkpoints its last step): reported so the per-step figure can be judged.
  std::printf("{\"bench\": \"train\", \"model\": \"%s\", \"window_s\": %.2f, \"frames\": %lld, \"batch\": %d, "
              "\"steps\": %d, \"freeze_decoder\": %s, \"trainable_params\": %lld, \"threads\": %d, "
              "\"seconds_incl_load_and_checkpoint\": %.3f, \"samples_per_s\": %.4f}\n",
              m->cfg.name.c_str(), window, static_cast<long long>(T - 1), batch, steps, freeze ? "true" : "false",
              static_cast<long long>(trainable), at::get_num_threads(), dt, step_rate);
  std::system(("rm -rf '" + dir + "'").c_str());
  return 0;
}
