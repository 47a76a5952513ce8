// Chroma extraction and chroma cosine similarity (audiocraft ChromaCosineSimilarityMetric).
#include <gtest/gtest.h>

#include <cmath>

#include "eval/chroma.h"
#include "eval/filterbanks.h"
#include "media/media_testutil.h"

namespace {

v2m::media::Audio tones(int sr, double seconds, std::initializer_list<double> hz) {
  v2m::media::Audio a;
  a.sample_rate = sr;
  a.channels = 1;
  const int64_t n = static_cast<int64_t>(seconds * sr);
  a.samples.assign(static_cast<size_t>(n), 0.0f);
  for (double f : hz)
    for (int64_t i = 0; i < n; ++i) a.samples[i] += static_cast<float>(0.3 * std::sin(2 * M_PI * f * i / sr));
  return a;
}

}  // namespace

// Hand derivation of librosa.filters.chroma(sr=32000, n_fft=4096, tuning=0) at FFT bin 56
// (437.5 Hz): position 12 log2(437.5 / 27.5) = 47.9014 chroma bins; bin width
// max(12 log2(57/56), 1) = 1; wrapped distance to A = ((47.9014 + 6 + 120) mod 12) - 6 = -0.0986,
// to A# -1.0986, to G# 0.9014 -> Gaussians exp(-0.5 (2d)^2) = 0.98074, 0.08929, 0.19723 (+ tails
// 1.5e-4 and 7.2e-4); L2 column norm 1.00421; octave weight exp(-0.5 ((47.9014/12 - 5)/2)^2) =
// 0.88068. Rows rolled so C is row 0: A = row 9 -> 0.86001, A# = row 10 -> 0.07844,
// G# = row 8 -> 0.17270.
TEST(Chroma, FilterbankMatchesHandDerivedLibrosaValues) {
  auto fb = v2m::eval::chroma_filterbank(32000, 4096);
  ASSERT_EQ(fb.size(), 12u * 2049u);
  auto at = [&](int c, int k) { return fb[static_cast<size_t>(c) * 2049 + k]; };
  EXPECT_NEAR(at(9, 56), 0.86001, 5e-4);
  EXPECT_NEAR(at(10, 56), 0.07844, 5e-4);
  EXPECT_NEAR(at(8, 56), 0.17270, 5e-4);
  EXPECT_NEAR(at(0, 56), 0.0, 1e-6);
}

TEST(Chroma, PureA4TonePeaksAtPitchClassA) {
  v2m::eval::ChromaExtractor ex;
  at::Tensor c = v2m::eval::mean_chroma(ex, tones(32000, 1.0, {440.0}));
  EXPECT_EQ(c.argmax().item<int64_t>(), 9);  // C=0 ... A=9
  EXPECT_NEAR(c[9].item<double>(), 1.0, 1e-3);  // max-normalised per frame
  // A 16 kHz input is resampled to 32 kHz first: same answer.
  at::Tensor c16 = v2m::eval::mean_chroma(ex, tones(16000, 1.0, {440.0}));
  EXPECT_EQ(c16.argmax().item<int64_t>(), 9);
}

TEST(Chroma, SimilarityWithItselfIsOneAndWithTritoneShiftIsLow) {
  v2m::eval::ChromaExtractor ex;
  auto a = tones(32000, 2.0, {261.63, 329.63, 392.0});  // C major triad
  const double k = std::pow(2.0, 6.0 / 12.0);
  auto b = tones(32000, 2.0, {261.63 * k, 329.63 * k, 392.0 * k});  // F# major triad
  auto self = v2m::eval::chroma_cosine(ex, a, a);
  EXPECT_NEAR(self.value(), 1.0, 1e-6);
  auto shifted = v2m::eval::chroma_cosine(ex, a, b);
  EXPECT_LT(shifted.value(), 0.3);
  EXPECT_GE(shifted.value(), -1.0);
}

TEST(Chroma, FrameCountIsCeilOfLengthOverHopAndShortInputsArePadded) {
  v2m::eval::ChromaExtractor ex;
  EXPECT_EQ(ex.n_fft(), 4096);
  EXPECT_EQ(ex.hop(), 1024);
  auto a = tones(32000, 1.0, {440.0});
  EXPECT_EQ(v2m::eval::chroma_cosine(ex, a, a).frames, 32);  // ceil(32000 / 1024)
  // Different lengths: cut to the shorter one (20000 samples -> 20 frames).
  auto b = tones(32000, 20000.0 / 32000.0, {440.0});
  EXPECT_EQ(v2m::eval::chroma_cosine(ex, a, b).frames, 20);
  // Shorter than n_fft: padded to n_fft, ceil(1000 / 1024) = 1 frame compared.
  auto s = tones(32000, 1000.0 / 32000.0, {440.0});
  auto r = v2m::eval::chroma_cosine(ex, s, s);
  EXPECT_EQ(r.frames, 1);
  EXPECT_NEAR(r.value(), 1.0, 1e-6);
  // Accumulating clips weights by frames, as the metric's cosine_sum / weight.
  v2m::eval::ChromaCosine acc;
  acc.add(v2m::eval::chroma_cosine(ex, a, a));
  acc.add(v2m::eval::chroma_cosine(ex, a, tones(32000, 1.0, {440.0 * std::pow(2.0, 0.5)})));
  EXPECT_GT(acc.value(), 0.3);
  EXPECT_LT(acc.value(), 0.8);
}
