// `v2m train-codec`: trains a small EnCodec-family codec (the same nn::Encodec classes as
// the 32 kHz codec, small channels) on SynthV2M audio, and evaluates it on held-out clips.
// LibTorch-free header: the config and the trainer live in codec_trainer.h.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace v2m::synth {

struct CodecRunOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // "a.b=value"
  int64_t steps = -1;                  // > 0: train until this global step (overrides the config)
  bool eval_only = false;              // evaluate the latest checkpoint (or the exported codec) only
  bool fresh = false;                  // ignore existing checkpoints (they are not deleted)
  int64_t codebooks = 0;               // > 0: evaluate with only the first N codebooks (lower bandwidth)
  std::string codec;                   // eval_only: evaluate this codec directory or model directory's codec
  std::string write_dir;               // eval: also write each clip's reconstruction as <write_dir>/<id>.wav
  // step, total steps; called after every step.
  std::function<void(int64_t step, int64_t total)> on_step;
};

struct CodecEvalResult {
  std::string split;
  int clips = 0;
  double seconds = 0;        // audio evaluated
  double si_snr_db = 0;      // mean over clips
  double mel_distance = 0;   // mean over clips (log10-mel L1, multi-scale)
  int64_t step = 0;
  int64_t codebooks = 0;     // codebooks the evaluation decoded
};

// Trains (resuming from the latest checkpoint unless fresh), exports the codec to
// <out_dir>/codec/{config.json, model.safetensors, codec.yaml}, evaluates it on the eval
// split and writes <out_dir>/eval.json. Returns the evaluation.
CodecEvalResult run_train_codec(const CodecRunOptions& opts);

}  // namespace v2m::synth
