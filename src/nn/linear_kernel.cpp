#include "nn/linear_kernel.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "v2m/error.h"

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

class Fp32Kernel : public LinearKernel {
 public:
  explicit Fp32Kernel(const at::Tensor& w) : w_(w.to(at::kFloat).contiguous()) {}
  at::Tensor forward(const at::Tensor& x) const override { return at::linear(x, w_); }
  int64_t bytes() const override { return w_.numel() * 4; }
  WeightsDtype dtype() const override { return WeightsDtype::FP32; }

 private:
  at::Tensor w_;
};

class Bf16Kernel : public LinearKernel {
 public:
  explicit Bf16Kernel(const at::Tensor& w) : w_(w.to(at::kBFloat16).contiguous()) {}
  at::Tensor forward(const at::Tensor& x) const override {
    return at::linear(x.to(at::kBFloat16), w_).to(x.scalar_type());
  }
  int64_t bytes() const override { return w_.numel() * 2; }
  WeightsDtype dtype() const override { return WeightsDtype::BF16; }

 private:
  at::Tensor w_;
};

class Int8Kernel : public LinearKernel {
 public:
  Int8Kernel(const at::Tensor& w, at::QEngine engine) : out_(w.size(0)), in_(w.size(1)) {
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
    at::Tensor y = packed_->apply_dynamic(x2, /*reduce_range=*/false);
    shape.back() = out_;
    return y.view(shape).to(x.scalar_type());
  }
  int64_t bytes() const override { return out_ * in_ + out_ * 8; }
  WeightsDtype dtype() const override { return WeightsDtype::INT8; }

 private:
  int64_t out_, in_;
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
