// RunConfig: one experiment (configs/*.yaml) = which model, which data, how to train and
// evaluate it. Sections map 1:1 onto the structs below; the model architecture lives in its
// own file (configs/model/*.yaml), named by `model` relative to this config's directory.
// Data and output paths are relative to the working directory (absolute paths work too).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "v2m/config.h"

namespace v2m::data {

struct DataConfig {
  std::string manifest;               // JSON-lines manifest (data/manifest.h)
  std::string root;                   // dataset root; empty = the manifest's directory
  std::string cache_dir = "cache";    // feature cache parent; shards go in <cache_dir>/<hash>/
  bool allow_absolute_paths = false;  // manifest paths must stay inside the root otherwise
  int64_t shard_size = 64;            // clips per cache shard (the unit prep resumes at)
  void visit(ConfigVisitor& v) {
    v.field("manifest", manifest);
    v.field("root", root);
    v.field("cache_dir", cache_dir);
    v.field("allow_absolute_paths", allow_absolute_paths);
    v.field("shard_size", shard_size, {1, 1e6});
  }
};

struct TrainConfig {
  int64_t steps = 1000;             // optimizer steps
  int64_t batch_size = 8;           // global batch (all ranks, all accumulation micro-steps)
  int64_t grad_accum = 1;           // micro-batches per optimizer step on each rank
  double lr = 1e-4;
  double weight_decay = 0.01;
  double beta1 = 0.9;
  double beta2 = 0.95;
  int64_t warmup_steps = 100;       // linear warmup, then cosine decay to min_lr_ratio * lr
  double min_lr_ratio = 0.1;
  double grad_clip = 1.0;           // max global grad norm; 0 = off
  double cond_dropout = 0.2;        // P(condition dropped) for classifier-free guidance
  bool freeze_decoder = false;      // train fusion + motion encoder only
  int64_t val_every = 200;          // validation loss every N steps (0 = never)
  int64_t val_batches = 8;
  int64_t ckpt_every = 200;         // checkpoint every N steps (and at the end / on signal)
  int64_t keep_last = 3;            // checkpoints kept besides `best`
  int64_t log_every = 10;
  int64_t seed = 0;
  std::string device = "auto";      // auto | cpu | cuda
  bool bf16 = true;                 // bf16 autocast on CUDA (ignored on CPU)
  double dist_timeout_s = 300;      // collective / rendezvous timeout
  void visit(ConfigVisitor& v) {
    v.field("steps", steps, {1, 1e12});
    v.field("batch_size", batch_size, {1, 1e9});
    v.field("grad_accum", grad_accum, {1, 1e6});
    v.field("lr", lr, {0, 10});
    v.field("weight_decay", weight_decay, {0, 10});
    v.field("beta1", beta1, {0, 1});
    v.field("beta2", beta2, {0, 1});
    v.field("warmup_steps", warmup_steps, {0, 1e12});
    v.field("min_lr_ratio", min_lr_ratio, {0, 1});
    v.field("grad_clip", grad_clip, {0, 1e9});
    v.field("cond_dropout", cond_dropout, {0, 1});
    v.field("freeze_decoder", freeze_decoder);
    v.field("val_every", val_every, {0, 1e12});
    v.field("val_batches", val_batches, {1, 1e9});
    v.field("ckpt_every", ckpt_every, {1, 1e12});
    v.field("keep_last", keep_last, {1, 1000});
    v.field("log_every", log_every, {1, 1e12});
    v.field("seed", seed, {0, 9.2e18});
    v.field("device", device, {"auto", "cpu", "cuda"});
    v.field("bf16", bf16);
    v.field("dist_timeout_s", dist_timeout_s, {1, 86400});
  }
};

struct EvalConfig {
  std::vector<std::string> metrics = {"fad", "kld", "chroma", "av_align"};
  std::string vggish = "models/vggish.safetensors";       // FAD embedding weights
  std::string tagger = "models/panns_cnn14.safetensors";  // KLD classifier weights
  std::string out_dir;                                    // empty = <out_dir>/eval-<split>
  int64_t limit = 0;                                      // 0 = all clips of the split
  int64_t seed = 0;                                       // generation seed
  std::string device = "cpu";                             // generation + embedding models: cpu | cuda[:N]
  int64_t av_short_side = 256;                            // AV-Align flow: frames scaled down to this short side (0 = source)
  double cfg_scale = 3.0;                                 // classifier-free guidance of the generated clips (1 = off)
  void visit(ConfigVisitor& v) {
    v.field("metrics", metrics);
    v.field("vggish", vggish);
    v.field("tagger", tagger);
    v.field("out_dir", out_dir);
    v.field("limit", limit, {0, 1e12});
    v.field("seed", seed, {0, 9.2e18});
    v.field("device", device);
    v.field("av_short_side", av_short_side, {0, 16384});
    v.field("cfg_scale", cfg_scale, {0, 100});
  }
};

struct RunConfig {
  std::string name = "run";
  std::string model;           // architecture yaml, relative to this file's directory
  std::string init;            // optional model dir (config.yaml + model.safetensors) to start from
  std::string out_dir = "runs/run";  // checkpoints, metrics.jsonl, eval outputs
  DataConfig data;
  TrainConfig train;
  EvalConfig eval;
  void visit(ConfigVisitor& v) {
    v.field("name", name);
    v.field("model", model);
    v.field("init", init);
    v.field("out_dir", out_dir);
    v.section("data", data);
    v.section("train", train);
    v.section("eval", eval);
  }
  std::string source;  // the file it was loaded from (not a yaml key)
};

// Loads a run config, applies `--set` overrides, resolves `model` against the config's
// directory, and checks that the required keys are set (model, data.manifest).
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace v2m::data
