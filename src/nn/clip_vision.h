// CLIP vision tower (transformers' CLIPVisionTransformer + CLIPModel.visual_projection) with
// the same module tree and parameter names, so a hub checkpoint loads by name:
//
//   vision_model.embeddings.class_embedding                      [D]
//   vision_model.embeddings.patch_embedding.weight               [D, C, P, P]   (no bias)
//   vision_model.embeddings.position_embedding.weight            [(S/P)^2 + 1, D]
//   vision_model.pre_layrnorm.{weight,bias}                      (sic, HF's spelling)
//   vision_model.encoder.layers.{l}.self_attn.{k,v,q,out}_proj.{weight,bias}
//   vision_model.encoder.layers.{l}.layer_norm1.{weight,bias}
//   vision_model.encoder.layers.{l}.mlp.fc1.{weight,bias}, mlp.fc2.{weight,bias}
//   vision_model.encoder.layers.{l}.layer_norm2.{weight,bias}
//   vision_model.post_layernorm.{weight,bias}
//   visual_projection.weight                                     [projection_dim, D] (no bias)
//
// CLIPModel and CLIPVisionModelWithProjection checkpoints both use these names. The
// `vision_model.embeddings.position_ids` buffer some exports carry is accepted and ignored
// (positions are always 0..N-1).
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <string>

#include "nn/linear.h"
#include "v2m/config.h"

namespace v2m::nn {

// Field names are CLIPVisionConfig's; defaults are openai/clip-vit-base-patch32.
struct ClipVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t projection_dim = 512;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // "quick_gelu" | "gelu"
  int64_t num_channels = 3;               // input planes (clip_preprocess produces RGB)
  void visit(ConfigVisitor& v);
  // Throws v2m::Error naming `source` for inconsistent values.
  void validate(const std::string& source) const;
};

// From a transformers config.json: a CLIPConfig (reads "vision_config" and the top-level
// "projection_dim") or a CLIPVisionConfig / CLIPVisionModelWithProjection config. Absent
// keys keep transformers' defaults (which are the B/32 values above).
ClipVisionConfig clip_vision_config_from_hf(const nlohmann::json& cfg, const std::string& source = "config.json");

struct ClipAttentionImpl : torch::nn::Module {
  ClipAttentionImpl(int64_t dim, int64_t heads);
  // x: [B, N, D] -> [B, N, D]
  at::Tensor forward(const at::Tensor& x);
  int64_t heads;
  Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

struct ClipMlpImpl : torch::nn::Module {
  ClipMlpImpl(int64_t dim, int64_t hidden, std::string act);
  // x: [B, N, D] -> [B, N, D]
  at::Tensor forward(const at::Tensor& x);
  std::string act;
  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipMlp);

struct ClipEncoderLayerImpl : torch::nn::Module {
  explicit ClipEncoderLayerImpl(const ClipVisionConfig& cfg);
  // x: [B, N, D] -> [B, N, D]  (pre-norm residual blocks)
  at::Tensor forward(const at::Tensor& x);
  ClipAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

struct ClipVisionEmbeddingsImpl : torch::nn::Module {
  explicit ClipVisionEmbeddingsImpl(const ClipVisionConfig& cfg);
  // pixels: [B, 3, S, S] -> [B, (S/P)^2 + 1, D]  (class token first)
  at::Tensor forward(const at::Tensor& pixels);
  at::Tensor class_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipVisionEmbeddings);

struct ClipEncoderImpl : torch::nn::Module {
  explicit ClipEncoderImpl(const ClipVisionConfig& cfg);
  torch::nn::ModuleList layers;
};
TORCH_MODULE(ClipEncoder);

// transformers' CLIPVisionTransformer (`vision_model`).
struct ClipVisionTransformerImpl : torch::nn::Module {
  explicit ClipVisionTransformerImpl(const ClipVisionConfig& cfg);
  // pixels: [B, 3, S, S] -> last hidden state [B, N, D] (before post_layernorm)
  at::Tensor forward(const at::Tensor& pixels);
  ClipVisionEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr};
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(ClipVisionTransformer);

// The vision half of CLIPModel: vision_model + visual_projection.
struct ClipVisionImpl : torch::nn::Module {
  explicit ClipVisionImpl(const ClipVisionConfig& cfg);
  // pixels: [T, C, S, S] (CLIP-normalised) -> image_embeds [T, projection_dim]
  // (= CLIPModel.get_image_features: projected, not L2-normalised)
  at::Tensor forward(const at::Tensor& pixels);
  // pixels: [T, C, S, S] -> pooled output [T, hidden_size] (post_layernorm of the class token)
  at::Tensor pooled(const at::Tensor& pixels);

  ClipVisionConfig cfg;
  ClipVisionTransformer vision_model{nullptr};
  Linear visual_projection{nullptr};
};
TORCH_MODULE(ClipVision);
using ClipVisionModel = ClipVision;
using ClipVisionModelImpl = ClipVisionImpl;

// Loads `dir`/config.json + `dir`/model.safetensors (CLIPModel or CLIPVisionModelWithProjection).
// Strict: a missing tensor or a shape mismatch throws v2m::Error naming the tensor and both
// shapes; a vision tensor the config does not account for (e.g. more layers in the file than
// num_hidden_layers) is an error too. text_model.*, text_projection and logit_scale are ignored.
// The module is returned in eval mode.
ClipVision load_clip_vision(const std::string& dir);

// CLIPImageProcessor on one image: uint8 RGB, HWC, `height` x `width`, rows `row_stride`
// bytes apart (0: width * 3). Bicubic resize of the short side to `image_size` (long side
// int(image_size * long / short), as transformers), values rounded to uint8 like PIL, center
// crop image_size x image_size, x / 255, then CLIP mean/std. -> float [3, image_size, image_size]
//
// transformers resizes with PIL's antialiased bicubic (a = -0.5, fixed point on uint8); this
// uses at::_upsample_bicubic2d_aa (the same filter, computed in float), so pixels can differ by
// one uint8 level after rounding (|diff| <= ~0.015 after normalisation); CLIP features move far
// less than the parity tolerance would notice.
at::Tensor clip_preprocess(const uint8_t* rgb, int height, int width, int image_size = 224, int64_t row_stride = 0);

}  // namespace v2m::nn
