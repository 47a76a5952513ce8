// v2m train --config run.yaml [--set k=v] [--nproc N] [--resume DIR | --no-resume]
// One process, `--nproc N` local workers, or one worker of a torchrun / Slurm job.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>

#include "commands.h"
#include "data/run_config.h"
#include "train/distributed.h"
#include "train/launcher.h"
#include "train/trainer.h"
#include "v2m/error.h"
#include "v2m/runtime.h"

namespace {

struct Opts {
  std::string config, resume;
  std::vector<std::string> sets;
  int nproc = 0;
  bool no_resume = false;
  int64_t max_steps = 0;
};

std::vector<std::string> own_argv() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> out;
  std::string a;
  while (std::getline(f, a, '\0')) out.push_back(a);
  return out;
}

void on_signal(int sig) { v2m::train::request_stop(sig); }

void run(const Opts& o, const v2m::cli::GlobalOptions& g) {
  auto cfg = v2m::data::load_run_config(o.config, o.sets);  // fail fast, before spawning
  if (o.nproc > 1 && !std::getenv("WORLD_SIZE")) {
    std::vector<std::string> args;
    auto argv = own_argv();
    for (size_t i = 0; i < argv.size(); ++i) {
      if (argv[i] == "--nproc") {
        ++i;
        continue;
      }
      if (argv[i].rfind("--nproc=", 0) == 0) continue;
      args.push_back(argv[i]);
    }
    const int code = v2m::train::launch_local_workers(o.nproc, args, cfg.train.dist_timeout_s);
    if (code != 0) throw v2m::Error("train: a worker failed (exit code " + std::to_string(code) + "); see its log above");
    return;
  }
  auto dopts = v2m::train::dist_options_from_env();
  dopts.timeout_s = cfg.train.dist_timeout_s;
  // Share the cores between local workers unless --threads says otherwise.
  if (g.threads == 0 && dopts.world_size > 1) {
    int local = dopts.world_size;
    if (const char* l = std::getenv("LOCAL_WORLD_SIZE"); l && *l) local = std::max(1, std::atoi(l));
    v2m::set_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local));
  }
  if (dopts.rank != 0 && !g.verbose) spdlog::set_level(spdlog::level::warn);  // rank 0 logs, the others warn
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  const std::string dev = v2m::train::resolve_device(cfg.train.device);
  v2m::train::Dist dist(dopts, dev == "cuda" ? at::Device(at::kCUDA, dopts.local_rank) : at::Device(at::kCPU));
  v2m::train::TrainOptions to;
  to.resume = !o.no_resume;
  to.resume_from = o.resume;
  to.max_steps_this_run = o.max_steps;
  auto res = v2m::train::train(cfg, to, dist);
  if (res.interrupted)
    throw v2m::Error("train: interrupted by signal at step " + std::to_string(res.step) + "; checkpoint " +
                     res.checkpoint + " written; run the same command to resume");
  if (dist.is_main())
    std::printf("step %lld  loss %.4f  checkpoint %s\n", static_cast<long long>(res.step), res.last_loss,
                res.checkpoint.c_str());
}

const v2m::cli::Command reg("train", "Train the fusion (+ decoder) on the feature cache", [](CLI::App& sub, const v2m::cli::GlobalOptions& g) {
  auto o = std::make_shared<Opts>();
  sub.add_option("-c,--config", o->config, "Run config (configs/*.yaml)")->required();
  sub.add_option("--set", o->sets, "Override a config value (key.path=value), repeatable");
  sub.add_option("--nproc", o->nproc, "Local worker processes (data parallel over Gloo/NCCL)")->check(CLI::Range(1, 1024));
  sub.add_option("--resume", o->resume, "Resume from this checkpoint directory");
  sub.add_flag("--no-resume", o->no_resume, "Start fresh even if the run has checkpoints");
  sub.add_option("--max-steps-this-run", o->max_steps, "Stop with a checkpoint after N steps (train in chunks)")
      ->check(CLI::PositiveNumber);
  sub.callback([o, &g] { run(*o, g); });
});

}  // namespace
