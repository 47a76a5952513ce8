#include "nn/hf_json.h"
#include "nn/musicgen_decoder.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/embedding.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <cstring>
#include <limits>

#include "nn/compat.h"
#include "nn/cpu_kernels.h"
#include "nn/delay_pattern.h"
#include "nn/state_dict.h"
#include "v2m/error.h"

namespace v2m::nn {

// ---------------------------------------------------------------------------------------------
// config

void MusicgenDecoderConfig::visit(ConfigVisitor& v) {
  v.field("vocab_size", vocab_size, {1, 1 << 20});
  v.field("max_position_embeddings", max_position_embeddings, {1, 1 << 24});
  v.field("num_hidden_layers", num_hidden_layers, {1, 1024});
  v.field("ffn_dim", ffn_dim, {1, 1 << 20});
  v.field("num_attention_heads", num_attention_heads, {1, 1024});
  v.field("hidden_size", hidden_size, {1, 1 << 20});
  v.field("num_codebooks", num_codebooks, {1, 64});
  v.field("activation_function", activation_function, {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"});
  v.field("layer_norm_eps", layer_norm_eps, {0.0, 1.0});
  v.field("scale_embedding", scale_embedding);
  v.field("audio_channels", audio_channels, {1, 2});
  v.field("pad_token_id", pad_token_id, {0, 1 << 20});
  v.field("bos_token_id", bos_token_id, {0, 1 << 20});
  v.field("encoder_hidden_size", encoder_hidden_size, {1, 1 << 20});
}

void MusicgenDecoderConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& why) { throw Error(describe("bad musicgen config", source, why)); };
  if (vocab_size < 1 || hidden_size < 1 || num_hidden_layers < 1 || ffn_dim < 1 || num_codebooks < 1 ||
      num_attention_heads < 1 || max_position_embeddings < 1)
    fail("sizes must be positive");
  if (hidden_size % num_attention_heads)
    fail("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
         std::to_string(num_attention_heads));
  if (audio_channels != 1 && audio_channels != 2) fail("audio_channels must be 1 or 2");
  if (audio_channels == 2 && num_codebooks % 2) fail("stereo needs an even num_codebooks");
  if (pad_token_id < 0 || pad_token_id > vocab_size || bos_token_id < 0 || bos_token_id > vocab_size)
    fail("pad/bos token ids must lie in [0, vocab_size]");
  static const char* acts[] = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish"};
  if (std::find(std::begin(acts), std::end(acts), activation_function) == std::end(acts))
    fail("unsupported activation_function '" + activation_function + "'");
}

namespace {

template <class T>
void read(const nlohmann::json& j, const char* key, T& out, const std::string& source, const std::string& where) {
  read_hf(j, key, out, "bad musicgen config", source, where);
}

}  // namespace

MusicgenDecoderConfig musicgen_decoder_config_from_hf(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(describe("bad musicgen config", source, "not a JSON object"));
  const bool composite = j.contains("decoder") && j["decoder"].is_object();
  const nlohmann::json& d = composite ? j["decoder"] : j;
  const std::string where = composite ? "decoder." : "";
  MusicgenDecoderConfig c;
  read(d, "vocab_size", c.vocab_size, source, where);
  read(d, "max_position_embeddings", c.max_position_embeddings, source, where);
  read(d, "num_hidden_layers", c.num_hidden_layers, source, where);
  read(d, "ffn_dim", c.ffn_dim, source, where);
  read(d, "num_attention_heads", c.num_attention_heads, source, where);
  read(d, "hidden_size", c.hidden_size, source, where);
  read(d, "num_codebooks", c.num_codebooks, source, where);
  read(d, "activation_function", c.activation_function, source, where);
  read(d, "layer_norm_eps", c.layer_norm_eps, source, where);
  read(d, "scale_embedding", c.scale_embedding, source, where);
  read(d, "audio_channels", c.audio_channels, source, where);
  read(d, "pad_token_id", c.pad_token_id, source, where);
  read(d, "bos_token_id", c.bos_token_id, source, where);
  // enc_to_dec_proj in_features: the text encoder's width (T5Config's hidden_size is d_model).
  if (composite && j.contains("text_encoder") && j["text_encoder"].is_object()) {
    const auto& t = j["text_encoder"];
    int64_t text = 0;
    read(t, "hidden_size", text, source, "text_encoder.");
    read(t, "d_model", text, source, "text_encoder.");
    if (text > 0) c.encoder_hidden_size = text;
  }
  c.validate(source);
  return c;
}

MusicgenDecoderConfig musicgen_decoder_config_from_hf_file(const std::string& path) {
  return musicgen_decoder_config_from_hf(read_json_file(path), path);
}

int64_t musicgen_decoder_parameter_count(const MusicgenDecoderConfig& c) {
  const int64_t D = c.hidden_size, F = c.ffn_dim, V = c.vocab_size, K = c.num_codebooks;
  const int64_t per_layer = 8 * D * D + 2 * D * F + 3 * 2 * D;  // 2 x 4 attn projections, fc1/fc2, 3 LNs
  return K * (V + 1) * D + c.num_hidden_layers * per_layer + 2 * D + K * V * D;
}

// ---------------------------------------------------------------------------------------------
// modules

namespace {

Linear linear(int64_t in, int64_t out, bool bias) {
  return Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

torch::nn::LayerNorm make_layer_norm(const MusicgenDecoderConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}

}  // namespace

bool musicgen_converted_weight(const std::string& name) {
  auto ends = [&](const std::string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (name.rfind("lm_heads.", 0) == 0) return ends(".weight");
  if (name.rfind("model.decoder.layers.", 0) != 0) return false;
  return ends("_proj.weight") || ends(".fc1.weight") || ends(".fc2.weight");
}

at::Tensor musicgen_sinusoids(int64_t n, int64_t dim) {
  // Same float32 ops as transformers (the table is compared against it to 1e-4).
  const int64_t half = dim / 2;
  const double step = half > 1 ? std::log(10000.0) / static_cast<double>(half - 1) : 0.0;
  at::Tensor freq = at::exp(at::arange(half, at::kLong).to(at::kFloat) * (-step));
  at::Tensor arg = at::arange(n, at::kLong).to(at::kFloat).unsqueeze(1) * freq.unsqueeze(0);
  at::Tensor emb = at::cat({at::cos(arg), at::sin(arg)}, 1);
  if (dim % 2) emb = at::cat({emb, at::zeros({n, 1})}, 1);
  return emb;
}

namespace {

// [B, S] bool/0-1 -> additive [B, 1, 1, S]: 0 where valid, the dtype's lowest value where not
// (transformers' _prepare_4d_attention_mask). A fully masked row stays finite and attends
// uniformly, which is what the null condition of classifier-free guidance relies on.
at::Tensor additive_mask(const at::Tensor& mask, const at::Tensor& memory) {
  if (!mask.defined()) return {};
  if (mask.dim() != 2 || mask.size(0) != memory.size(0) || mask.size(1) != memory.size(1))
    throw Error(describe("bad input", "memory_mask", "expected [B, S] = [" + std::to_string(memory.size(0)) + ", " +
                                                         std::to_string(memory.size(1)) + "]"));
  const auto dt = memory.scalar_type();
  double lowest = std::numeric_limits<float>::lowest();
  if (dt == at::kDouble) lowest = std::numeric_limits<double>::lowest();
  if (dt == at::kHalf) lowest = static_cast<double>(std::numeric_limits<c10::Half>::lowest());
  if (dt == at::kBFloat16) lowest = static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
  at::Tensor inv = 1 - mask.to(memory.device(), dt);
  return inv.masked_fill(inv.to(at::kBool), lowest).view({mask.size(0), 1, 1, mask.size(1)});
}

at::Tensor activate(const std::string& act, const at::Tensor& x) {
  if (act == "gelu") return at::gelu(x);
  if (act == "gelu_new" || act == "gelu_pytorch_tanh") return at::gelu(x, "tanh");
  if (act == "relu") return at::relu(x);
  return at::silu(x);
}

// The same in place, on a buffer of the fused step.
void activate_(const std::string& act, at::Tensor x) {
  if (act == "gelu") at::gelu_out(x, x);
  else if (act == "gelu_new" || act == "gelu_pytorch_tanh") at::gelu_out(x, x, "tanh");
  else if (act == "relu") at::relu_(x);
  else at::silu_(x);
}

// A projection of the fused step: its converted kernel's weights, or the plain fp32 weight.
MatvecView view_of(const std::shared_ptr<LinearKernel>& k, const Linear& lin) {
  return k ? k->matvec_view() : matvec_view(lin->weight);
}
bool has_raw(const std::shared_ptr<LinearKernel>& k, const Linear& lin) { return view_of(k, lin).w != nullptr; }
void project_raw(const std::shared_ptr<LinearKernel>& k, const Linear& lin, const float* x, int64_t rows, float* y) {
  const MatvecView v = view_of(k, lin);
  matvec_group(&v, 1, x, rows, &y);
}

void layer_norm_raw(const torch::nn::LayerNorm& ln, const float* x, int64_t rows, float* y) {
  const int64_t n = ln->weight.size(0);
  kernels::layer_norm_rows(x, rows, n, ln->weight.data_ptr<float>(), ln->bias.data_ptr<float>(), ln->options.eps(), y);
}

// Writes this step's K or V rows [B, H Dh] into the cache [B, H, capacity, Dh] at `pos`.
void write_cache_rows(const float* src, at::Tensor& cache, int64_t pos) {
  const int64_t B = cache.size(0), H = cache.size(1), cap = cache.size(2), Dh = cache.size(3);
  const bool bf16 = cache.scalar_type() == at::kBFloat16;
  char* base = static_cast<char*>(cache.data_ptr());
  const int64_t elem = bf16 ? 2 : 4;
  for (int64_t bh = 0; bh < B * H; ++bh) {
    char* dst = base + ((bh * cap + pos) * Dh) * elem;
    const float* row = src + bh * Dh;  // [B, H Dh] = [B H, Dh]
    if (bf16)
      kernels::round_to_bf16(row, Dh, reinterpret_cast<uint16_t*>(dst));
    else
      std::memcpy(dst, row, static_cast<size_t>(Dh) * 4);
  }
}

}  // namespace

MusicgenAttentionImpl::MusicgenAttentionImpl(int64_t dim, int64_t h) : heads(h) {
  k_proj = register_module("k_proj", linear(dim, dim, false));
  v_proj = register_module("v_proj", linear(dim, dim, false));
  q_proj = register_module("q_proj", linear(dim, dim, false));
  out_proj = register_module("out_proj", linear(dim, dim, false));
}

at::Tensor MusicgenAttentionImpl::project(const Linear& proj, const at::Tensor& x) const {
  const LinearKernel* k = proj.get() == q_proj.get()     ? q_kernel.get()
                          : proj.get() == k_proj.get()   ? k_kernel.get()
                          : proj.get() == v_proj.get()   ? v_kernel.get()
                          : proj.get() == out_proj.get() ? out_kernel.get()
                                                         : nullptr;
  return k ? k->forward(x) : linear_small(x, proj->weight);
}

at::Tensor MusicgenAttentionImpl::heads_of(const Linear& proj, const at::Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1), D = proj->weight.size(0);
  return project(proj, x).view({B, T, heads, D / heads}).transpose(1, 2);
}

at::Tensor MusicgenAttentionImpl::attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                         const at::Tensor& mask, bool causal) {
  at::Tensor o = attention(q, k, v, mask, causal);  // [B, H, Tq, Dh]
  const int64_t B = o.size(0), T = o.size(2);
  return project(out_proj, o.transpose(1, 2).reshape({B, T, -1}));
}

MusicgenDecoderLayerImpl::MusicgenDecoderLayerImpl(const MusicgenDecoderConfig& c) : activation(c.activation_function) {
  const int64_t D = c.hidden_size;
  self_attn = register_module("self_attn", MusicgenAttention(D, c.num_attention_heads));
  self_attn_layer_norm = register_module("self_attn_layer_norm", make_layer_norm(c));
  encoder_attn = register_module("encoder_attn", MusicgenAttention(D, c.num_attention_heads));
  encoder_attn_layer_norm = register_module("encoder_attn_layer_norm", make_layer_norm(c));
  fc1 = register_module("fc1", linear(D, c.ffn_dim, false));
  fc2 = register_module("fc2", linear(c.ffn_dim, D, false));
  final_layer_norm = register_module("final_layer_norm", make_layer_norm(c));
}

at::Tensor MusicgenDecoderLayerImpl::forward(const at::Tensor& x_in, KVCache* cache, int64_t layer,
                                             const at::Tensor& cross_k, const at::Tensor& cross_v,
                                             const at::Tensor& cross_mask) {
  // Pre-LN blocks as MusicgenDecoderLayer: self-attn, cross-attn, FFN, each residual.
  const int64_t T = x_in.size(1);
  at::Tensor h = self_attn_layer_norm->forward(x_in);
  at::Tensor q = self_attn->heads_of(self_attn->q_proj, h);
  at::Tensor k = self_attn->heads_of(self_attn->k_proj, h);
  at::Tensor v = self_attn->heads_of(self_attn->v_proj, h);
  if (cache) {
    // In place at the current position: no per-step concatenation or reallocation.
    const int64_t pos = cache->pos;
    cache->self_k[layer].narrow(2, pos, T).copy_(k);
    cache->self_v[layer].narrow(2, pos, T).copy_(v);
    k = cache->self_k[layer].narrow(2, 0, pos + T);
    v = cache->self_v[layer].narrow(2, 0, pos + T);
  }
  at::Tensor o;  // a decode step: one query over the cache through the streaming kernel
  if (cache && T == 1) o = attend_cached_step(q, cache->self_k[layer], cache->self_v[layer], cache->pos + 1);
  if (!o.defined() && k.scalar_type() != q.scalar_type()) {  // a bf16 cache outside the kernel (prefill)
    k = k.to(q.scalar_type());
    v = v.to(q.scalar_type());
  }
  at::Tensor x = x_in + (o.defined() ? self_attn->project(self_attn->out_proj, o)
                                     : self_attn->attend(q, k, v, {}, /*causal=*/T > 1));
  if (cross_k.defined()) {
    h = encoder_attn_layer_norm->forward(x);
    q = encoder_attn->heads_of(encoder_attn->q_proj, h);
    const at::Tensor oc = T == 1 ? attend_cached_step(q, cross_k, cross_v, cross_k.size(2), cross_mask) : at::Tensor();
    const bool same = cross_k.scalar_type() == q.scalar_type();  // a bf16 memory outside the kernel (prefill)
    x = x + (oc.defined() ? encoder_attn->project(encoder_attn->out_proj, oc)
                          : encoder_attn->attend(q, same ? cross_k : cross_k.to(q.scalar_type()),
                                                 same ? cross_v : cross_v.to(q.scalar_type()), cross_mask, false));
  }
  h = final_layer_norm->forward(x);
  h = activate(activation, fc1_kernel ? fc1_kernel->forward(h) : linear_small(h, fc1->weight));
  return x + (fc2_kernel ? fc2_kernel->forward(h) : linear_small(h, fc2->weight));
}

bool MusicgenDecoderLayerImpl::can_step_fused(const KVCache& cache, int64_t layer) const {
  if (at::GradMode::is_enabled() || !kernels::has_avx512()) return false;
  for (const auto* ln : {&self_attn_layer_norm, &encoder_attn_layer_norm, &final_layer_norm})
    if ((*ln)->weight.scalar_type() != at::kFloat || !(*ln)->weight.device().is_cpu() || !(*ln)->bias.defined())
      return false;
  const auto& a = *self_attn;
  const auto& c = *encoder_attn;
  if (!has_raw(a.q_kernel, a.q_proj) || !has_raw(a.k_kernel, a.k_proj) || !has_raw(a.v_kernel, a.v_proj) ||
      !has_raw(a.out_kernel, a.out_proj) || !has_raw(fc1_kernel, fc1) || !has_raw(fc2_kernel, fc2))
    return false;
  const auto& k = cache.self_k[layer];
  if (!k.is_contiguous() || !cache.self_v[layer].is_contiguous() ||
      (k.scalar_type() != at::kFloat && k.scalar_type() != at::kBFloat16))
    return false;
  if (cache.has_memory()) {
    if (!has_raw(c.q_kernel, c.q_proj) || !has_raw(c.out_kernel, c.out_proj)) return false;
    const auto& ck = cache.cross_k[layer];
    if (!ck.is_contiguous() || !cache.cross_v[layer].is_contiguous() ||
        (ck.scalar_type() != at::kFloat && ck.scalar_type() != at::kBFloat16) ||
        (cache.cross_mask.defined() && (cache.cross_mask.scalar_type() != at::kFloat || !cache.cross_mask.is_contiguous())))
      return false;
  }
  return true;
}

void MusicgenDecoderLayerImpl::step_fused(float* x, int64_t B, KVCache& cache, int64_t layer, float* scratch) {
  const int64_t D = self_attn->q_proj->weight.size(0), F = fc1->weight.size(0), pos = cache.pos;
  float *h = scratch, *q = h + B * D, *k = q + B * D, *v = k + B * D, *o = v + B * D, *t = o + B * D, *f = t + B * D;
  auto& a = *self_attn;
  layer_norm_raw(self_attn_layer_norm, x, B, h);
  const MatvecView qkv[3] = {view_of(a.q_kernel, a.q_proj), view_of(a.k_kernel, a.k_proj), view_of(a.v_kernel, a.v_proj)};
  float* const qkv_out[3] = {q, k, v};
  matvec_group(qkv, 3, h, B, qkv_out);  // one fork for the three products of h
  write_cache_rows(k, cache.self_k[layer], pos);
  write_cache_rows(v, cache.self_v[layer], pos);
  attend_step(q, cache.self_k[layer], cache.self_v[layer], pos + 1, nullptr, 0, o);
  project_raw(a.out_kernel, a.out_proj, o, B, t);
  kernels::add_into(x, t, B * D);
  if (cache.has_memory()) {
    auto& c = *encoder_attn;
    layer_norm_raw(encoder_attn_layer_norm, x, B, h);
    project_raw(c.q_kernel, c.q_proj, h, B, q);
    const at::Tensor& ck = cache.cross_k[layer];
    const int64_t S = ck.size(2);
    const float* bias = cache.cross_mask.defined() ? cache.cross_mask.data_ptr<float>() : nullptr;
    attend_step(q, ck, cache.cross_v[layer], S, bias, S, o);
    project_raw(c.out_kernel, c.out_proj, o, B, t);
    kernels::add_into(x, t, B * D);
  }
  layer_norm_raw(final_layer_norm, x, B, h);
  project_raw(fc1_kernel, fc1, h, B, f);
  activate_(activation, at::from_blob(f, {B * F}, at::TensorOptions().dtype(at::kFloat)));
  project_raw(fc2_kernel, fc2, f, B, t);
  kernels::add_into(x, t, B * D);
}

MusicgenDecoderStackImpl::MusicgenDecoderStackImpl(const MusicgenDecoderConfig& c) {
  for (int64_t k = 0; k < c.num_codebooks; ++k) embed_tokens->push_back(torch::nn::Embedding(c.vocab_size + 1, c.hidden_size));
  register_module("embed_tokens", embed_tokens);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layers->push_back(MusicgenDecoderLayer(c));
  register_module("layers", layers);
  layer_norm = register_module("layer_norm", make_layer_norm(c));
}

MusicgenModelImpl::MusicgenModelImpl(const MusicgenDecoderConfig& c) {
  decoder = register_module("decoder", MusicgenDecoderStack(c));
}

MusicgenDecoderImpl::MusicgenDecoderImpl(const MusicgenDecoderConfig& c) : cfg(c) {
  cfg.validate("musicgen decoder config");
  model = register_module("model", MusicgenModel(cfg));
  for (int64_t k = 0; k < cfg.num_codebooks; ++k) lm_heads->push_back(linear(cfg.hidden_size, cfg.vocab_size, false));
  register_module("lm_heads", lm_heads);
  positions_ = musicgen_sinusoids(cfg.max_position_embeddings, cfg.hidden_size);
}

at::Tensor MusicgenDecoderImpl::positions(int64_t start, int64_t count, const at::Tensor& like) {
  if (positions_.size(0) < start + count)  // transformers grows its table the same way
    positions_ = musicgen_sinusoids(std::max(start + count, 2 * positions_.size(0)), cfg.hidden_size);
  if (positions_.device() != like.device() || positions_.scalar_type() != like.scalar_type())
    positions_ = positions_.to(like.device(), like.scalar_type());
  return positions_.narrow(0, start, count);
}

at::ScalarType MusicgenDecoderImpl::kv_dtype() const {
  const at::Tensor& ln = model->decoder->layer_norm->weight;
  const bool bf16 = weights_dtype_ == WeightsDtype::BF16 && ln.device().is_cpu() && ln.scalar_type() == at::kFloat &&
                    kernels::has_avx512();
  return bf16 ? at::kBFloat16 : ln.scalar_type();
}

KVCache MusicgenDecoderImpl::make_cache(int64_t batch, int64_t capacity) const {
  const int64_t H = cfg.num_attention_heads, Dh = cfg.hidden_size / H;
  const auto opts = model->decoder->layer_norm->weight.options().dtype(kv_dtype());
  KVCache c;
  c.batch = batch;
  c.capacity = capacity;
  const at::ScalarType dt = kv_dtype();
  const bool cpu = opts.device().is_cpu();
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (auto* kv : {&c.self_k, &c.self_v})
      kv->push_back(cpu ? empty_huge_pages({batch, H, capacity, Dh}, dt) : at::empty({batch, H, capacity, Dh}, opts));
  return c;
}

namespace {
void check_memory(const at::Tensor& memory, int64_t batch, int64_t hidden) {
  if (memory.dim() != 3 || memory.size(0) != batch || memory.size(2) != hidden)
    throw Error(describe("bad input", "memory", "expected [B, S, D] with B = " + std::to_string(batch) +
                                                    ", D = " + std::to_string(hidden) + ", got " +
                                                    std::string(c10::str(memory.sizes()))));
}
}  // namespace

void MusicgenDecoderImpl::set_memory(KVCache& cache, const at::Tensor& memory, const at::Tensor& memory_mask) {
  check_memory(memory, cache.batch, cfg.hidden_size);
  cache.cross_k.clear();
  cache.cross_v.clear();
  const at::ScalarType dt = cache.self_k.empty() ? kv_dtype() : cache.self_k[0].scalar_type();
  for (const auto& m : *model->decoder->layers) {
    auto& attn = m->as<MusicgenDecoderLayer>()->encoder_attn;
    // In the self-attention cache's dtype: bf16 halves what every step reads from the memory.
    cache.cross_k.push_back(attn->heads_of(attn->k_proj, memory).to(dt).contiguous());
    cache.cross_v.push_back(attn->heads_of(attn->v_proj, memory).to(dt).contiguous());
  }
  cache.cross_mask = additive_mask(memory_mask, memory);
}

at::Tensor MusicgenDecoderImpl::hidden_states(const at::Tensor& codes, const at::Tensor& memory,
                                              const at::Tensor& memory_mask, KVCache* cache,
                                              const at::Tensor& frame_cond) {
  if (codes.dim() != 3 || codes.size(1) != cfg.num_codebooks)
    throw Error(describe("bad input", "codes", "expected [B, " + std::to_string(cfg.num_codebooks) + ", T], got " +
                                                   std::string(c10::str(codes.sizes()))));
  const int64_t B = codes.size(0), T = codes.size(2);
  const at::Tensor ids = codes.to(at::kLong);
  int64_t start = 0;
  if (cache) {
    if (cache->batch != B)
      throw Error(describe("bad input", "kv cache", "built for batch " + std::to_string(cache->batch) + ", got " +
                                                        std::to_string(B)));
    if (cache->pos + T > cache->capacity)
      throw Error(describe("bad input", "kv cache", "full: " + std::to_string(cache->pos) + " + " + std::to_string(T) +
                                                        " tokens > capacity " + std::to_string(cache->capacity)));
    if (memory.defined()) set_memory(*cache, memory, memory_mask);
    start = cache->pos;
  }
  auto& stack = *model->decoder;
  // Sum of the per-codebook embeddings (no embed_scale: transformers never applies it).
  at::Tensor h;
  for (int64_t k = 0; k < cfg.num_codebooks; ++k) {
    at::Tensor e = stack.embed_tokens[k]->as<torch::nn::Embedding>()->forward(ids.select(1, k));
    h = h.defined() ? h.add_(e) : e;
  }
  h = h + positions(start, T, h);
  if (frame_cond.defined()) {
    if (frame_cond.dim() != 3 || frame_cond.size(0) != B || frame_cond.size(2) != cfg.hidden_size)
      throw Error(describe("bad input", "frame condition", "expected [" + std::to_string(B) + ", F, " +
                                                               std::to_string(cfg.hidden_size) + "], got " +
                                                               std::string(c10::str(frame_cond.sizes()))));
    const int64_t n = std::min(T, frame_cond.size(1) - start);
    if (n > 0) h.narrow(1, 0, n).add_(frame_cond.narrow(1, start, n).to(h.scalar_type()));
  }

  at::Tensor mask;
  if (!cache && memory.defined()) {
    check_memory(memory, B, cfg.hidden_size);
    mask = additive_mask(memory_mask, memory);
  }
  // A decode step on the CPU runs each layer fused on raw rows (no per-op dispatch), where
  // every layer's weights and the cache fit the kernels.
  bool fused = cache && T == 1 && h.device().is_cpu() && h.scalar_type() == at::kFloat && B <= kernels::kMaxRows;
  for (int64_t i = 0; fused && i < static_cast<int64_t>(stack.layers->size()); ++i)
    fused = stack.layers[i]->as<MusicgenDecoderLayer>()->can_step_fused(*cache, i);
  if (fused) {
    h = h.contiguous();
    const int64_t need = B * (6 * cfg.hidden_size + cfg.ffn_dim);
    if (!cache->scratch.defined() || cache->scratch.numel() < need) cache->scratch = at::empty({need}, h.options());
    for (int64_t i = 0; i < static_cast<int64_t>(stack.layers->size()); ++i)
      stack.layers[i]->as<MusicgenDecoderLayer>()->step_fused(h.data_ptr<float>(), B, *cache, i,
                                                               cache->scratch.data_ptr<float>());
    cache->pos += T;
    return stack.layer_norm->forward(h);
  }
  int64_t l = 0;
  for (const auto& m : *stack.layers) {
    auto layer = m->as<MusicgenDecoderLayer>();
    if (cache) {
      const bool mem = cache->has_memory();
      h = layer->forward(h, cache, l, mem ? cache->cross_k[l] : at::Tensor(), mem ? cache->cross_v[l] : at::Tensor(),
                         cache->cross_mask);
    } else if (memory.defined()) {
      auto& a = layer->encoder_attn;
      h = layer->forward(h, nullptr, l, a->heads_of(a->k_proj, memory), a->heads_of(a->v_proj, memory), mask);
    } else {
      h = layer->forward(h, nullptr, l, {}, {}, {});
    }
    ++l;
  }
  if (cache) cache->pos += T;
  return stack.layer_norm->forward(h);
}

at::Tensor MusicgenDecoderImpl::forward(const at::Tensor& codes, const at::Tensor& memory,
                                        const at::Tensor& memory_mask, KVCache* cache,
                                        const at::Tensor& frame_cond) {
  at::Tensor h = hidden_states(codes, memory, memory_mask, cache, frame_cond);  // [B, T, D]
  if (heads_kernel_) {  // one product for all K heads: [B, T, K V] -> [B, K, T, V]
    const int64_t B = h.size(0), T = h.size(1);
    return heads_kernel_->forward(h).view({B, T, cfg.num_codebooks, cfg.vocab_size}).permute({0, 2, 1, 3});
  }
  std::vector<at::Tensor> logits;
  logits.reserve(cfg.num_codebooks);
  for (const auto& head : *lm_heads) logits.push_back(linear_small(h, head->as<Linear>()->weight));
  return at::stack(logits, 1);  // [B, K, T, V]
}

size_t MusicgenDecoderImpl::drop_resident_weights() const {
  size_t dropped = nn::drop_resident_weights(*this);
  const auto drop = [&](const std::shared_ptr<LinearKernel>& k) {
    if (k && k->has_matvec()) dropped += drop_resident_data(k->matvec_view().w);
  };
  for (const auto& l : *model->decoder->layers) {
    const auto* layer = l->as<MusicgenDecoderLayer>();
    for (const auto* a : {layer->self_attn.get(), layer->encoder_attn.get()}) {
      drop(a->q_kernel);
      drop(a->k_kernel);
      drop(a->v_kernel);
      drop(a->out_kernel);
    }
    drop(layer->fc1_kernel);
    drop(layer->fc2_kernel);
  }
  drop(heads_kernel_);
  return dropped;
}

void MusicgenDecoderImpl::set_weights_dtype(WeightsDtype dtype) {
  if (dtype == weights_dtype_) return;
  if (weights_dtype_ != WeightsDtype::FP32)
    throw Error(describe("cannot convert decoder weights", weights_dtype_name(weights_dtype_),
                         std::string("already converted; reload the model to use ") + weights_dtype_name(dtype)));
  at::NoGradGuard no_grad;
  // The float weight is replaced by a zero-stride placeholder of the same shape: its memory
  // (or its pages of the weight file's mapping) is released, parameter counts stay right, and
  // any attempt to copy into it fails loudly instead of silently doing nothing.
  auto convert = [&](Linear& lin) {
    at::Tensor& w = lin->weight;
    auto k = make_linear_kernel(w, dtype);
    w.set_data(at::zeros({1}, w.options()).expand(w.sizes()));
    return k;
  };
  for (const auto& m : *model->decoder->layers) {
    auto layer = m->as<MusicgenDecoderLayer>();
    for (auto* a : {layer->self_attn.get(), layer->encoder_attn.get()}) {
      a->q_kernel = convert(a->q_proj);
      a->k_kernel = convert(a->k_proj);
      a->v_kernel = convert(a->v_proj);
      a->out_kernel = convert(a->out_proj);
    }
    layer->fc1_kernel = convert(layer->fc1);
    layer->fc2_kernel = convert(layer->fc2);
  }
  std::vector<at::Tensor> heads;
  for (const auto& h : *lm_heads) heads.push_back(h->as<Linear>()->weight);
  heads_kernel_ = make_linear_kernel(at::cat(heads, 0), dtype);
  for (const auto& h : *lm_heads) {
    at::Tensor& w = h->as<Linear>()->weight;
    w.set_data(at::zeros({1}, w.options()).expand(w.sizes()));
  }
  weights_dtype_ = dtype;
}

int64_t MusicgenDecoderImpl::step_weight_bytes() const {
  const int64_t D = cfg.hidden_size, F = cfg.ffn_dim, V = cfg.vocab_size, K = cfg.num_codebooks;
  const int64_t ln = 4 * (cfg.num_hidden_layers * 6 * D + 2 * D);  // LayerNorms stay float
  if (weights_dtype_ == WeightsDtype::FP32)
    return ln + 4 * (cfg.num_hidden_layers * (6 * D * D + 2 * D * F) + K * V * D);
  int64_t b = heads_kernel_->bytes();
  for (const auto& m : *model->decoder->layers) {
    auto layer = m->as<MusicgenDecoderLayer>();
    const auto& s = layer->self_attn;
    const auto& c = layer->encoder_attn;  // cross k/v run once per window, not per step
    b += s->q_kernel->bytes() + s->k_kernel->bytes() + s->v_kernel->bytes() + s->out_kernel->bytes() +
         c->q_kernel->bytes() + c->out_kernel->bytes() + layer->fc1_kernel->bytes() + layer->fc2_kernel->bytes();
  }
  return ln + b;
}

// ---------------------------------------------------------------------------------------------
// loading

std::vector<std::string> load_musicgen_decoder(MusicgenDecoderImpl& decoder, const TensorMap& tensors,
                                               const std::string& prefix, const std::string& source,
                                               Linear* enc_to_dec_proj, const std::string& proj_prefix) {
  std::vector<std::string> used = load_into(decoder, tensors, prefix, source);
  // transformers stores its sinusoid table as a parameter; it is recomputed here, so only the
  // width is checked (the number of rows only bounds its own table).
  const std::string pos_key = prefix + "model.decoder.embed_positions.weights";
  if (auto it = tensors.find(pos_key); it != tensors.end()) {
    const at::Tensor& t = it->second;
    if (t.dim() != 2 || t.size(1) != decoder.cfg.hidden_size)
      throw Error(describe("shape mismatch", source,
                           "tensor '" + pos_key + "' has shape " + std::string(c10::str(t.sizes())) +
                               ", the model expects [" + std::to_string(decoder.cfg.max_position_embeddings) + ", " +
                               std::to_string(decoder.cfg.hidden_size) + "]"));
    used.push_back(pos_key);
  }
  if (enc_to_dec_proj) {
    if (!*enc_to_dec_proj) throw Error(describe("bad call", source, "enc_to_dec_proj is not constructed"));
    auto u = load_into(**enc_to_dec_proj, tensors, proj_prefix, source);
    used.insert(used.end(), u.begin(), u.end());
  }
  return used;
}

Linear make_enc_to_dec_proj(const MusicgenDecoderConfig& cfg) {
  if (cfg.encoder_hidden_size <= 0)
    throw Error(describe("bad musicgen config", "encoder_hidden_size", "must be positive for enc_to_dec_proj"));
  return linear(cfg.encoder_hidden_size, cfg.hidden_size, true);
}

at::Tensor project_memory(const Linear* proj, const at::Tensor& states, const at::Tensor& mask) {
  at::Tensor x = proj ? at::linear(states, (*proj)->weight, (*proj)->bias) : states;
  if (mask.defined()) x = x * mask.to(x.device(), x.scalar_type()).unsqueeze(-1);
  return x;
}

// ---------------------------------------------------------------------------------------------
// generation

at::Tensor musicgen_generate(MusicgenDecoderImpl& dec, const at::Tensor& memory, const at::Tensor& memory_mask,
                             int64_t steps, const SamplingParams& params, const at::Tensor& prompt,
                             const GenerateProgress& progress, KVCache* reuse, const at::Tensor& frame_cond) {
  c10::InferenceMode inference;
  const auto& cfg = dec.cfg;
  const int64_t K = cfg.num_codebooks;
  const auto delays = musicgen_delays(K, cfg.audio_channels);
  const int64_t D = *std::max_element(delays.begin(), delays.end());
  const at::Device device = dec.lm_heads[0]->as<Linear>()->weight.device();
  const int64_t B = memory.defined() ? memory.size(0) : prompt.defined() ? prompt.size(0) : 1;
  if (steps < 0) throw Error(describe("bad input", "generate", "steps must be >= 0"));
  if (prompt.defined() && (prompt.dim() != 3 || prompt.size(0) != B || prompt.size(1) != K))
    throw Error(describe("bad input", "prompt", "expected [" + std::to_string(B) + ", " + std::to_string(K) +
                                                    ", Tp], got " + std::string(c10::str(prompt.sizes()))));
  const int64_t Tp = prompt.defined() ? prompt.size(2) : 0;
  if (steps == 0) return prompt.defined() ? prompt.to(device, at::kLong) : at::empty({B, K, 0}, at::kLong);
  const int64_t frames = Tp + steps, L = frames + D;

  // seq: [B, K, 1 + L] = BOS column + delay pattern; -1 marks the entries still to sample,
  // pad / prompt entries are fixed up front (transformers' build_delay_pattern_mask).
  at::Tensor seq = at::full({B, K, 1 + L}, -1, at::TensorOptions(at::kLong).device(device));
  seq.select(2, 0).fill_(cfg.bos_token_id);
  for (int64_t k = 0; k < K; ++k) {
    at::Tensor row = seq.select(1, k).narrow(1, 1, L);
    row.narrow(1, 0, delays[k]).fill_(cfg.pad_token_id);
    if (Tp) row.narrow(1, delays[k], Tp).copy_(prompt.select(1, k));
    row.narrow(1, delays[k] + frames, D - delays[k]).fill_(cfg.pad_token_id);
  }

  const bool guided = memory.defined() && params.cfg_scale != 1.0;
  const int64_t B2 = guided ? 2 * B : B;
  KVCache own;
  KVCache& cache = reuse ? *reuse : own;
  const at::Tensor& ln = dec.model->decoder->layer_norm->weight;
  if (cache.batch != B2 || cache.capacity < L || cache.self_k.size() != static_cast<size_t>(cfg.num_hidden_layers) ||
      cache.self_k[0].scalar_type() != dec.kv_dtype() || cache.self_k[0].device() != ln.device())
    cache = dec.make_cache(B2, L);
  cache.reset();
  cache.cross_k.clear();
  cache.cross_v.clear();
  cache.cross_mask = at::Tensor();
  if (memory.defined()) {
    at::Tensor mem = memory.to(device), mask = memory_mask.defined()
                                                   ? memory_mask.to(device)
                                                   : at::ones({B, memory.size(1)}, at::TensorOptions(at::kLong).device(device));
    if (guided) {  // cond rows first, then the null condition (zero states, nothing valid)
      mem = at::cat({mem, at::zeros_like(mem)}, 0);
      mask = at::cat({mask, at::zeros_like(mask)}, 0);
    }
    dec.set_memory(cache, mem, mask);
  }
  at::Tensor aligned;  // [B2, F, D]: cond rows, then zeros for the null condition
  if (frame_cond.defined()) {
    aligned = frame_cond.to(device);
    if (aligned.size(0) != B)
      throw Error(describe("bad input", "frame condition", "batch " + std::to_string(aligned.size(0)) +
                                                               " != " + std::to_string(B)));
    if (guided) aligned = at::cat({aligned, at::zeros_like(aligned)}, 0);
  }

  Sampler sampler(params);
  const int64_t first = 1 + Tp;  // first column whose codebook-0 entry is unknown
  const int64_t total = L + 1 - first;
  at::Tensor input = seq.narrow(2, 0, first);  // prefill: BOS + the prompt columns
  at::Tensor step_in = guided ? at::empty({B2, K, 1}, seq.options()) : at::Tensor();  // reused per step
  for (int64_t col = first; col <= L; ++col) {
    at::Tensor x = input;
    if (guided) {  // cond and null condition share the tokens: one batch of 2B
      if (input.size(2) == 1) {
        step_in.narrow(0, 0, B).copy_(input);
        step_in.narrow(0, B, B).copy_(input);
        x = step_in;
      } else {
        x = input.repeat({2, 1, 1});
      }
    }
    at::Tensor logits = dec.forward(x, {}, {}, &cache, aligned).select(2, -1);  // [B2, K, V]
    if (guided) logits = apply_cfg(logits, params.cfg_scale);
    at::Tensor tok = sampler.sample(logits);  // [B, K]
    at::Tensor cur = seq.select(2, col);
    cur.copy_(at::where(cur.lt(0), tok, cur));  // only free entries: delay (t >= k) + prompt respected
    if (progress) progress(col - first + 1, total);
    input = seq.narrow(2, col, 1);
  }
  return revert_delay_pattern(seq.narrow(2, 1, L), delays);
}

at::Tensor generate(MusicgenDecoder& decoder, const at::Tensor& memory, const at::Tensor& mask, int64_t frames,
                    const SamplingParams& params, const at::Tensor& prompt, const GenerateProgress& progress) {
  return musicgen_generate(*decoder, memory, mask, frames, params, prompt, progress);
}

}  // namespace v2m::nn
