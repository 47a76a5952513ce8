// Onset detection and tempo estimation (librosa semantics), and the SynthV2M label metrics.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/alignment.h"
#include "eval/chroma.h"
#include "eval/onsets.h"
#include "v2m/error.h"

namespace {

// Short decaying noise bursts (clicks) at the given times.
v2m::media::Audio clicks(int sr, double seconds, const std::vector<double>& times) {
  v2m::media::Audio a;
  a.sample_rate = sr;
  a.channels = 1;
  a.samples.assign(static_cast<size_t>(seconds * sr), 0.0f);
  uint32_t s = 12345;
  for (double t : times) {
    const int64_t i0 = static_cast<int64_t>(t * sr);
    for (int64_t i = 0; i < sr / 50 && i0 + i < static_cast<int64_t>(a.samples.size()); ++i) {
      s = s * 1664525u + 1013904223u;
      const double noise = (static_cast<double>(s >> 8) / (1 << 24)) * 2 - 1;
      a.samples[i0 + i] += static_cast<float>(0.8 * noise * std::exp(-static_cast<double>(i) / (sr / 400.0)));
    }
  }
  return a;
}

std::vector<double> grid(double period, double seconds, double first = 0.25) {
  std::vector<double> t;
  for (double x = first; x < seconds - 0.05; x += period) t.push_back(x);
  return t;
}

v2m::media::Audio chord(const std::vector<double>& hz, double seconds = 2.0, int sr = 32000) {
  v2m::media::Audio a;
  a.sample_rate = sr;
  a.channels = 1;
  a.samples.assign(static_cast<size_t>(seconds * sr), 0.0f);
  for (double f : hz)
    for (size_t i = 0; i < a.samples.size(); ++i) a.samples[i] += static_cast<float>(0.2 * std::sin(2 * M_PI * f * i / sr));
  return a;
}

}  // namespace

TEST(Onsets, ClickTimesAreDetectedWithinOneHop) {
  const std::vector<double> t = {0.5, 1.1, 1.7, 2.4};
  auto on = v2m::eval::onset_times(clicks(22050, 3.0, t));
  ASSERT_EQ(on.size(), t.size());
  for (size_t i = 0; i < t.size(); ++i) EXPECT_NEAR(on[i], t[i], 512.0 / 22050 + 1e-9) << i;
  // Silence: no onsets.
  EXPECT_TRUE(v2m::eval::onset_times(clicks(22050, 1.0, {})).empty());
}

TEST(Onsets, PeakPickFollowsLibrosaDefinition) {
  // pre_max = post_max = 1, averages over 2 frames each side, delta 0.1, wait 2.
  std::vector<double> x = {0, 1, 0, 0, 0.9, 0.95, 0, 0, 0, 0.5, 0, 0.6};
  auto p = v2m::eval::peak_pick(x, 1, 1, 2, 2, 0.1, 2);
  // 1: max of x[0:2], above mean(x[0:3]) + 0.1. 4 and 5: x[5] >= x[4] -> 4 and 5 both pass
  // the max test (window [n-1, n+1)), 5 is within `wait` of 4. 9 and 11 pass.
  EXPECT_EQ(p, (std::vector<int>{1, 4, 9}));
}

TEST(Tempo, ClickTrackAt120BpmWithinTwoPercent) {
  auto env = v2m::eval::onset_strength(clicks(22050, 10.0, grid(0.5, 10.0)));
  const double bpm = v2m::eval::estimate_tempo(env);
  EXPECT_NEAR(bpm, 120.0, 2.4) << bpm;
  EXPECT_LT(v2m::eval::tempo_error(bpm, 120.0), 0.02);
  // Other tempi, including one far from the 120 BPM prior.
  for (double target : {90.0, 150.0}) {
    auto e = v2m::eval::onset_strength(clicks(22050, 12.0, grid(60.0 / target, 12.0)));
    EXPECT_NEAR(v2m::eval::estimate_tempo(e), target, 0.02 * target) << target;
  }
  // Octave errors are errors.
  EXPECT_NEAR(v2m::eval::tempo_error(60.0, 120.0), 0.5, 1e-12);
}

TEST(Alignment, KeyProfilesFindTonicAndMode) {
  at::Tensor c_major = at::zeros({12}, at::kDouble), a_minor = at::zeros({12}, at::kDouble);
  for (int pc : {0, 4, 7}) c_major[pc] = 1.0;  // C E G
  for (int pc : {9, 0, 4}) a_minor[pc] = 1.0;  // A C E
  auto k1 = v2m::eval::estimate_key(c_major);
  EXPECT_EQ(k1.tonic, 0);
  EXPECT_TRUE(k1.major);
  auto k2 = v2m::eval::estimate_key(a_minor);
  EXPECT_EQ(k2.tonic, 9);
  EXPECT_FALSE(k2.major);
}

TEST(Alignment, ModeOfMajorAndMinorChordAudio) {
  v2m::eval::ChromaExtractor ex;
  // Triads with the tonic doubled an octave up (a bare triad's chroma is ambiguous with the
  // relative key: librosa's octave weighting favours the upper notes).
  auto maj = v2m::eval::estimate_key(v2m::eval::mean_chroma(ex, chord({261.63, 329.63, 392.0, 523.25})));  // C E G C
  auto min = v2m::eval::estimate_key(v2m::eval::mean_chroma(ex, chord({261.63, 311.13, 392.0, 523.25})));  // C Eb G C
  EXPECT_TRUE(maj.major);
  EXPECT_EQ(maj.tonic, 0);
  EXPECT_FALSE(min.major);
  EXPECT_EQ(min.tonic, 0);
}

TEST(Alignment, CutOffsetAndLabelParsing) {
  // Cuts 1.0 and 2.0; onsets 0.9, 2.05, 3.0 -> (0.1 + 0.05) / 2.
  EXPECT_NEAR(v2m::eval::cut_offset({1.0, 2.0}, {0.9, 2.05, 3.0}), 0.075, 1e-12);
  EXPECT_TRUE(std::isnan(v2m::eval::cut_offset({1.0}, {})));
  auto l = v2m::eval::parse_synth_labels(
      nlohmann::json::parse(R"({"bpm": 96.0, "key": "D", "key_pc": 2, "mode": "minor", "program": 0,
                               "family": "piano", "beats": [0.0, 0.625], "cuts": [2.5, 5.0]})"),
      "m.jsonl:3");
  ASSERT_TRUE(l.bpm && l.major && l.key_pc);
  EXPECT_EQ(*l.bpm, 96.0);
  EXPECT_FALSE(*l.major);
  EXPECT_EQ(*l.key_pc, 2);
  EXPECT_EQ(l.cuts, (std::vector<double>{2.5, 5.0}));
  auto none = v2m::eval::parse_synth_labels(nlohmann::json::object(), "x");
  EXPECT_FALSE(none.bpm || none.major);
  try {
    v2m::eval::parse_synth_labels(nlohmann::json::parse(R"({"mode": "dorian"})"), "m.jsonl:7");
    FAIL();
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.jsonl:7"), std::string::npos);
  }
}
