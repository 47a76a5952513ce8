#include "nn/fusion.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/dropout.h>

#include <cmath>

#include "nn/compat.h"
#include "v2m/error.h"

namespace v2m::nn {

namespace F = torch::nn::functional;

at::Tensor time_embedding(const at::Tensor& t, int64_t dim, double scale) {
  // Same frequencies as the transformer's sinusoids (1 / 10000^(2i/dim)), but evaluated at
  // real time * scale instead of integer positions.
  const int64_t half = dim / 2;
  auto freqs = at::exp(at::arange(half, t.options().dtype(at::kFloat)) * (-std::log(10000.0) / std::max<int64_t>(half - 1, 1)));
  auto args = (t.to(at::kFloat) * scale).unsqueeze(-1) * freqs;  // [B, T, half]
  auto emb = at::cat({at::sin(args), at::cos(args)}, -1);
  if (dim % 2) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

MotionEncoderImpl::MotionEncoderImpl(const MotionEncoderConfig& c, int64_t width) : cfg(c) {
  if (cfg.kernel_size % 2 == 0) throw Error("motion.kernel_size must be odd, got " + std::to_string(cfg.kernel_size));
  in_norm = register_module("in_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.in_dim})));
  in_proj = register_module("in_proj", Linear(cfg.in_dim, width));
  for (int64_t i = 0; i < cfg.layers; ++i)
    blocks->push_back(torch::nn::Conv1d(
        torch::nn::Conv1dOptions(width, width, cfg.kernel_size).padding(cfg.kernel_size / 2)));
  register_module("blocks", blocks);
}

at::Tensor MotionEncoderImpl::forward(const at::Tensor& x) {
  // Descriptors mix histogram mass, pixel velocities and a cut flag: normalise first.
  at::Tensor h = in_proj->forward(in_norm->forward(x));  // [B, Tm, W]
  // Temporal "same" convolutions as unfold + matmul in [B, T, W] layout (the parameters
  // keep Conv1d's [out, in, k] shape). Not at::conv1d: LibTorch 1.13's CPU conv1d backward
  // returns wrong gradients (zeros, or values ~1e18 depending on the thread count) when its
  // input or output gradient is a transposed view, which the [B, T, W] <-> [B, W, T] round
  // trip produces.
  const int64_t B = h.size(0), T = h.size(1), W = h.size(2), k = cfg.kernel_size;
  for (const auto& m : *blocks) {
    auto conv = m->as<torch::nn::Conv1d>();
    at::Tensor padded = at::constant_pad_nd(h, {0, 0, k / 2, k - 1 - k / 2});  // [B, T + k - 1, W]
    at::Tensor win = padded.unfold(1, k, 1).reshape({B, T, W * k});             // [B, T, W * k] (in, k order)
    at::Tensor y = at::linear(win, conv->weight.reshape({conv->weight.size(0), W * k}), conv->bias);
    h = h + F::gelu(y);
  }
  return h;
}

FusionLayerImpl::FusionLayerImpl(const FusionConfig& c) : heads(c.heads) {
  if (c.width % c.heads) throw Error("fusion.width " + std::to_string(c.width) + " is not divisible by fusion.heads " + std::to_string(c.heads));
  const int64_t w = c.width;
  q_norm = register_module("q_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
  kv_norm = register_module("kv_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
  q_proj = register_module("q_proj", Linear(w, w));
  k_proj = register_module("k_proj", Linear(w, w));
  v_proj = register_module("v_proj", Linear(w, w));
  out_proj = register_module("out_proj", Linear(w, w));
  ffn_norm = register_module("ffn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
  fc1 = register_module("fc1", Linear(w, c.ffn_dim));
  fc2 = register_module("fc2", Linear(c.ffn_dim, w));
}

at::Tensor FusionLayerImpl::forward(const at::Tensor& x, const at::Tensor& kv, const at::Tensor& kv_mask) {
  const int64_t B = x.size(0), Tq = x.size(1), Tk = kv.size(1), W = x.size(2), Dh = W / heads;
  auto split = [&](const at::Tensor& t, int64_t T) { return t.view({B, T, heads, Dh}).transpose(1, 2); };
  at::Tensor q = split(q_proj->forward(q_norm->forward(x)), Tq);
  at::Tensor kvn = kv_norm->forward(kv);
  at::Tensor k = split(k_proj->forward(kvn), Tk);
  at::Tensor v = split(v_proj->forward(kvn), Tk);
  // Additive mask over keys: a large negative (not -inf) keeps fully masked rows finite.
  at::Tensor add = (1.0 - kv_mask.to(q.scalar_type())).mul(-1e9).view({B, 1, 1, Tk});
  at::Tensor a = attention(q, k, v, add, /*causal=*/false).transpose(1, 2).reshape({B, Tq, W});
  at::Tensor h = x + out_proj->forward(a);
  return h + fc2->forward(F::gelu(fc1->forward(ffn_norm->forward(h))));
}

TemporalFusionImpl::TemporalFusionImpl(const FusionConfig& c, const MotionEncoderConfig& mc, int64_t clip_dim,
                                       int64_t d_model)
    : cfg(c) {
  clip_proj = register_module("clip_proj", Linear(clip_dim, c.width));
  if (c.motion) motion_encoder = register_module("motion_encoder", MotionEncoder(mc, c.width));
  for (int64_t i = 0; i < c.layers; ++i) layers->push_back(FusionLayer(c));
  register_module("layers", layers);
  final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.width})));
  out_proj = register_module("out_proj", Linear(c.width, d_model));
  if (c.frame_condition) frame_proj = register_module("frame_proj", Linear(c.width, d_model));
  if (c.input_norm) {
    clip_mean = register_buffer("input_norm_clip_mean", at::zeros({clip_dim}));
    clip_std = register_buffer("input_norm_clip_std", at::ones({clip_dim}));
    if (c.motion) {
      motion_mean = register_buffer("input_norm_motion_mean", at::zeros({mc.in_dim}));
      motion_std = register_buffer("input_norm_motion_std", at::ones({mc.in_dim}));
    }
  }
}

void TemporalFusionImpl::set_input_stats(const at::Tensor& clip, const at::Tensor& motion) {
  if (!cfg.input_norm) throw Error("set_input_stats: fusion.input_norm is off");
  at::NoGradGuard ng;
  auto set = [](const at::Tensor& x, at::Tensor& mean, at::Tensor& std, const char* what) {
    if (x.dim() != 2 || x.size(1) != mean.size(0) || x.size(0) < 2)
      throw Error(std::string("set_input_stats: ") + what + " features must be [N >= 2, " +
                  std::to_string(mean.size(0)) + "], got " + c10::str(x.sizes()));
    const at::Tensor xf = x.to(at::kDouble);
    const at::Tensor sd = xf.std(0);
    mean.copy_(xf.mean(0));
    std.copy_(sd.clamp_min(std::max(1e-12, 1e-4 * sd.mean().item<double>())));
  };
  set(clip, clip_mean, clip_std, "clip");
  if (cfg.motion) {
    if (!motion.defined()) throw Error("set_input_stats: motion features are missing");
    set(motion, motion_mean, motion_std, "motion");
  }
}

FusionOutput TemporalFusionImpl::forward(const at::Tensor& clip, const at::Tensor& clip_t, const at::Tensor& clip_mask,
                                         const at::Tensor& motion, const at::Tensor& motion_t,
                                         const at::Tensor& motion_mask) {
  const int64_t W = cfg.width;
  auto standardise = [](const at::Tensor& x, const at::Tensor& mean, const at::Tensor& std) {
    return mean.defined() ? (x - mean.to(x.scalar_type())) / std.to(x.scalar_type()) : x;
  };
  at::Tensor kv = clip_proj->forward(standardise(clip, clip_mean, clip_std)) + time_embedding(clip_t, W, cfg.time_scale).to(clip.scalar_type());
  if (is_training() && cfg.dropout > 0) kv = F::dropout(kv, F::DropoutFuncOptions().p(cfg.dropout).training(true));
  at::Tensor x, x_mask, x_t;
  if (cfg.motion) {
    // Motion tokens are the queries: the condition runs at the motion rate and each token
    // gathers the scene semantics of the CLIP frames around (and before/after) its time.
    x = motion_encoder->forward(standardise(motion, motion_mean, motion_std)) + time_embedding(motion_t, W, cfg.time_scale).to(motion.scalar_type());
    x_mask = motion_mask;
    x_t = motion_t;
  } else {
    // Ablation: CLIP tokens attend over themselves; everything else is unchanged.
    x = kv;
    x_mask = clip_mask;
    x_t = clip_t;
  }
  for (const auto& m : *layers) x = m->as<FusionLayer>()->forward(x, kv, clip_mask);
  at::Tensor xn = final_norm->forward(x);
  // Padded query positions carry no condition.
  at::Tensor valid = x_mask.to(xn.scalar_type()).unsqueeze(-1);
  FusionOutput out{out_proj->forward(xn) * valid, x_mask.to(at::kLong), x_t, {}};
  if (frame_proj) out.frame = frame_proj->forward(xn) * valid;
  return out;
}

at::Tensor resample_to_frames(const at::Tensor& tokens, const at::Tensor& times, const at::Tensor& mask,
                              int64_t frames, double frame_rate) {
  if (tokens.dim() != 3 || times.sizes() != tokens.sizes().slice(0, 2) || mask.sizes() != times.sizes())
    throw Error("resample_to_frames: expected tokens [B, S, D] with times and mask [B, S], got " +
                std::string(c10::str(tokens.sizes())) + ", " + c10::str(times.sizes()) + ", " +
                c10::str(mask.sizes()));
  const int64_t B = tokens.size(0);
  const auto fopt = times.options().dtype(at::kFloat);
  at::Tensor valid = mask.to(at::kBool);
  // Invalid tokens move past every frame so the valid ones stay sorted at the front.
  at::Tensor t = at::where(valid, times.to(at::kFloat), at::full({}, 1e30, fopt));
  at::Tensor n_valid = valid.sum(1, /*keepdim=*/true);                        // [B, 1]
  at::Tensor grid = (at::arange(frames, fopt) / frame_rate).expand({B, frames}).contiguous();
  at::Tensor hi = at::searchsorted(t.contiguous(), grid);                       // first token after the frame
  at::Tensor last = (n_valid - 1).clamp_min(0);
  hi = at::minimum(hi, last);
  at::Tensor lo = at::maximum(hi - 1, at::zeros_like(hi));
  at::Tensor t_lo = t.gather(1, lo), t_hi = t.gather(1, hi);
  // Weight of `hi`; lo == hi before the first token, and past the last the clamp holds it.
  at::Tensor span = (t_hi - t_lo).clamp_min(1e-9);
  at::Tensor w = ((grid - t_lo) / span).clamp(0.0, 1.0);
  w = at::where(lo.eq(hi), at::ones_like(w), w).to(tokens.scalar_type()).unsqueeze(-1);
  const int64_t D = tokens.size(2);
  auto pick = [&](const at::Tensor& idx) { return tokens.gather(1, idx.unsqueeze(-1).expand({B, frames, D})); };
  at::Tensor out = pick(lo) * (1 - w) + pick(hi) * w;
  return out * n_valid.gt(0).to(out.scalar_type()).unsqueeze(-1);
}

}  // namespace v2m::nn
