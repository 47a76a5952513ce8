// SynthV2M dataset writer: N procedural clips (mp4 with its own AAC soundtrack + the same
// music as a lossless .wav) and manifest.jsonl with labels, splits 0.7/0.2/0.1 (V2M20K's
// ratio). Deterministic per seed: same options -> same scores, frames and samples.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace v2m::synth {

struct SynthOptions {
  std::string out_dir;
  int clips = 200;
  double seconds = 8.0;
  uint64_t seed = 0;
  int sample_rate = 16000;
  int size = 128;        // square frames, even
  double fps = 16;
  std::string soundfont;  // empty: find_soundfont()
  int threads = 0;       // clip workers; 0 = hardware threads
  std::string video_codec = "auto";
  int tonic = -1;        // -1: a key per clip; 0..11: every clip in this tonic (sample_clip_params)
};

// done, total clips
using SynthProgress = std::function<void(int done, int total)>;

// Writes DIR/clips/synth_NNNNN.{mp4,wav} and DIR/manifest.jsonl (last, atomically; every
// clip file is atomic too). Returns the manifest's path. Throws v2m::Error on bad options,
// a missing soundfont or a failed write.
std::string generate_dataset(const SynthOptions& opts, const SynthProgress& progress = {});

// "synth_00042"
std::string clip_id(int index);

}  // namespace v2m::synth
