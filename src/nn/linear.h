// nn::Linear: torch::nn::Linear (same parameter names, same random init, same forward) whose
// random init can be skipped. Loading a model from a weights file otherwise fills every weight
// once with random numbers only to replace it: for Model-S that is ~2 GB of page faults and
// uniform_ before the mmap'd weights are swapped in (the bulk of its load time).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/pimpl.h>

namespace v2m::nn {

struct LinearImpl : torch::nn::Cloneable<LinearImpl> {
  LinearImpl(int64_t in_features, int64_t out_features)
      : LinearImpl(torch::nn::LinearOptions(in_features, out_features)) {}
  explicit LinearImpl(const torch::nn::LinearOptions& options);

  // Registers weight [out, in] and bias [out] (or an undefined bias), then reset_parameters()
  // unless a SkipInitGuard is alive on this thread.
  void reset() override;
  // As torch::nn::LinearImpl: kaiming_uniform_(a = sqrt(5)) weight, U(+-1/sqrt(fan_in)) bias,
  // drawing the same random numbers, so seeded random models are unchanged.
  void reset_parameters();
  // x: [..., in] -> [..., out]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::LinearOptions options;
  at::Tensor weight;
  at::Tensor bias;
};
TORCH_MODULE(Linear);

// While one is alive, nn::Linear modules constructed on this thread leave their parameters
// uninitialised (at::empty, no pages touched). Only for code that then assigns every
// parameter from a file (model::load_model, whose load_into rejects a missing tensor).
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

 private:
  bool prev_;
};

bool skip_init_active();

}  // namespace v2m::nn
