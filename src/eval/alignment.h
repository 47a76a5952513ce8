// Ground-truth alignment metrics for SynthV2M clips, whose manifest `labels` say what the
// music should do: {"bpm", "key", "key_pc", "mode", "program", "family", "beats", "cuts"}.
//   tempo error      |estimated BPM - label BPM| / label BPM of the generated audio
//                    (eval/onsets.h estimate_tempo; a half/double-tempo answer is an error);
//   mode accuracy    major/minor of the best Krumhansl-Kessler key profile correlated with
//                    the clip's mean chroma, against the label;
//   beat-to-cut      mean over label cuts of the distance (s) to the nearest onset peak of
//                    the generated audio.
// Each is computed only when its label keys are present.
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace v2m::eval {

struct SynthLabels {
  std::optional<double> bpm;
  std::optional<bool> major;
  std::optional<int> key_pc;
  std::vector<double> cuts;  // seconds from the clip start
};

// Reads the keys it knows; wrong types throw v2m::Error naming `where` and the key.
SynthLabels parse_synth_labels(const nlohmann::json& labels, const std::string& where);

struct KeyEstimate {
  int tonic = 0;      // pitch class, 0 = C
  bool major = true;
  double correlation = 0;
};

// chroma: [12] (C first) -> best of the 24 rotated Krumhansl-Kessler profiles (Pearson r).
KeyEstimate estimate_key(const at::Tensor& chroma);

double tempo_error(double estimated_bpm, double label_bpm);

// Mean distance from each cut to its nearest onset; NaN when either list is empty.
double cut_offset(const std::vector<double>& cuts, const std::vector<double>& onsets);

}  // namespace v2m::eval
