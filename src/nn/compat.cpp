#include "nn/compat.h"

#include <torch/version.h>

#include <cmath>
#include <limits>

namespace v2m::nn {

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, bool causal) {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  // SDPA's is_causal aligns top-left, which is wrong for a KV cache (Tq < Tk): only use
  // it for the cases where it means the same thing.
  if (!causal) {
    return at::scaled_dot_product_attention(
        q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt, 0.0, false);
  }
  if (!mask.defined() && q.size(2) == k.size(2)) {
    return at::scaled_dot_product_attention(q, k, v, c10::nullopt, 0.0, true);
  }
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)).mul_(scale);
  if (causal) {
    // Query i (of the last Tq positions) sees keys 0 .. Tk - Tq + i.
    const int64_t tq = q.size(2), tk = k.size(2);
    auto keep = at::ones({tq, tk}, q.options().dtype(at::kBool)).tril(tk - tq);
    scores.masked_fill_(keep.logical_not(), -std::numeric_limits<float>::infinity());
  }
  if (mask.defined()) scores.add_(mask);
  return at::matmul(at::softmax(scores, -1), v);
}

}  // namespace v2m::nn
