// VGGish and PANNs CNN14: frontends, forward shapes, and loading random weights back by name.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/fad.h"
#include "eval/filterbanks.h"
#include "eval/kld.h"
#include "eval/panns.h"
#include "eval/vggish.h"
#include "eval_testutil.h"
#include "media/media_testutil.h"
#include "nn/state_dict.h"
#include "test_util.h"
#include "v2m/error.h"

TEST(Vggish, FrontendMakesNonOverlapping96FrameExamples) {
  // 2 s at 16 kHz: 1 + (32000 - 400) / 160 = 198 frames -> 2 examples of 96.
  auto ex = v2m::eval::vggish_examples(v2m::testutil::sine(16000, 1, 2.0, 1000, 0.5));
  ASSERT_EQ(ex.sizes(), (at::IntArrayRef{2, 1, 96, 64}));
  // 1000 Hz sits in one band: that band's log-mel is well above the silent floor log(0.01).
  at::Tensor band_mean = ex.mean({0, 1, 2});
  EXPECT_GT(band_mean.max().item<double>(), 2.0);
  EXPECT_NEAR(band_mean.min().item<double>(), std::log(0.01), 0.5);
  // Under 0.975 s: no example.
  EXPECT_EQ(v2m::eval::vggish_examples(v2m::testutil::sine(16000, 1, 0.5, 1000, 0.5)).size(0), 0);
  // The mel matrix zeroes the DC bin and spans 125-7500 Hz.
  auto m = v2m::eval::vggish_mel_matrix(16000, 257, 64, 125, 7500);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(m[static_cast<size_t>(i) * 257], 0.0);
}

TEST(Vggish, ForwardShapeAndRandomWeightsRoundTripByName) {
  TempDir d;
  at::manual_seed(0);
  v2m::eval::Vggish net;
  net->eval();
  v2m::nn::TensorMap state;
  v2m::nn::collect_state(*net, "", &state);
  EXPECT_TRUE(state.count("features.0.weight"));
  EXPECT_TRUE(state.count("features.13.bias"));
  EXPECT_TRUE(state.count("embeddings.4.weight"));
  v2m::testutil::he_init(state);
  const std::string path = d.path() + "/vggish.safetensors";
  v2m::nn::save_safetensors(path, state);
  auto loaded = v2m::eval::load_vggish(path);
  v2m::nn::load_into(*net, state, "", "memory");
  auto audio = v2m::testutil::sine(16000, 1, 2.0, 440, 0.5);
  at::Tensor a = v2m::eval::vggish_embed(net, audio), b = v2m::eval::vggish_embed(loaded, audio);
  ASSERT_EQ(a.sizes(), (at::IntArrayRef{2, 128}));
  EXPECT_TRUE(at::allclose(a, b, 1e-4, 1e-4));
  // FAD over embeddings: a set against itself is 0, against other tones it is not.
  auto set = [&](double f0) {
    std::vector<at::Tensor> e;
    for (double f : {f0, f0 * 1.5, f0 * 2.25}) e.push_back(v2m::eval::vggish_embed(loaded, v2m::testutil::sine(16000, 1, 2.0, f, 0.5)));
    return v2m::eval::fit_gaussian(at::cat(e));
  };
  auto g1 = set(300), g2 = set(1100);
  EXPECT_NEAR(v2m::eval::frechet_distance(g1, g1), 0.0, 1e-6 * g1.sigma.trace().item<double>() + 1e-9);
  EXPECT_GT(v2m::eval::frechet_distance(g1, g2), 1e-3);
  // A missing tensor is named.
  state.erase("embeddings.2.bias");
  v2m::nn::save_safetensors(path, state);
  try {
    v2m::eval::load_vggish(path);
    FAIL() << "expected an error";
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("embeddings.2.bias"), std::string::npos) << e.what();
  }
}

TEST(Panns, LogMelFrontendShapeAndSlaneyFilterArea) {
  at::Tensor wav = at::zeros({2, 32000});
  at::Tensor m = v2m::eval::panns_log_mel(wav);
  ASSERT_EQ(m.sizes(), (at::IntArrayRef{2, 1, 101, 64}));  // 1 + 32000 / 320 frames
  EXPECT_NEAR(m.max().item<double>(), -100.0, 1e-3);        // 10 log10(1e-10) for silence
  // Slaney-normalised triangles have unit area in Hz: sum_k w_k * bin_width ~ 1 for bands
  // many bins wide.
  auto w = v2m::eval::slaney_mel_filterbank(32000, 1024, 64, 50, 14000);
  double area = 0;
  for (int k = 0; k < 513; ++k) area += w[static_cast<size_t>(63) * 513 + k] * (32000.0 / 1024);
  EXPECT_NEAR(area, 1.0, 0.05);
}

TEST(Panns, Cnn14ForwardShapeAndRandomWeightsRoundTripByName) {
  TempDir d;
  at::manual_seed(0);
  v2m::eval::Cnn14 net;
  net->eval();
  v2m::nn::TensorMap state;
  v2m::nn::collect_state(*net, "", &state);
  EXPECT_TRUE(state.count("bn0.running_var"));
  EXPECT_TRUE(state.count("conv_block6.bn2.weight"));
  EXPECT_TRUE(state.count("fc_audioset.bias"));
  v2m::testutil::he_init(state);
  v2m::nn::load_into(*net, state, "", "memory");
  // The checkpoint's frontend tensors are accepted and ignored (recomputed in code).
  state["logmel_extractor.melW"] = at::zeros({513, 64});
  const std::string path = d.path() + "/cnn14.safetensors";
  v2m::nn::save_safetensors(path, state);
  auto loaded = v2m::eval::load_cnn14(path);
  {
    at::InferenceMode guard;
    at::Tensor wav = at::randn({1, 32000}) * 0.1;
    at::Tensor a = net->forward(wav), b = loaded->forward(wav);
    ASSERT_EQ(a.sizes(), (at::IntArrayRef{1, 527}));
    EXPECT_TRUE(at::allclose(a, b, 1e-3, 1e-3));
  }
  // KLD through the tagger: a clip against itself ~ 0 (only the 1e-6 shift), against a
  // different sound > 0 in both directions; 2 s at 16 kHz is one 10 s segment (cut short).
  auto tone = v2m::testutil::sine(16000, 1, 2.0, 440, 0.5);
  auto self = v2m::eval::kld_clip(loaded, tone, tone);
  EXPECT_EQ(self.segments, 1);
  EXPECT_NEAR(self.pq(), 0.0, 1e-3);
  auto other = v2m::eval::kld_clip(loaded, tone, v2m::testutil::sine(16000, 1, 2.0, 3000, 0.05));
  EXPECT_GT(other.pq(), 1e-3);
  EXPECT_GT(other.qp(), 1e-3);
  // An unknown tensor means config and weights disagree: an error naming it.
  state["fc2.weight"] = at::zeros({2, 2}, at::kHalf);
  v2m::nn::save_safetensors(path, state);
  try {
    v2m::eval::load_cnn14(path);
    FAIL() << "expected an error";
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc2.weight"), std::string::npos) << e.what();
  }
}
