#include "nn/linear_kernel.h"

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "nn/cpu_kernels.h"
#include "nn/parallel.h"
#include "v2m/error.h"

// at::parallel_for below forks only if this file is compiled with OpenMP (see nn/parallel.h).
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "linear_kernel.cpp must be compiled with OpenMP: without it at::parallel_for runs serially here"
#endif

namespace v2m::nn {

WeightsDtype parse_weights_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32" || s == "f32") return WeightsDtype::FP32;
  if (s == "bf16" || s == "bfloat16") return WeightsDtype::BF16;
  if (s == "int8" || s == "qint8") return WeightsDtype::INT8;
  throw UsageError("unknown weights dtype '" + s + "' (use fp32, bf16 or int8)");
}

const char* weights_dtype_name(WeightsDtype d) {
  switch (d) {
    case WeightsDtype::FP32: return "fp32";
    case WeightsDtype::BF16: return "bf16";
    case WeightsDtype::INT8: return "int8";
  }
  return "?";
}

namespace {

// Debian's LibTorch has no fbgemm; oneDNN is the fast engine on x86, QNNPACK the fallback.
bool pick_qengine(at::QEngine* out) {
  const auto& engines = at::globalContext().supportedQEngines();
  for (at::QEngine e : {at::QEngine::ONEDNN, at::QEngine::FBGEMM, at::QEngine::QNNPACK})
    if (std::find(engines.begin(), engines.end(), e) != engines.end()) {
      *out = e;
      return true;
    }
  return false;
}

// Rows of x the matvec kernels take, or 0: CPU float input without autograd, <= kMaxRows rows.
int64_t matvec_rows(const at::Tensor& x, const at::Tensor& w) {
  if (!x.device().is_cpu() || x.scalar_type() != at::kFloat || x.dim() < 1 || x.size(-1) != w.size(1)) return 0;
  if (at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad())) return 0;
  const int64_t rows = x.numel() / std::max<int64_t>(1, x.size(-1));
  return rows >= 1 && rows <= kernels::kMaxRows ? rows : 0;
}

// Output rows per thread chunk: at least ~128 KB of weights, so small matrices stay on one
// thread (a fork costs more than they take). Each thread streams one contiguous share of the
// matrix: splitting it into smaller chunks that the threads take in turn (tried) broke the
// streams and cost 14% (layer products alone 29.5 against 25.9 ms a Model-S step).
int64_t matvec_grain(int64_t in, int64_t elem_bytes) { return std::max<int64_t>(4, (1 << 17) / (in * elem_bytes)); }

void check_matvec_rows(int64_t rows) {
  if (rows < 1 || rows > kernels::kMaxRows)
    throw Error(describe("bad input", "matvec", std::to_string(rows) + " rows (the kernel takes 1 to 4)"));
}

at::Tensor output_like(const at::Tensor& x, int64_t out) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = out;
  return at::empty(shape, x.options());
}

// x [rows, in] (rows <= kMaxRows) times a float or bf16 weight [out, in] through matvec_group.
// bf16: the rows are rounded to bf16 as oneDNN rounds them, sums are fp32.
at::Tensor small_product(const at::Tensor& x, const at::Tensor& w, int64_t rows) {
  at::Tensor xc = x.contiguous(), y = output_like(x, w.size(0));
  const MatvecView v{w.data_ptr(), w.size(0), w.size(1), w.scalar_type() == at::kBFloat16};
  float* yp = y.data_ptr<float>();
  matvec_group(&v, 1, xc.data_ptr<float>(), rows, &yp);
  return y;
}

class Fp32Kernel : public LinearKernel {
 public:
  // detach(): the kernel's own handle, so a caller that releases its parameter afterwards
  // (set_data to a placeholder) does not release the kernel's weight with it.
  explicit Fp32Kernel(const at::Tensor& w) : w_(w.to(at::kFloat).contiguous().detach()) {}
  at::Tensor forward(const at::Tensor& x) const override { return linear_small(x, w_); }
  MatvecView matvec_view() const override { return nn::matvec_view(w_); }
  int64_t bytes() const override { return w_.numel() * 4; }
  WeightsDtype dtype() const override { return WeightsDtype::FP32; }

 private:
  at::Tensor w_;
};

}  // namespace

// A decode step streams ~0.7 GB of weights and up to ~0.3 GB of cache: with 4 KB pages that is
// a TLB miss every 4 KB. Where the allocation fails, a plain at::empty.
at::Tensor empty_huge_pages(at::IntArrayRef sizes, at::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t d : sizes) numel *= d;
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes < kHuge) return at::empty(sizes, at::TensorOptions().dtype(dtype));
  const size_t padded = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = std::aligned_alloc(kHuge, padded);
  if (!p) return at::empty(sizes, at::TensorOptions().dtype(dtype));
  ::madvise(p, padded, MADV_HUGEPAGE);  // advice only: without THP the pages stay 4 KB
  return at::from_blob(p, sizes, [](void* q) { std::free(q); }, at::TensorOptions().dtype(dtype));
}

namespace {

// A float CPU weight rounded to bf16 by the AVX-512 kernel on every thread (LibTorch 1.13's
// Tensor::to(kBFloat16) runs one scalar loop: ~4 s for Model-S's decoder); else Tensor::to.
at::Tensor to_bf16(const at::Tensor& w) {
  if (!w.device().is_cpu() || w.scalar_type() != at::kFloat || !kernels::has_avx512())
    return w.to(at::kBFloat16).contiguous();  // a bf16 weight (a "mixed" file's mapping): as it is
  const at::Tensor wc = w.contiguous();
  at::Tensor out = empty_huge_pages(wc.sizes(), at::kBFloat16);
  const float* src = wc.data_ptr<float>();
  auto* dst = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
  at::parallel_for(0, wc.numel(), int64_t{1} << 16,
                   [&](int64_t b, int64_t e) { kernels::round_to_bf16(src + b, e - b, dst + b); });
  return out;
}

class Bf16Kernel : public LinearKernel {
 public:
  explicit Bf16Kernel(const at::Tensor& w) : w_(to_bf16(w).detach()) {}  // detach: as Fp32Kernel
  at::Tensor forward(const at::Tensor& x) const override {
    const int64_t rows = kernels::has_avx512_bf16() ? matvec_rows(x, w_) : 0;
    return rows ? small_product(x, w_, rows) : at::linear(x.to(at::kBFloat16), w_).to(x.scalar_type());
  }
  MatvecView matvec_view() const override {
    if (!kernels::has_avx512_bf16()) return {};
    return {w_.data_ptr(), w_.size(0), w_.size(1), true};
  }
  int64_t bytes() const override { return w_.numel() * 2; }
  WeightsDtype dtype() const override { return WeightsDtype::BF16; }

 private:
  at::Tensor w_;
};

class Int8Kernel : public LinearKernel {
 public:
  Int8Kernel(const at::Tensor& w, at::QEngine engine)
      : out_(w.size(0)), in_(w.size(1)), reduce_range_(!kernels::has_int8_dot()) {
    at::Tensor wf = w.to(at::kFloat).contiguous();
    // Symmetric per output channel: zero point 0, scale = max |w| / 127 (no clipping).
    at::Tensor scales = (wf.abs().amax(1).to(at::kDouble) / 127.0).clamp_min(1e-12);
    at::Tensor zps = at::zeros({out_}, at::kLong);
    at::Tensor q = at::quantize_per_channel(wf, scales, zps, 0, at::kQInt8);
    auto& ctx = at::globalContext();
    const at::QEngine before = ctx.qEngine();
    ctx.setQEngine(engine);
    try {
      static auto prepack = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("quantized::linear_prepack", "")
                                .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
      packed_ = prepack.call(q, c10::nullopt);
    } catch (...) {
      ctx.setQEngine(before);
      throw;
    }
    ctx.setQEngine(before);
  }
  at::Tensor forward(const at::Tensor& x) const override {
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    at::Tensor x2 = x.to(at::kFloat).reshape({-1, in_}).contiguous();
    // 7-bit activations where the CPU has no int8 dot product: 8-bit pairs would overflow
    // the int16 partial sums (on an AVX2-only EPYC the test decoder's logits then had cosine
    // 0.988 to fp32 and 78% top-1 agreement). PyTorch's fbgemm observers reduce the range too.
    at::Tensor y = packed_->apply_dynamic(x2, reduce_range_);
    shape.back() = out_;
    return y.view(shape).to(x.scalar_type());
  }
  int64_t bytes() const override { return out_ * in_ + out_ * 8; }
  WeightsDtype dtype() const override { return WeightsDtype::INT8; }

 private:
  int64_t out_, in_;
  bool reduce_range_;
  c10::intrusive_ptr<LinearPackedParamsBase> packed_;
};

}  // namespace

WeightsDtype default_weights_dtype() {
  static const WeightsDtype d = [] {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("flags", 0) == 0)
        return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos
                   ? WeightsDtype::BF16
                   : WeightsDtype::FP32;
    return WeightsDtype::FP32;
  }();
  return d;
}

bool weights_dtype_supported(WeightsDtype d) {
  if (d != WeightsDtype::INT8) return true;
  at::QEngine e;
  return pick_qengine(&e);
}

at::Tensor linear_small(const at::Tensor& x, const at::Tensor& weight) {
  const int64_t rows = kernels::has_avx512() && weight.dim() == 2 && weight.scalar_type() == at::kFloat &&
                               weight.device().is_cpu() && weight.is_contiguous()
                           ? matvec_rows(x, weight)
                           : 0;
  return rows ? small_product(x, weight, rows) : at::linear(x, weight);
}

void LinearKernel::matvec(const float* x, int64_t rows, float* y) const {
  const MatvecView v = matvec_view();
  if (!v.w) throw Error(describe("no matvec kernel", weights_dtype_name(dtype()), "this weight format has none on this CPU"));
  matvec_group(&v, 1, x, rows, &y);
}

MatvecView matvec_view(const at::Tensor& weight) {
  if (!kernels::has_avx512() || weight.dim() != 2 || weight.scalar_type() != at::kFloat || !weight.device().is_cpu() ||
      !weight.is_contiguous())
    return {};
  return {weight.data_ptr(), weight.size(0), weight.size(1), false};
}

void matvec_group(const MatvecView* v, int n, const float* x, int64_t rows, float* const* ys) {
  check_matvec_rows(rows);
  if (n < 1) return;
  const int64_t in = v[0].in;
  const bool bf16 = v[0].bf16;
  int64_t total = 0;
  for (int i = 0; i < n; ++i) {
    if (!v[i].w || v[i].in != in || v[i].bf16 != bf16)
      throw Error(describe("bad input", "matvec group", "every weight needs a kernel, one dtype and one width"));
    total += v[i].out;
  }
  const uint16_t* xb = nullptr;
  if (bf16) {  // the input rounded once for all the products
    thread_local std::vector<uint16_t> buf;  // grows to the widest input once, then reused
    if (static_cast<int64_t>(buf.size()) < rows * in) buf.resize(static_cast<size_t>(rows * in));
    kernels::round_to_bf16(x, rows * in, buf.data());
    xb = buf.data();
  }
  // Rows [b, e) of the concatenation, matrix by matrix.
  auto run = [&](int64_t b, int64_t e) {
    int64_t first = 0;
    for (int i = 0; i < n && b < e; first += v[i].out, ++i) {
      const int64_t lo = std::max(b, first), hi = std::min(e, first + v[i].out);
      if (lo >= hi) continue;
      if (bf16)
        kernels::matvec_bf16(static_cast<const uint16_t*>(v[i].w), in, xb, rows, ys[i], v[i].out, lo - first, hi - first);
      else
        kernels::matvec_f32(static_cast<const float*>(v[i].w), in, x, rows, ys[i], v[i].out, lo - first, hi - first);
    }
  };
  at::parallel_for(0, total, matvec_grain(in, bf16 ? 2 : 4), run);
}

namespace {
bool fits_attend_kernel(const at::Tensor& k_cache, const at::Tensor& v_cache, int64_t len) {
  const auto kv = k_cache.scalar_type();
  return k_cache.dim() == 4 && k_cache.device().is_cpu() && (kv == at::kFloat || kv == at::kBFloat16) &&
         v_cache.scalar_type() == kv && k_cache.is_contiguous() && v_cache.is_contiguous() &&
         k_cache.sizes() == v_cache.sizes() && len >= 1 && len <= k_cache.size(2) &&
         !(at::GradMode::is_enabled() && (k_cache.requires_grad() || v_cache.requires_grad()));
}
}  // namespace

bool attend_step(const float* qp, const at::Tensor& k_cache, const at::Tensor& v_cache, int64_t len, const float* bias,
                 int64_t bias_stride, float* op) {
  if (!fits_attend_kernel(k_cache, v_cache, len)) return false;
  const int64_t B = k_cache.size(0), H = k_cache.size(1), cap = k_cache.size(2), Dh = k_cache.size(3);
  const bool f32 = k_cache.scalar_type() == at::kFloat;
  const void *kp = k_cache.data_ptr(), *vp = v_cache.data_ptr();
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(Dh)));
  at::parallel_for(0, B * H, 1, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < len) scores.resize(static_cast<size_t>(len));
    if (f32)
      kernels::attend_one_f32(qp, static_cast<const float*>(kp), static_cast<const float*>(vp), cap, len, Dh, scale, op,
                              scores.data(), b, e, bias, H, bias_stride);
    else
      kernels::attend_one_bf16(qp, static_cast<const uint16_t*>(kp), static_cast<const uint16_t*>(vp), cap, len, Dh,
                               scale, op, scores.data(), b, e, bias, H, bias_stride);
  });
  return true;
}

at::Tensor attend_cached_step(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache, int64_t len,
                              const at::Tensor& bias) {
  if (q.dim() != 4 || q.size(2) != 1 || !q.device().is_cpu() || q.scalar_type() != at::kFloat ||
      !fits_attend_kernel(k_cache, v_cache, len) || q.size(0) != k_cache.size(0) || q.size(1) != k_cache.size(1) ||
      q.size(3) != k_cache.size(3) || (at::GradMode::is_enabled() && q.requires_grad()))
    return {};
  const int64_t B = q.size(0), H = q.size(1), Dh = q.size(3);
  at::Tensor b;
  if (bias.defined()) {
    if (bias.scalar_type() != at::kFloat || !bias.device().is_cpu() || bias.numel() % B != 0 || bias.numel() / B < len)
      return {};
    b = bias.contiguous();
  }
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty({B, 1, H * Dh}, q.options());  // [B, H, Dh] memory order = [B, 1, H Dh]
  attend_step(qc.data_ptr<float>(), k_cache, v_cache, len, b.defined() ? b.data_ptr<float>() : nullptr,
              b.defined() ? b.numel() / B : 0, out.data_ptr<float>());
  return out;
}

int kernel_parallel_threads() {
  std::atomic<uint64_t> seen{0};
  const int64_t n = std::min<int64_t>(at::get_num_threads(), 64);
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) { seen |= uint64_t{1} << (at::get_thread_num() % 64); });
  return __builtin_popcountll(seen.load());
}

std::shared_ptr<LinearKernel> make_linear_kernel(const at::Tensor& weight, WeightsDtype dtype) {
  if (weight.dim() != 2) throw Error(describe("bad weight", "linear kernel", "expected [out, in]"));
  at::NoGradGuard no_grad;
  switch (dtype) {
    case WeightsDtype::FP32: return std::make_shared<Fp32Kernel>(weight);
    case WeightsDtype::BF16: return std::make_shared<Bf16Kernel>(weight);
    case WeightsDtype::INT8: {
      at::QEngine e;
      if (!pick_qengine(&e))
        throw Error(describe("cannot use int8 weights", "LibTorch", "this build has no quantized CPU engine"));
      return std::make_shared<Int8Kernel>(weight, e);
    }
  }
  throw Error("unknown weights dtype");
}

}  // namespace v2m::nn
