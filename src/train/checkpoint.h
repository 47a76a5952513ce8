// Training checkpoints (design.md 3.4): <run>/checkpoints/step-00001234/ holds
// config.yaml + model.safetensors (a complete model directory: `v2m generate --model` and
// `v2m eval --checkpoint` read it as is), optimizer.safetensors and trainer_state.json.
// A checkpoint is written into a temporary directory and renamed into place, then the
// `latest` file (the name of the newest checkpoint) is replaced atomically, so a crash or
// kill at any moment leaves the previous checkpoint intact and `latest` pointing at it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "model/v2m_model.h"
#include "nn/state_dict.h"

namespace v2m::train {

struct TrainerState {
  int64_t step = 0;      // optimizer steps done
  int64_t epoch = 0;     // epoch of the next sample
  int64_t samples = 0;   // training samples seen (all ranks)
  int64_t seed = 0;      // data order, crops and condition dropout derive from (seed, step, sample)
  std::string config_hash;  // hash of the model config; resuming with another one is refused
  double best_val = std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  double last_loss = 0;
  int64_t world_size = 1;
  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& source);
};

// "step-00001234".
std::string checkpoint_name(int64_t step);

// Writes a checkpoint under `root` and points `latest` at it; with `is_best`, points `best`
// at it too. Then removes checkpoints beyond the newest `keep_last` (never `best`) and
// stale temporaries. Returns the checkpoint directory. On failure (disk full, ...) throws
// v2m::Error and leaves the previous checkpoints and pointers untouched.
std::string save_checkpoint(const std::string& root, model::V2MModel& model, const nn::TensorMap& optimizer,
                            const TrainerState& state, int64_t keep_last, bool is_best);

// The directory `root/latest` names, or "" when there is none.
std::string latest_checkpoint(const std::string& root);

struct LoadedCheckpoint {
  std::string dir;
  TrainerState state;
  nn::TensorMap optimizer;
};
// Loads weights into `model` (strict), the optimizer tensors and the trainer state.
LoadedCheckpoint load_checkpoint(const std::string& dir, model::V2MModel& model);

// Removes leftovers of interrupted writes (".tmp-*" directories) under root.
void remove_stale_temporaries(const std::string& root);

}  // namespace v2m::train
