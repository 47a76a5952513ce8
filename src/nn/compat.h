// LibTorch version differences live here (Debian's 1.13 CPU vs pip torch 2.x CUDA).
#pragma once

#include <ATen/ATen.h>
#include <optional>

namespace v2m::nn {

// softmax(q k^T * scale + mask) v.  q: [B, H, Tq, Dh], k/v: [B, H, Tk, Dh],
// mask: additive float mask broadcastable to [B, H, Tq, Tk] (or undefined).
// On LibTorch >= 2.0 this calls at::scaled_dot_product_attention (flash/mem-efficient
// kernels on CUDA); on 1.13 it is the explicit matmul-softmax-matmul.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const at::Tensor& mask, bool causal);

}  // namespace v2m::nn
