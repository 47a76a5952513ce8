// Token sampling for the code LM: classifier-free guidance, temperature, top-k, top-p,
// seeded multinomial. Semantics follow transformers' generate() for MusicGen (CFG logits
// processor first, then the Temperature -> TopK -> TopP warpers) and audiocraft's
// sample_top_k / sample_top_p.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "v2m/config.h"

namespace v2m::nn {

struct SamplingParams {
  double temperature = 1.0;  // <= 0 means greedy
  int64_t top_k = 250;       // 0 = off
  double top_p = 0.0;        // 0 = off; nucleus applied after top-k (as transformers)
  double cfg_scale = 3.0;    // 1 = no classifier-free guidance
  bool greedy = false;       // argmax (of the guided logits)
  uint64_t seed = 0;         // seeds the Sampler's CPU generator
  void visit(ConfigVisitor& v);
};

// Classifier-free guidance. logits: [2B, ...] with the conditional rows first and the
// unconditional rows second (the order generate() batches them, as transformers'
// ClassifierFreeGuidanceLogitsProcessor and audiocraft's LMModel._sample_next_token)
// -> [B, ...] = uncond + scale * (cond - uncond).
at::Tensor apply_cfg(const at::Tensor& logits, double scale);

// logits: [..., V] -> same shape with all but the k largest entries per row set to -inf.
// Exactly k survive (ties broken by at::topk). k <= 0 or k >= V returns the input.
at::Tensor top_k_filter(const at::Tensor& logits, int64_t k);

// logits: [..., V] -> same shape keeping the nucleus: the smallest set of most likely tokens
// whose probability sums to >= p (the most likely token is always kept); others -inf.
// p <= 0 or p >= 1 returns the input.
at::Tensor top_p_filter(const at::Tensor& logits, double p);

// Draws one token per row. Holds a CPU generator seeded once, so the same seed and the same
// logits give the same tokens (also when the logits live on a GPU: the few surviving
// candidates are copied to the CPU for the draw).
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // logits: [..., V] (already guided) -> int64 [...] on the logits' device.
  // Throws v2m::Error "generation: NaN/Inf logits at step N" when any logit is not finite.
  at::Tensor sample(const at::Tensor& logits);
  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  at::Generator gen_;
  int64_t step_ = 0;  // sample() calls so far, for the NaN/Inf message
};

}  // namespace v2m::nn
