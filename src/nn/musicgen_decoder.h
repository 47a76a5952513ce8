// The MusicGen code language model: transformers' MusicgenForCausalLM with the same module
// tree and parameter names, so a hub checkpoint loads by name:
//
//   model.decoder.embed_tokens.{k}.weight            [vocab + 1, D]   one table per codebook
//   model.decoder.layers.{l}.self_attn.{k,v,q,out}_proj.weight          (no bias)
//   model.decoder.layers.{l}.self_attn_layer_norm.{weight,bias}
//   model.decoder.layers.{l}.encoder_attn.{k,v,q,out}_proj.weight       (no bias)
//   model.decoder.layers.{l}.encoder_attn_layer_norm.{weight,bias}
//   model.decoder.layers.{l}.fc1.weight, fc2.weight                     (no bias)
//   model.decoder.layers.{l}.final_layer_norm.{weight,bias}
//   model.decoder.layer_norm.{weight,bias}
//   lm_heads.{k}.weight                              [vocab, D]      (no bias)
//
// In the composite MusicgenForConditionalGeneration these sit under `decoder.` and the
// text-to-decoder projection `enc_to_dec_proj.{weight,bias}` sits at the root.
// Positions are transformers' MusicgenSinusoidalPositionalEmbedding ([cos | sin] halves),
// computed here; a stored `embed_positions.weights` is accepted and ignored.
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nn/linear.h"
#include "nn/linear_kernel.h"
#include "nn/sampling.h"
#include "nn/state_dict.h"
#include "v2m/config.h"

namespace v2m::nn {

struct MusicgenDecoderConfig {
  int64_t vocab_size = 2048;  // codebook cardinality; id `vocab_size` is the BOS/pad token
  int64_t max_position_embeddings = 2048;
  int64_t num_hidden_layers = 24;
  int64_t ffn_dim = 4096;
  int64_t num_attention_heads = 16;
  int64_t hidden_size = 1024;
  int64_t num_codebooks = 4;
  std::string activation_function = "gelu";
  double layer_norm_eps = 1e-5;
  // transformers computes embed_scale = sqrt(hidden) for this flag but never applies it in
  // MusicgenDecoder.forward; v2m matches that (the flag is kept for round trips only).
  bool scale_embedding = false;
  int64_t audio_channels = 1;
  int64_t pad_token_id = 2048;
  int64_t bos_token_id = 2048;
  // in_features of the composite's enc_to_dec_proj (its text_encoder.d_model; T5-base: 768).
  // The projection itself is owned by the model assembly (make_enc_to_dec_proj).
  int64_t encoder_hidden_size = 768;
  void visit(ConfigVisitor& v);
  // Throws v2m::Error (naming `source`) for inconsistent values.
  void validate(const std::string& source) const;
};

// From a transformers config.json: a MusicgenConfig (reads "decoder", and "text_encoder"'s
// d_model/hidden_size as encoder_hidden_size) or a bare MusicgenDecoderConfig (keeps 768).
MusicgenDecoderConfig musicgen_decoder_config_from_hf(const nlohmann::json& j, const std::string& source = "config.json");
MusicgenDecoderConfig musicgen_decoder_config_from_hf_file(const std::string& path);

// Parameter count of transformers' layout for `cfg` (embed_positions.weights excluded):
//   K (V+1) D  +  L (8 D^2 + 2 D F + 6 D)  +  2 D  +  K V D
int64_t musicgen_decoder_parameter_count(const MusicgenDecoderConfig& cfg);

// Whether `name` (relative to the decoder module) is one of the weights set_weights_dtype
// converts: the attention projections, fc1/fc2 and the lm_heads (not the embeddings or norms).
bool musicgen_converted_weight(const std::string& name);

// transformers' MusicgenSinusoidalPositionalEmbedding.get_embedding: [n, dim] with the cos half
// first, then the sin half, frequencies exp(-i log(10000) / (dim/2 - 1)); odd dim zero-padded.
at::Tensor musicgen_sinusoids(int64_t n, int64_t dim);

// Per-layer attention state for incremental decoding. Self-attention K/V are preallocated
// [B, H, capacity, Dh] and written in place at `pos`; cross-attention K/V are computed once
// per set_memory() (per conditioning window). Entries at and past `pos` are never read, so the
// buffers start uninitialised and a reset() cache is reused as is.
struct KVCache {
  std::vector<at::Tensor> self_k, self_v;    // per layer [B, H, capacity, Dh]
  std::vector<at::Tensor> cross_k, cross_v;  // per layer [B, H, S, Dh] (empty: no memory)
  at::Tensor cross_mask;                     // [B, 1, 1, S] additive, or undefined
  at::Tensor scratch;                        // the fused step's row buffers (allocated once)
  int64_t pos = 0;                           // tokens already in the cache
  int64_t capacity = 0;
  int64_t batch = 0;
  bool has_memory() const { return !cross_k.empty(); }
  void reset() { pos = 0; }  // keeps the memory and the buffers
};

struct MusicgenAttentionImpl : torch::nn::Module {
  MusicgenAttentionImpl(int64_t dim, int64_t heads);
  // x: [B, T, D] -> [B, H, T, Dh] projected with `proj` (one of k/v/q).
  at::Tensor heads_of(const Linear& proj, const at::Tensor& x) const;
  // q: [B, H, Tq, Dh], k/v: [B, H, Tk, Dh] -> [B, Tq, D] after out_proj
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                    bool causal);

  // Applies `proj` (one of the four projections) through its converted kernel when the
  // decoder's weights were converted (set_weights_dtype), else at::linear on the weight.
  at::Tensor project(const Linear& proj, const at::Tensor& x) const;

  int64_t heads;
  Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
  std::shared_ptr<LinearKernel> k_kernel, v_kernel, q_kernel, out_kernel;  // null: fp32 weights
};
TORCH_MODULE(MusicgenAttention);

struct MusicgenDecoderLayerImpl : torch::nn::Module {
  explicit MusicgenDecoderLayerImpl(const MusicgenDecoderConfig& cfg);
  // x: [B, T, D]; self K/V of this call are written to cache slot `pos` when `cache` is given;
  // cross K/V/mask: [B, H, S, Dh] / [B, 1, 1, S] (undefined K: no cross-attention) -> [B, T, D]
  at::Tensor forward(const at::Tensor& x, KVCache* cache, int64_t layer, const at::Tensor& cross_k,
                     const at::Tensor& cross_v, const at::Tensor& cross_mask);
  // The same for one decode step (T = 1, B <= 4 rows) fused on raw buffers: x [B, D] float is
  // updated in place, every product runs through the streaming kernels with no ATen op but
  // the activation, this step's K/V go into the cache at cache.pos (not advanced here).
  // scratch: B (6 D + F) floats. Only where can_step_fused(): no autograd, an AVX-512 CPU,
  // each projection fp32 or bf16 (not int8), the cache fp32 or bf16 and contiguous.
  bool can_step_fused(const KVCache& cache, int64_t layer) const;
  void step_fused(float* x, int64_t B, KVCache& cache, int64_t layer, float* scratch);

  std::string activation;
  MusicgenAttention self_attn{nullptr}, encoder_attn{nullptr};
  torch::nn::LayerNorm self_attn_layer_norm{nullptr}, encoder_attn_layer_norm{nullptr}, final_layer_norm{nullptr};
  Linear fc1{nullptr}, fc2{nullptr};
  std::shared_ptr<LinearKernel> fc1_kernel, fc2_kernel;  // null: fp32 weights
};
TORCH_MODULE(MusicgenDecoderLayer);

// transformers' MusicgenDecoder (`model.decoder`).
struct MusicgenDecoderStackImpl : torch::nn::Module {
  explicit MusicgenDecoderStackImpl(const MusicgenDecoderConfig& cfg);
  torch::nn::ModuleList embed_tokens, layers;
  torch::nn::LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(MusicgenDecoderStack);

// transformers' MusicgenModel (`model`).
struct MusicgenModelImpl : torch::nn::Module {
  explicit MusicgenModelImpl(const MusicgenDecoderConfig& cfg);
  MusicgenDecoderStack decoder{nullptr};
};
TORCH_MODULE(MusicgenModel);

// transformers' MusicgenForCausalLM.
struct MusicgenDecoderImpl : torch::nn::Module {
  explicit MusicgenDecoderImpl(const MusicgenDecoderConfig& cfg);

  // codes: [B, K, T] int64 (ids in [0, vocab], vocab = BOS/pad), memory: [B, S, D] already
  // projected to the decoder width (undefined: no cross-attention), memory_mask: [B, S]
  // bool/0-1 (undefined: all valid). With `cache`, the T tokens continue at cache->pos and
  // cross-attention uses the cache's memory (memory given here replaces it, as set_memory).
  // frame_cond: optional [B, F, D] time-aligned condition (fusion.frame_condition), added to
  // the input at each absolute position p (cache->pos + i with a cache); positions >= F get
  // none. -> logits [B, K, T, vocab]
  at::Tensor forward(const at::Tensor& codes, const at::Tensor& memory = {}, const at::Tensor& memory_mask = {},
                     KVCache* cache = nullptr, const at::Tensor& frame_cond = {});
  // Same trunk, returns the final hidden states [B, T, D] (before the heads).
  at::Tensor hidden_states(const at::Tensor& codes, const at::Tensor& memory, const at::Tensor& memory_mask,
                           KVCache* cache, const at::Tensor& frame_cond = {});

  // Self-attention cache in kv_dtype(): bf16 once the weights are bf16 on a CPU whose
  // attention kernel reads it (half the bytes a step streams from the cache), else the
  // decoder's float dtype.
  KVCache make_cache(int64_t batch, int64_t capacity) const;
  at::ScalarType kv_dtype() const;
  // Computes cross-attention K/V of every layer for memory [B, S, D] + mask [B, S] into `cache`.
  void set_memory(KVCache& cache, const at::Tensor& memory, const at::Tensor& memory_mask);

  // Inference only, one way: converts every decoder linear (attention projections, fc1/fc2,
  // the K heads, fused into one [K V, D] kernel) to `dtype` and releases the float weights
  // (their parameters keep their shapes but become zero-stride placeholders, so the module can
  // no longer be saved, loaded into or trained). FP32 on an unconverted decoder is a no-op.
  void set_weights_dtype(WeightsDtype dtype);
  WeightsDtype weights_dtype() const { return weights_dtype_; }
  // Bytes of decoder weights one incremental step streams (self-attn q/k/v/o, cross-attn q/o,
  // fc1/fc2, LayerNorms, heads) in the current storage format.
  int64_t step_weight_bytes() const;
  // nn::drop_resident_weights for the decoder, its converted kernels' weights included (a
  // "mixed" file's bf16 linears live in the kernels as mapped). Returns the bytes given back.
  size_t drop_resident_weights() const;

  MusicgenDecoderConfig cfg;
  MusicgenModel model{nullptr};
  torch::nn::ModuleList lm_heads;

 private:
  WeightsDtype weights_dtype_ = WeightsDtype::FP32;
  std::shared_ptr<LinearKernel> heads_kernel_;  // [K V, D] when converted
  at::Tensor positions(int64_t start, int64_t count, const at::Tensor& like);
  at::Tensor positions_;  // [N, D] sinusoid table, grown on demand; not a parameter
};
TORCH_MODULE(MusicgenDecoder);

// Loads a MusicgenForCausalLM state dict (`prefix` = "" ) or the decoder of a composite
// MusicgenForConditionalGeneration (`prefix` = "decoder."). Strict (v2m::Error names the
// tensor and both shapes). With `enc_to_dec_proj`, also loads `proj_prefix` + {weight,bias}.
// Returns the keys consumed.
std::vector<std::string> load_musicgen_decoder(MusicgenDecoderImpl& decoder, const TensorMap& tensors,
                                               const std::string& prefix, const std::string& source,
                                               Linear* enc_to_dec_proj = nullptr,
                                               const std::string& proj_prefix = "enc_to_dec_proj.");

// Linear(encoder_hidden_size, hidden_size) with bias, as the composite's enc_to_dec_proj
// (transformers builds it only when the text width differs from hidden_size).
Linear make_enc_to_dec_proj(const MusicgenDecoderConfig& cfg);

// The composite's conditioning path: proj(states) (when proj is given) times mask, as
// MusicgenForConditionalGeneration.forward. states: [B, S, Dt], mask: [B, S] -> [B, S, D]
at::Tensor project_memory(const Linear* proj, const at::Tensor& states, const at::Tensor& mask);

using GenerateProgress = std::function<void(int64_t done, int64_t total)>;

// Autoregressive generation with the delay pattern, KV cache and classifier-free guidance.
// memory: [B, S, D] projected condition (undefined: unconditional), mask: [B, S];
// prompt: [B, K, Tp] codes or undefined. Generates `steps` new frames and returns
// [B, K, Tp + steps] (prompt first). With cfg_scale != 1 and a memory, cond and null
// condition run as one batch of 2B; the null condition is what transformers builds for
// MusicGen's unconditional branch: zero encoder states with an all-zero attention mask.
// `cache`: optional KV cache kept by the caller across calls (windows, clips); it is reused
// when its batch matches and its capacity suffices, else rebuilt in place. Results are the
// same with or without it; it saves allocating (and faulting in) the cache per call.
// frame_cond: optional [B, F, D] time-aligned condition (see forward), position 0 = the BOS
// column; the null condition of CFG gets zeros.
at::Tensor musicgen_generate(MusicgenDecoderImpl& decoder, const at::Tensor& memory, const at::Tensor& memory_mask,
                             int64_t steps, const SamplingParams& params, const at::Tensor& prompt = {},
                             const GenerateProgress& progress = {}, KVCache* cache = nullptr,
                             const at::Tensor& frame_cond = {});
// Same, on the module holder: codes [B, K, P + frames].
at::Tensor generate(MusicgenDecoder& decoder, const at::Tensor& memory, const at::Tensor& mask, int64_t frames,
                    const SamplingParams& params, const at::Tensor& prompt = {}, const GenerateProgress& progress = {});

}  // namespace v2m::nn
