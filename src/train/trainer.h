// The trainer: fusion + motion encoder (+ the MusicGen decoder unless train.freeze_decoder)
// on the feature cache, with the delay pattern's cross-entropy over the K codebooks,
// condition dropout for classifier-free guidance, AdamW with linear warmup + cosine decay,
// gradient clipping and accumulation, data parallel over c10d, exact resume.
//
// Determinism: the data order (a permutation per epoch), each sample's crop and its
// condition-dropout draw are functions of (train.seed, epoch / global sample index), not
// of any stateful RNG, so a resumed run and a run on a different number of ranks with the
// same global batch see exactly the same samples.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "data/run_config.h"
#include "train/distributed.h"

namespace v2m::train {

struct TrainOptions {
  bool resume = true;          // continue from <out_dir>/checkpoints/latest when present
  std::string resume_from;     // a specific checkpoint directory (overrides `latest`)
  int64_t max_steps_this_run = 0;  // > 0: stop (with a checkpoint) after this many steps
};

struct TrainResult {
  int64_t step = 0;
  double last_loss = 0;
  double best_val = 0;
  std::string checkpoint;  // the last checkpoint written
  bool interrupted = false;  // stopped by a signal (a checkpoint was written)
};

// Ask a running train() to checkpoint and return at the end of the current step
// (async-signal-safe: the CLI's SIGINT/SIGTERM handler calls it).
void request_stop(int signal_number);
int stop_signal();

// Device for train.device ("auto": CUDA when available).
std::string resolve_device(const std::string& device);

TrainResult train(const data::RunConfig& cfg, const TrainOptions& opts, Dist& dist);

}  // namespace v2m::train
