// Dataset manifests: JSON lines, one clip per line (design.md 3.4):
//   {"id": "...", "video": "rel/path.mp4", "audio": "rel/path.wav"?, "start": 0.0,
//    "duration": 30.0, "split": "train|val|test", "labels": {...}?}
// No "audio": the video's own audio track is the reference. Paths are relative to the
// dataset root and confined to it unless absolute paths are allowed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace v2m::data {

struct ClipEntry {
  std::string id;
  std::string video;     // as written in the manifest
  std::string audio;     // as written; empty = the video's own audio track
  double start = 0.0;    // seconds into the video
  double duration = 30.0;
  std::string split;     // train | val | test
  nlohmann::json labels = nlohmann::json::object();  // optional ground truth (SynthV2M)
  int64_t line = 0;      // 1-based line in the manifest (for messages)
  // Resolved against the root (filled by read_manifest / parse_manifest).
  std::string video_path;
  std::string audio_path;  // == video_path when `audio` is empty
};

struct ManifestOptions {
  std::string root;                   // dataset root; empty = the manifest's directory
  bool allow_absolute_paths = false;  // otherwise absolute paths and ".." escapes are errors
  bool check_files = true;            // every referenced file must exist and be non-empty
};

struct Manifest {
  std::string path;  // the manifest file (or a label for parsed text)
  std::string root;
  std::vector<ClipEntry> clips;
  // The clips of one split, in manifest order. Throws v2m::Error for an unknown split name.
  std::vector<ClipEntry> split(const std::string& name) const;
};

// Reads and validates a manifest. Every problem (bad JSON, missing/mistyped key, duplicate
// id, unknown split, path outside the root, missing file) is logged with its line number;
// if there were any, throws one v2m::Error "manifest: <path>: N problems; first: line L: ...".
Manifest read_manifest(const std::string& path, const ManifestOptions& opts = {});
// Same, from text (`label` names it in messages). Used by the fuzzer and tests.
Manifest parse_manifest(const std::string& text, const std::string& label, const ManifestOptions& opts);

// Writes clips as JSON lines, atomically (paths written as given in `video`/`audio`).
void write_manifest(const std::string& path, const std::vector<ClipEntry>& clips);

// Deterministic split assignment: shuffles ids with `seed` and cuts by `ratios`
// (train, val, test; normalised). Same inputs -> same splits on every machine.
std::vector<std::string> assign_splits(size_t n, const std::vector<double>& ratios, uint64_t seed);

// The split names, in order.
const std::vector<std::string>& split_names();

}  // namespace v2m::data
