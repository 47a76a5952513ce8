// `v2m prep`: (1) a manifest from a folder of videos; (2) the feature cache — the frozen
// encoders (CLIP tokens, motion descriptors, EnCodec codes) run once over every clip of a
// run config's manifest so training reads tensors only (design.md 3.4).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "data/run_config.h"

namespace v2m::pipeline {

struct ManifestFromVideos {
  double clip_seconds = 30.0;                // clips are the first clip_seconds of each video
  std::vector<double> ratios = {0.7, 0.2, 0.1};  // train/val/test (V2M20K's 13293/3798/1899)
  uint64_t seed = 0;
};

struct ManifestBuildReport {
  int64_t clips = 0;
  std::vector<std::string> skipped;  // "path: why" for files that cannot be used
};

// Scans `dir` (recursively) for videos; audio comes from a same-named .wav/.flac/.mp3/.ogg
// next to the video, else the video's own audio track; videos with neither are skipped and
// reported. Paths in the manifest are relative to `dir`. Writes `out` atomically.
ManifestBuildReport build_manifest_from_videos(const std::string& dir, const std::string& out,
                                               const ManifestFromVideos& opts);

struct PrepReport {
  std::string cache_dir;
  int64_t clips = 0;        // in the manifest
  int64_t shards = 0;
  int64_t shards_reused = 0;  // already present (a resumed prep)
  std::map<std::string, std::string> failed;  // id -> why
};

// Fills the feature cache for every clip of cfg's manifest (all splits), one shard at a
// time, skipping shards already written. A clip that cannot be decoded is recorded as
// failed in its shard and in the report, never silently dropped.
PrepReport prep_cache(const data::RunConfig& cfg, const std::string& device);

}  // namespace v2m::pipeline
