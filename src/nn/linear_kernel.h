// Inference-only weight formats for the bias-free linears of the MusicGen decoder.
// A decoder step at batch 2 is a chain of matrix-vector products, so its time is the bytes
// of weights it streams: storing them in 16 or 8 bits cuts the step time in proportion.
//   fp32: at::linear on the float weight (OpenBLAS)
//   bf16: at::linear on bf16 weight and bf16 input (oneDNN's AVX-512 bf16 GEMM), float out
//   int8: per-output-channel symmetric int8 weights prepacked for quantized::linear_dynamic
//         (activations quantized per call, int32 accumulation) on the oneDNN engine
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

namespace v2m::nn {

enum class WeightsDtype { FP32, BF16, INT8 };

// "fp32"/"float32", "bf16"/"bfloat16", "int8"/"qint8"; throws v2m::UsageError otherwise.
WeightsDtype parse_weights_dtype(const std::string& s);
const char* weights_dtype_name(WeightsDtype d);
// The default for CPU inference: bf16 where the CPU multiplies bf16 natively (AVX-512 BF16 or
// AMX: half the bytes of fp32 at logits cosine > 0.9999, see bench_decoder), else fp32.
WeightsDtype default_weights_dtype();
// Whether this LibTorch build and CPU can run `d` (int8 needs a oneDNN or QNNPACK engine).
bool weights_dtype_supported(WeightsDtype d);

// A weight [out, in] converted once to its storage format.
class LinearKernel {
 public:
  virtual ~LinearKernel() = default;
  // x: [..., in] float -> [..., out] float
  virtual at::Tensor forward(const at::Tensor& x) const = 0;
  virtual int64_t bytes() const = 0;  // bytes of the stored weight
  virtual WeightsDtype dtype() const = 0;
};

// Copies/quantizes `weight` (float [out, in]); the caller may release the float weight.
std::shared_ptr<LinearKernel> make_linear_kernel(const at::Tensor& weight, WeightsDtype dtype);

}  // namespace v2m::nn
