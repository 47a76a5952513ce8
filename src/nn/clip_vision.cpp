#include "nn/hf_json.h"
#include "nn/clip_vision.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <set>

#include "nn/compat.h"
#include "nn/state_dict.h"
#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m::nn {

// ---------------------------------------------------------------------------------------------
// config

void ClipVisionConfig::visit(ConfigVisitor& v) {
  v.field("hidden_size", hidden_size, {1, 1 << 16});
  v.field("intermediate_size", intermediate_size, {1, 1 << 18});
  v.field("num_hidden_layers", num_hidden_layers, {1, 256});
  v.field("num_attention_heads", num_attention_heads, {1, 256});
  v.field("image_size", image_size, {1, 4096});
  v.field("patch_size", patch_size, {1, 4096});
  v.field("projection_dim", projection_dim, {1, 1 << 16});
  v.field("layer_norm_eps", layer_norm_eps, {0.0, 1.0});
  v.field("hidden_act", hidden_act, {"quick_gelu", "gelu"});
  v.field("num_channels", num_channels, {1, 64});
}

void ClipVisionConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& why) { throw Error(describe("bad clip vision config", source, why)); };
  if (hidden_size < 1 || intermediate_size < 1 || num_hidden_layers < 1 || num_attention_heads < 1 || image_size < 1 ||
      patch_size < 1 || projection_dim < 1 || num_channels < 1)
    fail("sizes must be positive");
  if (hidden_size % num_attention_heads)
    fail("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
         std::to_string(num_attention_heads));
  if (image_size % patch_size)
    fail("image_size " + std::to_string(image_size) + " is not a multiple of patch_size " + std::to_string(patch_size));
  if (hidden_act != "quick_gelu" && hidden_act != "gelu")
    fail("unsupported hidden_act '" + hidden_act + "' (quick_gelu or gelu)");
}

namespace {

template <class T>
void read(const nlohmann::json& j, const char* key, T& out, const std::string& source, const std::string& where) {
  read_hf(j, key, out, "bad clip config", source, where);
}

}  // namespace

ClipVisionConfig clip_vision_config_from_hf(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(describe("bad clip config", source, "not a JSON object"));
  const bool full = j.contains("vision_config") && j["vision_config"].is_object();
  const nlohmann::json& v = full ? j["vision_config"] : j;
  const std::string where = full ? "vision_config." : "";
  ClipVisionConfig c;
  read(v, "hidden_size", c.hidden_size, source, where);
  read(v, "intermediate_size", c.intermediate_size, source, where);
  read(v, "num_hidden_layers", c.num_hidden_layers, source, where);
  read(v, "num_attention_heads", c.num_attention_heads, source, where);
  read(v, "image_size", c.image_size, source, where);
  read(v, "patch_size", c.patch_size, source, where);
  read(v, "layer_norm_eps", c.layer_norm_eps, source, where);
  read(v, "hidden_act", c.hidden_act, source, where);
  read(v, "num_channels", c.num_channels, source, where);
  // CLIPModel's visual_projection uses the top-level projection_dim; a vision-only config
  // (CLIPVisionModelWithProjection) carries its own.
  read(v, "projection_dim", c.projection_dim, source, where);
  if (full) read(j, "projection_dim", c.projection_dim, source, "");
  c.validate(source);
  return c;
}

// ---------------------------------------------------------------------------------------------
// modules

ClipAttentionImpl::ClipAttentionImpl(int64_t dim, int64_t h) : heads(h) {
  k_proj = register_module("k_proj", Linear(dim, dim));
  v_proj = register_module("v_proj", Linear(dim, dim));
  q_proj = register_module("q_proj", Linear(dim, dim));
  out_proj = register_module("out_proj", Linear(dim, dim));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), Dh = D / heads;
  auto split = [&](const at::Tensor& t) { return t.view({B, N, heads, Dh}).transpose(1, 2); };
  // transformers scales q before the product; attention() scales the scores: same math.
  at::Tensor o = attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), {}, /*causal=*/false);
  return out_proj(o.transpose(1, 2).reshape({B, N, D}));
}

ClipMlpImpl::ClipMlpImpl(int64_t dim, int64_t hidden, std::string a) : act(std::move(a)) {
  fc1 = register_module("fc1", Linear(dim, hidden));
  fc2 = register_module("fc2", Linear(hidden, dim));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = fc1(x);
  // quick_gelu is transformers' QuickGELUActivation: x * sigmoid(1.702 x); gelu is exact (erf).
  h = act == "quick_gelu" ? h * at::sigmoid(h * 1.702) : at::gelu(h);
  return fc2(h);
}

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipVisionConfig& cfg) {
  const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
  self_attn = register_module("self_attn", ClipAttention(cfg.hidden_size, cfg.num_attention_heads));
  layer_norm1 = register_module("layer_norm1", torch::nn::LayerNorm(ln));
  mlp = register_module("mlp", ClipMlp(cfg.hidden_size, cfg.intermediate_size, cfg.hidden_act));
  layer_norm2 = register_module("layer_norm2", torch::nn::LayerNorm(ln));
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& x) {
  at::Tensor h = x + self_attn(layer_norm1(x));
  return h + mlp(layer_norm2(h));
}

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(const ClipVisionConfig& cfg) {
  const int64_t D = cfg.hidden_size, P = cfg.patch_size, g = cfg.image_size / cfg.patch_size;
  // transformers' init: class token ~ N(0, D^-1/2), positions ~ N(0, 0.02).
  class_embedding = register_parameter("class_embedding", at::randn({D}) * (1.0 / std::sqrt(static_cast<double>(D))));
  patch_embedding =
      register_module("patch_embedding",
                      torch::nn::Conv2d(torch::nn::Conv2dOptions(cfg.num_channels, D, P).stride(P).bias(false)));
  position_embedding = register_module("position_embedding", torch::nn::Embedding(g * g + 1, D));
  {
    at::NoGradGuard ng;
    position_embedding->weight.normal_(0.0, 0.02);
  }
}

at::Tensor ClipVisionEmbeddingsImpl::forward(const at::Tensor& pixels) {
  const int64_t B = pixels.size(0);
  at::Tensor patches = patch_embedding(pixels.to(patch_embedding->weight.scalar_type())).flatten(2).transpose(1, 2);
  at::Tensor cls = class_embedding.view({1, 1, -1}).expand({B, 1, class_embedding.size(0)});
  return at::cat({cls, patches}, 1) + position_embedding->weight.unsqueeze(0);
}

ClipEncoderImpl::ClipEncoderImpl(const ClipVisionConfig& cfg) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) layers->push_back(ClipEncoderLayer(cfg));
}

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const ClipVisionConfig& cfg) {
  const auto ln = torch::nn::LayerNormOptions({cfg.hidden_size}).eps(cfg.layer_norm_eps);
  embeddings = register_module("embeddings", ClipVisionEmbeddings(cfg));
  pre_layrnorm = register_module("pre_layrnorm", torch::nn::LayerNorm(ln));
  encoder = register_module("encoder", ClipEncoder(cfg));
  post_layernorm = register_module("post_layernorm", torch::nn::LayerNorm(ln));
}

at::Tensor ClipVisionTransformerImpl::forward(const at::Tensor& pixels) {
  at::Tensor h = pre_layrnorm(embeddings(pixels));
  for (const auto& layer : *encoder->layers) h = layer->as<ClipEncoderLayer>()->forward(h);
  return h;
}

ClipVisionImpl::ClipVisionImpl(const ClipVisionConfig& c) : cfg(c) {
  cfg.validate("clip vision config");
  vision_model = register_module("vision_model", ClipVisionTransformer(cfg));
  const auto proj = torch::nn::LinearOptions(cfg.hidden_size, cfg.projection_dim).bias(false);
  visual_projection = register_module("visual_projection", Linear(proj));
}

at::Tensor ClipVisionImpl::pooled(const at::Tensor& pixels) {
  if (pixels.dim() != 4 || pixels.size(1) != cfg.num_channels || pixels.size(2) != cfg.image_size ||
      pixels.size(3) != cfg.image_size)
    throw Error(describe("clip vision", "pixels",
                         "expected [T, " + std::to_string(cfg.num_channels) + ", " + std::to_string(cfg.image_size) +
                             ", " + std::to_string(cfg.image_size) + "], got " + c10::str(pixels.sizes())));
  // CLIPVisionTransformer's pooler_output: post_layernorm of the class token only.
  return vision_model->post_layernorm(vision_model->forward(pixels).select(1, 0));
}

at::Tensor ClipVisionImpl::forward(const at::Tensor& pixels) { return visual_projection(pooled(pixels)); }

// ---------------------------------------------------------------------------------------------
// loading

ClipVision load_clip_vision(const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  const std::string w_path = dir + "/model.safetensors";
  ClipVisionConfig cfg = clip_vision_config_from_hf(read_json_file(cfg_path), cfg_path);
  require_regular_file(w_path, "cannot load clip weights");
  ClipVision m(cfg);
  TensorMap tensors = load_safetensors(w_path);
  auto used = load_into(*m, tensors, "", w_path);
  const std::set<std::string> used_set(used.begin(), used.end());
  for (const auto& [k, t] : tensors) {
    const bool vision = k.rfind("vision_model.", 0) == 0 || k.rfind("visual_projection.", 0) == 0;
    if (vision && !used_set.count(k) && k != "vision_model.embeddings.position_ids")
      throw Error(describe("clip weights do not match the config", w_path,
                           "tensor '" + k + "' " + c10::str(t.sizes()) + " is not part of the model described by " +
                               cfg_path));
  }
  m->eval();
  return m;
}

// ---------------------------------------------------------------------------------------------
// preprocessing

at::Tensor clip_preprocess(const uint8_t* rgb, int height, int width, int image_size, int64_t row_stride) {
  if (!rgb || height < 1 || width < 1 || image_size < 1)
    throw Error(describe("clip preprocess", "image", "empty image or bad size " + std::to_string(height) + "x" +
                                                         std::to_string(width)));
  if (row_stride == 0) row_stride = static_cast<int64_t>(width) * 3;
  at::Tensor img = at::from_blob(const_cast<uint8_t*>(rgb), {height, width, 3}, {row_stride, 3, 1}, at::kByte);
  at::Tensor x = img.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);  // [1, 3, H, W]
  // transformers' get_resize_output_image_size(default_to_square=False): short side ->
  // image_size, long side -> int(image_size * long / short).
  const bool h_short = height <= width;
  const int64_t s = h_short ? height : width, l = h_short ? width : height;
  const int64_t nl =
      static_cast<int64_t>(static_cast<double>(image_size) * static_cast<double>(l) / static_cast<double>(s));
  const int64_t nh = h_short ? image_size : nl, nw = h_short ? nl : image_size;
  if (nh != height || nw != width)
    x = at::_upsample_bicubic2d_aa(x, {nh, nw}, /*align_corners=*/false, c10::nullopt, c10::nullopt);
  x = x.round().clamp(0, 255);  // PIL returns uint8
  // transformers' center_crop: top = (h - crop) // 2, left = (w - crop) // 2.
  const int64_t top = (nh - image_size) / 2, left = (nw - image_size) / 2;
  x = x.slice(2, top, top + image_size).slice(3, left, left + image_size);
  const at::Tensor mean = at::tensor({0.48145466f, 0.4578275f, 0.40821073f}).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.26862954f, 0.26130258f, 0.27577711f}).view({1, 3, 1, 1});
  return ((x * (1.0 / 255.0) - mean) / std).squeeze(0).contiguous();
}

}  // namespace v2m::nn
