#include "nn/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>
#include <string>
#include <tuple>

#include "v2m/error.h"

namespace v2m::nn {

void SamplingParams::visit(ConfigVisitor& v) {
  v.field("temperature", temperature, {0.0, 100.0});
  v.field("top_k", top_k, {0, 1 << 20});
  v.field("top_p", top_p, {0.0, 1.0});
  v.field("cfg_scale", cfg_scale, {0.0, 100.0});
  v.field("greedy", greedy);
  int64_t s = static_cast<int64_t>(seed);  // ConfigVisitor has no unsigned field
  v.field("seed", s, {0, 9.0e15});
  seed = static_cast<uint64_t>(s);
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Candidate tokens of one row set: probabilities (not necessarily normalised, sorted in
// descending order when `index` is defined) and their vocabulary ids (undefined: all of
// the vocabulary, in order).
struct Candidates {
  at::Tensor probs;  // [N, C] float
  at::Tensor index;  // [N, C] int64 or undefined (C == V)
};

// probs: [N, V] normalised -> the most likely tokens, sorted, enough of them to hold mass p in
// every row. Grows a partial sort (at::topk) instead of sorting the whole vocabulary: with
// top-k off, a peaked LM distribution reaches p within a few dozen tokens.
std::tuple<at::Tensor, at::Tensor> top_mass(const at::Tensor& probs, double p) {
  const int64_t V = probs.size(-1);
  int64_t k = std::min<int64_t>(V, 64);
  for (;;) {
    auto [vals, idx] = at::topk(probs, k, -1, /*largest=*/true, /*sorted=*/true);
    if (k == V || (vals.sum(-1) >= p).all().item<bool>()) return {vals, idx};
    k = std::min<int64_t>(V, k * 4);
  }
}

// sorted: [N, C] probabilities in descending order -> bool keep mask of the nucleus: a token
// stays when the mass strictly before it is < p, so the set is the smallest one reaching p
// and the first token always stays.
at::Tensor nucleus_keep(const at::Tensor& sorted, double p) {
  at::Tensor before = sorted.cumsum(-1).sub_(sorted);
  return before < p;
}

Candidates candidates(const at::Tensor& logits, int64_t top_k, double top_p) {
  const int64_t V = logits.size(-1);
  Candidates c;
  if (top_k > 0 && top_k < V) {
    at::Tensor vals;
    std::tie(vals, c.index) = at::topk(logits, top_k, -1, true, true);
    c.probs = at::softmax(vals, -1);  // the renormalised top-k distribution (sorted)
  } else {
    c.probs = at::softmax(logits, -1);
  }
  if (top_p > 0.0 && top_p < 1.0) {
    if (!c.index.defined()) std::tie(c.probs, c.index) = top_mass(c.probs, top_p);
    c.probs = c.probs * nucleus_keep(c.probs, top_p);
  }
  return c;
}

at::Tensor rows(const at::Tensor& logits) {
  if (logits.dim() < 1 || logits.size(-1) < 1)
    throw Error(describe("sampling", "logits", "expected [..., V] with V >= 1"));
  return logits.reshape({-1, logits.size(-1)});
}

}  // namespace

at::Tensor apply_cfg(const at::Tensor& logits, double scale) {
  if (logits.dim() < 1 || logits.size(0) % 2)
    throw Error(describe("sampling", "logits", "classifier-free guidance needs an even batch [2B, ...] (cond, uncond)"));
  const int64_t B = logits.size(0) / 2;
  const at::Tensor cond = logits.narrow(0, 0, B), uncond = logits.narrow(0, B, B);
  return uncond + (cond - uncond) * scale;
}

at::Tensor top_k_filter(const at::Tensor& logits, int64_t k) {
  if (k <= 0 || k >= logits.size(-1)) return logits;
  auto [vals, idx] = at::topk(logits, k, -1, true, false);
  return at::full_like(logits, kNegInf).scatter_(-1, idx, vals);
}

at::Tensor top_p_filter(const at::Tensor& logits, double p) {
  if (p <= 0.0 || p >= 1.0) return logits;
  const at::Tensor x = rows(logits);
  auto [sorted, idx] = top_mass(at::softmax(x.to(at::kFloat), -1), p);
  at::Tensor keep = at::zeros(x.sizes(), x.options().dtype(at::kBool)).scatter_(-1, idx, nucleus_keep(sorted, p));
  return x.masked_fill(keep.logical_not(), kNegInf).view(logits.sizes());
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), gen_(at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(params.seed))) {}

at::Tensor Sampler::sample(const at::Tensor& logits) {
  std::vector<int64_t> shape(logits.sizes().begin(), logits.sizes().end() - 1);
  at::Tensor x = rows(logits);
  ++step_;
  // One reduction over [B*K, V] per step: corrupt weights (or an overflow) otherwise end in
  // an opaque multinomial error or, greedy, in silently constant codes.
  if (!at::isfinite(x).all().item<bool>())
    throw Error("generation: NaN/Inf logits at step " + std::to_string(step_) + " (weights corrupt? try --check-weights)");
  if (params_.greedy || params_.temperature <= 0.0) return x.argmax(-1).view(shape);
  x = x.to(at::kFloat);
  if (params_.temperature != 1.0) x = x / params_.temperature;
  Candidates c = candidates(x, params_.top_k, params_.top_p);
  // The draw happens on the CPU with the seeded generator: same seed, same codes, on any device.
  at::Tensor pick = at::multinomial(c.probs.to(at::kCPU), 1, /*replacement=*/false, gen_).to(x.device());
  at::Tensor tok = c.index.defined() ? c.index.gather(-1, pick) : pick;
  return tok.view(shape);
}

}  // namespace v2m::nn
