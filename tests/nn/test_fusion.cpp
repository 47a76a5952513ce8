#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/fusion.h"
#include "nn/state_dict.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {

FusionConfig tiny_fusion(bool motion) {
  FusionConfig c;
  c.motion = motion;
  c.width = 32;
  c.layers = 2;
  c.heads = 4;
  c.ffn_dim = 64;
  return c;
}

MotionEncoderConfig tiny_motion() {
  MotionEncoderConfig m;
  m.in_dim = 12;
  m.layers = 1;
  return m;
}

struct Inputs {
  at::Tensor clip, clip_t, clip_mask, motion, motion_t, motion_mask;
};

Inputs make_inputs(int64_t B = 2, int64_t Tc = 5, int64_t Tm = 16) {
  torch::manual_seed(0);
  Inputs in;
  in.clip = torch::randn({B, Tc, 24});
  in.clip_t = (torch::arange(Tc).to(torch::kFloat) * 1.0 + 0.5).unsqueeze(0).expand({B, Tc}).contiguous();
  in.clip_mask = torch::ones({B, Tc}, torch::kLong);
  in.motion = torch::randn({B, Tm, 12});
  in.motion_t = (torch::arange(Tm).to(torch::kFloat) / 8.0 + 1.0 / 16).unsqueeze(0).expand({B, Tm}).contiguous();
  in.motion_mask = torch::ones({B, Tm}, torch::kLong);
  return in;
}

}  // namespace

TEST(Fusion, TimeEmbeddingLinesUpStreamsOfDifferentRates) {
  // CLIP at 1 fps and flow at 8 fps: tokens at the same real time get the same embedding,
  // whatever their index in their stream.
  auto clip_t = torch::tensor({{0.0f, 1.0f, 2.0f}});
  auto flow_t = torch::arange(17).to(torch::kFloat).div(8.0).unsqueeze(0);
  auto ec = time_embedding(clip_t, 32, 10.0);
  auto ef = time_embedding(flow_t, 32, 10.0);
  EXPECT_TRUE(torch::allclose(ec[0][1], ef[0][8], 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(ec[0][2], ef[0][16], 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(ec[0][1], ef[0][7], 1e-3, 1e-3));
}

TEST(Fusion, OutputShapesFollowTheQueryStream) {
  TemporalFusion f(tiny_fusion(true), tiny_motion(), 24, 48);
  auto in = make_inputs();
  auto out = f->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  EXPECT_EQ(out.memory.sizes(), (std::vector<int64_t>{2, 16, 48}));
  EXPECT_EQ(out.mask.sizes(), (std::vector<int64_t>{2, 16}));
  EXPECT_TRUE(torch::equal(out.times, in.motion_t));

  TemporalFusion nm(tiny_fusion(false), tiny_motion(), 24, 48);
  auto o2 = nm->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  EXPECT_EQ(o2.memory.sizes(), (std::vector<int64_t>{2, 5, 48}));
}

TEST(Fusion, MaskedPositionsAreZeroAndIgnored) {
  TemporalFusion f(tiny_fusion(true), tiny_motion(), 24, 48);
  f->eval();
  auto in = make_inputs();
  // Pad the second clip: its last 6 motion tokens and last 2 CLIP tokens are invalid.
  in.motion_mask[1].slice(0, 10).fill_(0);
  in.clip_mask[1].slice(0, 3).fill_(0);
  auto out = f->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  EXPECT_EQ(out.memory[1].slice(0, 10).abs().max().item<float>(), 0.0f);
  EXPECT_EQ(out.mask[1].sum().item<int64_t>(), 10);
  // Changing masked CLIP tokens changes nothing.
  auto clip2 = in.clip.clone();
  clip2[1].slice(0, 3).add_(100.0);
  auto out2 = f->forward(clip2, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  EXPECT_TRUE(torch::allclose(out.memory, out2.memory, 1e-5, 1e-5));
}

TEST(Fusion, NoMotionConfigChangesOnlyTheFusionPath) {
  TemporalFusion with(tiny_fusion(true), tiny_motion(), 24, 48);
  TemporalFusion without(tiny_fusion(false), tiny_motion(), 24, 48);
  TensorMap a, b;
  collect_state(*with, "", &a);
  collect_state(*without, "", &b);
  // Same tensors except the motion encoder's.
  for (auto& [k, t] : b) {
    ASSERT_TRUE(a.count(k)) << k;
    EXPECT_EQ(a[k].sizes(), t.sizes()) << k;
  }
  for (auto& [k, t] : a)
    if (!b.count(k)) EXPECT_EQ(k.rfind("motion_encoder.", 0), 0u) << k;
  // The no-motion output does not depend on motion inputs at all.
  without->eval();
  auto in = make_inputs();
  auto o1 = without->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  auto o2 = without->forward(in.clip, in.clip_t, in.clip_mask, in.motion * 5, in.motion_t, in.motion_mask);
  EXPECT_TRUE(torch::equal(o1.memory, o2.memory));
}

TEST(Fusion, ModelSSizeIsAboutFortyMillion) {
  FusionConfig c;  // defaults are Model-S
  MotionEncoderConfig m;
  TemporalFusion f(c, m, 512, 1024);
  const double n = count_parameters(*f) / 1e6;
  EXPECT_GT(n, 38.0);
  EXPECT_LT(n, 45.0);
}

TEST(Fusion, MotionEncoderConvMatchesConv1dAndBackpropagatesCorrectly) {
  torch::manual_seed(3);
  v2m::nn::MotionEncoderConfig mc;
  mc.in_dim = 6;
  mc.layers = 1;
  mc.kernel_size = 3;
  v2m::nn::MotionEncoder enc(mc, 8);
  at::Tensor x = at::randn({2, 11, 6});
  // Forward: the unfold formulation equals a reference conv1d on contiguous [B, W, T].
  at::Tensor h = enc->in_proj->forward(enc->in_norm->forward(x));
  auto conv = enc->blocks[0]->as<torch::nn::Conv1d>();
  at::Tensor ref = h + torch::gelu(conv->forward(h.transpose(1, 2).contiguous()).transpose(1, 2));
  EXPECT_LT((enc->forward(x) - ref).abs().max().item<double>(), 1e-5);
  // Backward: the conv weight's gradient matches a finite difference (the 1.13 conv1d
  // backward got this wrong for transposed layouts).
  at::Tensor g = at::randn({2, 11, 8});
  enc->zero_grad();
  (enc->forward(x) * g).sum().backward();
  const double analytic = conv->weight.grad()[1][2][0].item<double>();
  const double eps = 1e-2;
  double numeric;
  {
    torch::NoGradGuard ng;
    auto w = conv->weight;
    w[1][2][0] += eps;
    const double up = (enc->forward(x) * g).sum().item<double>();
    w[1][2][0] -= 2 * eps;
    const double down = (enc->forward(x) * g).sum().item<double>();
    w[1][2][0] += eps;
    numeric = (up - down) / (2 * eps);
  }
  EXPECT_NEAR(analytic, numeric, 1e-2 * std::max(1.0, std::abs(numeric)));
}

TEST(Fusion, ResampleToFramesInterpolatesHoldsAndSkipsPadding) {
  // Row 0: values 0, 10, 20 at 0.5, 1.0, 1.5 s, then a padded token (time 0, value 99).
  // Row 1: nothing valid.
  auto tokens = torch::tensor({0.f, 10.f, 20.f, 99.f, 5.f, 5.f, 5.f, 5.f}).view({2, 4, 1});
  auto times = torch::tensor({0.5f, 1.0f, 1.5f, 0.f, 0.f, 1.f, 2.f, 3.f}).view({2, 4});
  auto mask = torch::tensor({1, 1, 1, 0, 0, 0, 0, 0}, torch::kLong).view({2, 4});
  auto out = resample_to_frames(tokens, times, mask, 9, 4.0);  // frames at 0, 0.25, ..., 2.0 s
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 9, 1}));
  const std::vector<float> want = {0, 0, 0, 5, 10, 15, 20, 20, 20};
  for (int64_t f = 0; f < 9; ++f) EXPECT_NEAR(out[0][f][0].item<float>(), want[f], 1e-5) << "frame " << f;
  EXPECT_EQ(out[1].abs().max().item<float>(), 0.0f);
  EXPECT_THROW(resample_to_frames(tokens, times.narrow(1, 0, 3), mask, 9, 4.0), v2m::Error);
}

TEST(Fusion, FrameConditionAddsOnlyItsProjection) {
  auto fc = tiny_fusion(true);
  TemporalFusion plain(fc, tiny_motion(), 24, 48);
  fc.frame_condition = true;
  torch::manual_seed(0);
  TemporalFusion framed(fc, tiny_motion(), 24, 48);
  TensorMap a, b;
  collect_state(*plain, "", &a);
  collect_state(*framed, "", &b);
  EXPECT_EQ(b.size(), a.size() + 2);
  EXPECT_EQ(b.at("frame_proj.weight").sizes(), (std::vector<int64_t>{48, 32}));
  EXPECT_TRUE(b.count("frame_proj.bias"));
  framed->eval();
  auto in = make_inputs();
  in.motion_mask[1].slice(0, 10).fill_(0);
  auto out = framed->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  ASSERT_TRUE(out.frame.defined());
  EXPECT_EQ(out.frame.sizes(), out.memory.sizes());
  EXPECT_EQ(out.frame[1].slice(0, 10).abs().max().item<float>(), 0.0f);  // padded queries: none
  EXPECT_GT(out.frame[0].abs().max().item<float>(), 0.0f);
  EXPECT_FALSE(torch::allclose(out.frame, out.memory));  // its own projection, not the memory
  auto o2 = plain->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  EXPECT_FALSE(o2.frame.defined());
}

TEST(Fusion, InputNormStandardisesWithTheTrainingStatistics) {
  auto fc = tiny_fusion(true);
  torch::manual_seed(3);
  TemporalFusion plain(fc, tiny_motion(), 24, 48);
  fc.input_norm = true;
  torch::manual_seed(3);
  TemporalFusion normed(fc, tiny_motion(), 24, 48);
  TensorMap st;
  collect_state(*normed, "", &st);
  for (const char* k : {"input_norm_clip_mean", "input_norm_clip_std", "input_norm_motion_mean", "input_norm_motion_std"})
    EXPECT_TRUE(st.count(k)) << k;  // buffers: saved and loaded with the model
  // Features with a large shared offset and small per-dimension spread, as a frozen tower gives.
  torch::manual_seed(4);
  at::Tensor clip_frames = torch::randn({200, 24}) * 0.1 + 3.0, motion_frames = torch::randn({300, 12}) * 2.0 - 1.0;
  normed->set_input_stats(clip_frames, motion_frames);
  EXPECT_LT((normed->clip_mean - clip_frames.mean(0)).abs().max().item<float>(), 1e-5);
  EXPECT_LT((normed->motion_std - motion_frames.std(0)).abs().max().item<float>(), 1e-4);
  // Same weights: the normalised model on x equals the plain one on (x - mean) / std.
  plain->eval();
  normed->eval();
  auto in = make_inputs();
  auto a = normed->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  auto b = plain->forward((in.clip - normed->clip_mean) / normed->clip_std, in.clip_t, in.clip_mask,
                          (in.motion - normed->motion_mean) / normed->motion_std, in.motion_t, in.motion_mask);
  EXPECT_TRUE(torch::allclose(a.memory, b.memory, 1e-4, 1e-5));
  auto c = plain->forward(in.clip, in.clip_t, in.clip_mask, in.motion, in.motion_t, in.motion_mask);
  EXPECT_FALSE(torch::allclose(a.memory, c.memory, 1e-3, 1e-4));
  // Wrong shapes and a plain fusion are refused.
  EXPECT_THROW(normed->set_input_stats(torch::randn({10, 23}), motion_frames), v2m::Error);
  EXPECT_THROW(plain->set_input_stats(clip_frames, motion_frames), v2m::Error);
}
