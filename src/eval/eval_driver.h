// The `v2m eval` driver: generate (or read) music for every clip of a split, compute the
// requested metrics against the clips' reference audio, write results.json, per_clip.csv
// and table.md (the poster's Table 1 layout) into the eval directory.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace v2m::eval {

struct EvalOptions {
  std::string config;                  // run config (data/run_config.h)
  std::string split = "test";
  std::string model;                   // model directory (config.yaml + model.safetensors)
  std::string checkpoint;              // a trainer checkpoint directory (is a model directory)
  std::string generated;               // directory of <id>.wav to evaluate instead of generating
  std::vector<std::string> metrics;    // empty: the config's eval.metrics
  int64_t limit = -1;                  // < 0: the config's eval.limit (0 = all)
  std::string out_dir;                 // empty: eval.out_dir, else <out_dir>/eval-<split>
  std::vector<std::string> overrides;  // --set a.b=c on the run config
  // Shuffled-video baseline: clip i's music is generated from clip (i+1) mod n's video (a
  // derangement) and scored against clip i's audio, labels and video. Default out_dir gets
  // a "-shuffled" suffix so it never mixes with the matched generations.
  bool shuffle_video = false;
};

struct EvalReport {
  std::string out_dir;
  std::string table;        // the Markdown written to table.md
  nlohmann::json results;   // what results.json holds
};

// The metric names `v2m eval` knows (in table order).
const std::vector<std::string>& metric_names();

// Throws v2m::Error (UsageError for bad options) naming the file and the problem. Missing
// embedding/classifier weights are not errors: that metric is "not computed" everywhere.
EvalReport run_eval(const EvalOptions& opts);

// Resolves which model to evaluate: --model, else --checkpoint, else the newest checkpoint
// named by <run_out_dir>/checkpoints/latest. Throws v2m::Error when none exists.
std::string resolve_model_dir(const std::string& model, const std::string& checkpoint, const std::string& run_out_dir);

}  // namespace v2m::eval
