// Temporal cross-attention fusion (the poster's fusion block) and the motion encoder
// that lifts per-frame-pair flow descriptors to the fusion width.
//
// Both streams carry real timestamps (seconds); each token gets a sinusoidal embedding of
// its time, so streams sampled at different rates (CLIP at clip_fps, flow at flow_fps)
// line up on one time axis. Fusion is along time only: no spatial tokens.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/modules/normalization.h>

#include "nn/linear.h"
#include "v2m/config.h"

namespace v2m::nn {

struct MotionEncoderConfig {
  int64_t in_dim = 135;      // motion_descriptor_dim(grid 4, bins 8)
  int64_t layers = 1;        // residual temporal conv blocks
  int64_t kernel_size = 3;   // odd, "same" padding along time
  void visit(ConfigVisitor& v) {
    v.field("in_dim", in_dim, {1, 1 << 16});
    v.field("layers", layers, {0, 64});
    v.field("kernel_size", kernel_size, {1, 31});
  }
};

struct FusionConfig {
  bool motion = true;        // false: the poster's "w/o motion" ablation
  int64_t width = 1024;
  int64_t layers = 3;
  int64_t heads = 16;
  int64_t ffn_dim = 4096;
  double time_scale = 10.0;  // sinusoid position = seconds * time_scale (0.1 s resolution)
  double dropout = 0.0;
  // Also add the condition, interpolated to the codec frame rate, to the decoder's input at
  // every frame (time-aligned conditioning next to the cross-attention): frame t of the
  // music sees the video at time t directly instead of having to find it by attention.
  // Adds `frame_proj`; off for Model-S, whose layout stays transformers'.
  bool frame_condition = false;
  // Standardise each input feature (CLIP embedding and motion descriptor dimension) with the
  // training set's mean and standard deviation, kept as the buffers input_norm.{clip,motion}_
  // {mean,std} (input_norm_clip_mean etc.). A frozen random vision tower's embeddings are mostly one constant vector
  // (across clips each dimension varies by ~14% of its spread on SynthV2M), so unnormalised
  // the clip-specific part reaches the fusion ~10x weaker than the time embedding. The
  // trainer sets the statistics at step 0; off (no buffers) for Model-S.
  bool input_norm = false;
  void visit(ConfigVisitor& v) {
    v.field("motion", motion);
    v.field("width", width, {1, 1 << 16});
    v.field("layers", layers, {1, 64});
    v.field("heads", heads, {1, 256});
    v.field("ffn_dim", ffn_dim, {1, 1 << 18});
    v.field("time_scale", time_scale, {1e-3, 1e4});
    v.field("dropout", dropout, {0, 0.9});
    v.field("frame_condition", frame_condition);
    v.field("input_norm", input_norm);
  }
};

// Sinusoidal embedding of real times. t: [B, T] seconds -> [B, T, dim] (sin half, cos half).
at::Tensor time_embedding(const at::Tensor& t, int64_t dim, double scale);

// Resamples condition tokens to a regular frame grid by linear interpolation in time.
// tokens: [B, S, D] at times [B, S] (seconds, ascending over the valid entries), mask: [B, S]
// (1 = valid) -> [B, frames, D] where frame f is time f / frame_rate. Before the first valid
// token and after the last the nearest valid token is held; a row without one is zeros.
at::Tensor resample_to_frames(const at::Tensor& tokens, const at::Tensor& times, const at::Tensor& mask,
                              int64_t frames, double frame_rate);

struct MotionEncoderImpl : torch::nn::Module {
  MotionEncoderImpl(const MotionEncoderConfig& cfg, int64_t width);
  // x: [B, Tm, in_dim] -> [B, Tm, width]
  at::Tensor forward(const at::Tensor& x);

  MotionEncoderConfig cfg;
  torch::nn::LayerNorm in_norm{nullptr};
  Linear in_proj{nullptr};
  torch::nn::ModuleList blocks;  // each: Conv1d(width, width, k) applied residually with GELU
};
TORCH_MODULE(MotionEncoder);

struct FusionLayerImpl : torch::nn::Module {
  FusionLayerImpl(const FusionConfig& cfg);
  // x: [B, Tq, W] queries, kv: [B, Tk, W], kv_mask: [B, Tk] (1 = valid) -> [B, Tq, W]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& kv_mask);

  int64_t heads;
  torch::nn::LayerNorm q_norm{nullptr}, kv_norm{nullptr}, ffn_norm{nullptr};
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FusionLayer);

struct FusionOutput {
  at::Tensor memory;  // [B, Tf, d_model]
  at::Tensor mask;    // [B, Tf] int64 (1 = valid)
  at::Tensor times;   // [B, Tf] seconds of each condition token
  at::Tensor frame;   // [B, Tf, d_model] per-token frame condition (undefined: frame_condition off)
};

struct TemporalFusionImpl : torch::nn::Module {
  TemporalFusionImpl(const FusionConfig& cfg, const MotionEncoderConfig& motion_cfg, int64_t clip_dim,
                     int64_t d_model);
  // clip: [B, Tc, Dc], clip_t: [B, Tc], clip_mask: [B, Tc];
  // motion: [B, Tm, Dm], motion_t: [B, Tm], motion_mask: [B, Tm] (ignored when cfg.motion is false)
  FusionOutput forward(const at::Tensor& clip, const at::Tensor& clip_t, const at::Tensor& clip_mask,
                       const at::Tensor& motion, const at::Tensor& motion_t, const at::Tensor& motion_mask);

  FusionConfig cfg;
  Linear clip_proj{nullptr};
  MotionEncoder motion_encoder{nullptr};  // null when cfg.motion is false
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm final_norm{nullptr};
  Linear out_proj{nullptr};
  Linear frame_proj{nullptr};  // null unless cfg.frame_condition
  // cfg.input_norm: per-dimension statistics, (x - mean) / std before the projections.
  at::Tensor clip_mean, clip_std, motion_mean, motion_std;
  // Sets the input statistics from training features: clip [N, Dc], motion [N, Dm] (rows =
  // frames; motion may be undefined without motion). std is clamped to >= 1e-4 of the mean
  // spread so constant dimensions stay finite. Throws unless cfg.input_norm.
  void set_input_stats(const at::Tensor& clip, const at::Tensor& motion);
};
TORCH_MODULE(TemporalFusion);

}  // namespace v2m::nn
