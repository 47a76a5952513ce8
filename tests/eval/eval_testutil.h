// Random weights for the embedding models that keep activations at scale (He-normal), so a
// random VGGish / CNN14 still answers differently to different audio. PyTorch's default
// init shrinks the deep stacks' outputs to their biases. bn0 standardises CNN14's dB input
// (silence -100 dB, tones near 0 dB). Floating tensors are stored as fp16 to halve the files
// (loading converts to the parameters' dtype).
#pragma once

#include <cmath>
#include <string>

#include "nn/state_dict.h"

namespace v2m::testutil {

inline void he_init(nn::TensorMap& s, bool half = true) {
  for (auto& [name, t] : s) {
    if (t.dim() >= 2 && name.find("weight") != std::string::npos)
      t = at::randn(t.sizes()) * std::sqrt(2.0 / static_cast<double>(t[0].numel()));
    if (name == "bn0.running_mean") t = at::full(t.sizes(), -50.0);
    if (name == "bn0.running_var") t = at::full(t.sizes(), 900.0);
    if (half && t.is_floating_point()) t = t.to(at::kHalf);
  }
}

}  // namespace v2m::testutil
