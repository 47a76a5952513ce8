// Feature cache: the frozen encoders' outputs for every clip of a manifest, computed once by
// `v2m prep` and read by the trainer (design.md 3.4). A cache lives in
// <data.cache_dir>/<key>/, key = hash of everything that changes the features (feature
// config, CLIP and codec architecture, their weights' identity). Clips are grouped into
// safetensors shards in manifest order; a shard's name carries a hash of its entries, so
// editing the manifest invalidates only the shards it touches, and a killed prep resumes
// at the first missing shard.
//
// Per clip `id`, a shard holds: "<id>/clip" [Tc, Dc] f32, "<id>/clip_t" [Tc] f32 (seconds
// from the clip start), "<id>/motion" [Tm, Dm] f32 and "<id>/motion_t" [Tm] (only when the
// model uses motion), "<id>/codes" [K, T] i32. Clips that failed are listed in the shard's
// metadata ("failed": {id: reason}) and skipped by readers, never silently dropped.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/run_config.h"
#include "model/model_config.h"
#include "model/v2m_model.h"

namespace v2m::train {

struct CachedClip {
  std::string id;
  at::Tensor clip, clip_t;      // [Tc, Dc], [Tc]
  at::Tensor motion, motion_t;  // [Tm, Dm], [Tm]; undefined without motion
  at::Tensor codes;             // [K, T] int64
};

// The model prep and training start from: the architecture of cfg.model (random init,
// seed 0) with, when cfg.init names a model directory, its pretrained CLIP, decoder and
// codec weights (the fusion always starts fresh, so an init made for Model-S serves the
// no-motion ablation too). The init's config must agree on those three sections, except that
// the decoder may model more codebooks than the init's: the added codebooks start with a zero
// input embedding and a fresh head.
model::V2MModel load_run_model(const data::RunConfig& cfg);

// Identity of the frozen weights the cache depends on: "random-init" without an init, else
// a digest of the init's CLIP and codec tensors (the decoder and fusion do not enter it).
std::string weights_identity(const std::string& init_dir);

// The cache directory for this run config + model config.
std::string cache_dir(const data::RunConfig& run, const model::ModelConfig& model);

// Shard k of a manifest: its file name (shard-<k>-<hash of its entries>.safetensors) and
// the clips it covers.
struct ShardPlan {
  std::string file;
  std::vector<data::ClipEntry> clips;
};
std::vector<ShardPlan> plan_shards(const std::vector<data::ClipEntry>& clips, int64_t shard_size);

// Writes one shard atomically. `failed` maps clip id -> reason.
void write_shard(const std::string& path, const std::vector<CachedClip>& clips,
                 const std::map<std::string, std::string>& failed);

// The clips a shard records as failed (id -> reason).
std::map<std::string, std::string> shard_failures(const std::string& path);

class FeatureCache {
 public:
  // Opens the shards of `clips` (the whole manifest, in order: shards are planned over it)
  // in `dir` and keeps the clips of `split` (empty: all). Throws
  // v2m::Error naming the directory and how many shards are missing ("run v2m prep").
  // Tensors are zero-copy views of the memory-mapped shards.
  static FeatureCache open(const std::string& dir, const std::vector<data::ClipEntry>& clips, int64_t shard_size,
                           bool with_motion, const std::string& split = "");
  size_t size() const { return clips_.size(); }
  const CachedClip& operator[](size_t i) const { return clips_[i]; }
  // id -> reason for clips prep could not process (skipped here).
  const std::map<std::string, std::string>& failed() const { return failed_; }

 private:
  std::vector<CachedClip> clips_;
  std::map<std::string, std::string> failed_;
};

}  // namespace v2m::train
