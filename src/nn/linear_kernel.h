// Inference-only weight formats for the bias-free linears of the MusicGen decoder.
// A decoder step at batch 2 is a chain of matrix-vector products, so its time is the bytes
// of weights it streams: storing them in 16 or 8 bits cuts the step time in proportion.
//   fp32: at::linear on the float weight (OpenBLAS); <= 4 rows: the AVX-512 matvec kernel
//   bf16: at::linear on bf16 weight and bf16 input (oneDNN's AVX-512 bf16 GEMM), float out;
//         <= 4 rows: the AVX-512 BF16 matvec kernel (same rounding of the input, fp32 sums)
//   int8: per-output-channel symmetric int8 weights prepacked for quantized::linear_dynamic
//         (activations quantized per call, int32 accumulation) on the oneDNN engine
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

namespace v2m::nn {

enum class WeightsDtype { FP32, BF16, INT8 };

// A weight as the streaming matvec kernels read it: rows [out, in] of fp32 or bf16, row-major.
// w null: no such kernel for this weight on this CPU.
struct MatvecView {
  const void* w = nullptr;
  int64_t out = 0, in = 0;
  bool bf16 = false;
};

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
  // The fused decode step's form: y [rows, out] = x [rows, in] W^T for 1..4 rows (x, y
  // contiguous float), into the caller's buffer, through the streaming matvec kernel split
  // over the threads. Only where has_matvec(): not int8, and the CPU has the kernel's ISA.
  virtual MatvecView matvec_view() const { return {}; }
  bool has_matvec() const { return matvec_view().w != nullptr; }
  void matvec(const float* x, int64_t rows, float* y) const;
};

// An uninitialised CPU tensor on 2 MB transparent huge pages where the kernel grants them
// (Debian's THP default is "madvise"): for the large buffers a decode step streams (weights,
// KV cache). Under 2 MB, a plain at::empty.
at::Tensor empty_huge_pages(at::IntArrayRef sizes, at::ScalarType dtype);

// Copies/quantizes `weight` (float [out, in]); the caller may release the float weight.
std::shared_ptr<LinearKernel> make_linear_kernel(const at::Tensor& weight, WeightsDtype dtype);

// x [..., in] times weight [out, in]^T, bias-free: a decode step's few rows (<= 4, no
// autograd, CPU, AVX-512) through the streaming matrix-vector kernel (nn/cpu_kernels.h),
// anything else through at::linear.
at::Tensor linear_small(const at::Tensor& x, const at::Tensor& weight);

// The view of a plain float weight [out, in] (an unconverted fp32 decoder): a contiguous float
// CPU tensor on an AVX-512 CPU, else w null.
MatvecView matvec_view(const at::Tensor& weight);
// ys[i] [rows, out_i] = x [rows, in] W_i^T for n weights of one dtype and width, in one fork:
// the threads split the n matrices' rows as one range, each streaming a contiguous share
// (q, k and v of a step share their input). Every view non-null; 1..4 rows.
void matvec_group(const MatvecView* views, int n, const float* x, int64_t rows, float* const* ys);

// One decode step of cached attention: q [B, H, 1, Dh] fp32 against the first `len` entries
// of k_cache/v_cache [B, H, capacity, Dh] fp32 or bf16 -> [B, 1, H * Dh]. The self-attention
// cache, or a window's cross-attention memory (len = S) with `bias`: an additive float score
// per key, [B, S] or any shape with B rows of S (the memory mask, additive_mask's form).
// Undefined when the inputs do not fit the kernel (not CPU, other dtypes, not contiguous,
// autograd): use attention().
at::Tensor attend_cached_step(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache, int64_t len,
                              const at::Tensor& bias = {});
// The same on raw buffers for the fused step: q, out [B, H * Dh]; bias null or B rows of
// bias_stride floats. False where the cache does not fit the kernel (as above).
bool attend_step(const float* q, const at::Tensor& k_cache, const at::Tensor& v_cache, int64_t len, const float* bias,
                 int64_t bias_stride, float* out);

}  // namespace v2m::nn
