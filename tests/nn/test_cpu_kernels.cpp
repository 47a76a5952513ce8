// The decode loop's streaming kernels (nn/cpu_kernels.h) and their LibTorch wrappers
// (linear_small, the bf16 weight kernel, attend_cached_step) against ATen references.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "nn/compat.h"
#include "nn/cpu_kernels.h"
#include "nn/linear_kernel.h"
#include "v2m/error.h"
#include "v2m/runtime.h"

using namespace v2m::nn;

namespace {

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

torch::Tensor bf16_bits(const torch::Tensor& x) {  // float -> bf16 via round_to_bf16, as int16 bits
  torch::Tensor xc = x.contiguous();
  torch::Tensor out = torch::empty(xc.sizes(), torch::kInt16);
  kernels::round_to_bf16(xc.data_ptr<float>(), xc.numel(), reinterpret_cast<uint16_t*>(out.data_ptr<int16_t>()));
  return out;
}

}  // namespace

TEST(CpuKernels, RoundToBf16MatchesTorchRounding) {
  torch::manual_seed(0);
  auto x = torch::randn({4099}) * 100;  // 256 AVX-512 vectors and a 3-float scalar tail
  // Ties: 1 + 2^-8 lies halfway between bf16 neighbours 1 and 1 + 2^-7 (rounds to even: 1);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6 (even: 1 + 2^-6).
  for (int64_t base : {int64_t(0), int64_t(4096)}) {  // in a vector and in the tail
    x[base] = 1.0f + std::ldexp(1.0f, -8);
    x[base + 1] = 1.0f + 3 * std::ldexp(1.0f, -8);
    x[base + 2] = std::numeric_limits<float>::infinity();
  }
  x[3] = -0.0f;
  x[4] = std::numeric_limits<float>::max();  // rounds up to infinity, as torch's does
  x[5] = -std::numeric_limits<float>::denorm_min();
  x[6] = std::numeric_limits<float>::quiet_NaN();
  x[7] = -std::numeric_limits<float>::signaling_NaN();
  auto ours = bf16_bits(x);
  auto ref = x.to(torch::kBFloat16).view(torch::kInt16);
  const auto nan = torch::isnan(x);
  EXPECT_TRUE(torch::equal(ours.masked_select(~nan), ref.masked_select(~nan)));
  auto back = ours.view(torch::kBFloat16).to(torch::kFloat);
  EXPECT_TRUE(torch::isnan(back[6]).item<bool>());
  EXPECT_TRUE(torch::isnan(back[7]).item<bool>());  // a signalling NaN stays a NaN, not infinity
  auto tail_nan = torch::tensor({std::numeric_limits<float>::quiet_NaN()});
  EXPECT_TRUE(std::isnan(bf16_bits(tail_nan).view(torch::kBFloat16).to(torch::kFloat).item<float>()));
}

TEST(CpuKernels, MatvecMatchesReferenceForEveryRowCountAndSplit) {
  if (!kernels::has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  torch::manual_seed(1);
  for (int64_t K : {16, 100, 300, 1024}) {  // every path: unrolled, single vectors, masked tail
    const int64_t N = 37;  // not a multiple of the 4-row blocks
    auto w = torch::randn({N, K});
    for (int64_t rows = 1; rows <= kernels::kMaxRows; ++rows) {
      auto x = torch::randn({rows, K});
      auto ref = torch::matmul(x.to(torch::kDouble), w.to(torch::kDouble).t());
      auto y = torch::empty({rows, N});
      // Two ranges with a seam inside a 4-row block: each output row is computed once.
      kernels::matvec_f32(w.data_ptr<float>(), K, x.data_ptr<float>(), rows, y.data_ptr<float>(), N, 0, 13);
      kernels::matvec_f32(w.data_ptr<float>(), K, x.data_ptr<float>(), rows, y.data_ptr<float>(), N, 13, N);
      EXPECT_LT(max_diff(y, ref), 1e-3) << "fp32 K " << K << " rows " << rows;
      if (!kernels::has_avx512_bf16()) continue;
      auto wb = bf16_bits(w), xb = bf16_bits(x);
      auto yb = torch::empty({rows, N});
      kernels::matvec_bf16(reinterpret_cast<const uint16_t*>(wb.data_ptr<int16_t>()), K,
                           reinterpret_cast<const uint16_t*>(xb.data_ptr<int16_t>()), rows, yb.data_ptr<float>(), N,
                           0, N);
      auto refb = torch::matmul(xb.view(torch::kBFloat16).to(torch::kDouble),
                                wb.view(torch::kBFloat16).to(torch::kDouble).t());
      EXPECT_LT(max_diff(yb, refb), 1e-3) << "bf16 K " << K << " rows " << rows;
    }
  }
}

TEST(CpuKernels, LinearSmallAndBf16KernelAgreeWithAtenLinear) {
  torch::manual_seed(2);
  torch::NoGradGuard ng;
  auto w = torch::randn({300, 256}) / 16;
  for (int64_t rows : {1, 2, 4, 7}) {  // 7: past the kernel, at::linear
    auto x = torch::randn({rows, 1, 256});
    auto ref = at::linear(x, w);
    auto y = linear_small(x, w);
    ASSERT_EQ(y.sizes(), ref.sizes());
    EXPECT_LT(max_diff(y, ref), 1e-4) << rows;
    auto k = make_linear_kernel(w, WeightsDtype::BF16);
    auto refb = at::linear(x.to(torch::kBFloat16), w.to(torch::kBFloat16)).to(torch::kFloat);
    auto yb = k->forward(x);
    ASSERT_EQ(yb.sizes(), refb.sizes());
    // Same rounding of both operands; only the summation order (and oneDNN's bf16 output
    // rounding) differ.
    EXPECT_LT(max_diff(yb, refb), 2e-2) << rows;
    EXPECT_LT(max_diff(yb, ref), 5e-2) << rows;
  }
  // With autograd the kernel steps aside (gradients flow through at::linear).
  auto wg = w.clone().requires_grad_(true);
  torch::AutoGradMode on(true);
  auto yg = linear_small(torch::randn({2, 256}), wg);
  EXPECT_TRUE(yg.requires_grad());
}

// Several products of one input in one fork (a step's q, k and v): the threads split the
// matrices' rows as one range, so shares start and end inside matrices and straddle their
// boundaries; every output equals its own product. Mixed dtypes or widths are refused.
TEST(CpuKernels, MatvecGroupEqualsEachProduct) {
  if (!kernels::has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  const int64_t in = 256;
  std::vector<torch::Tensor> ws = {torch::randn({300, in}), torch::randn({77, in}), torch::randn({401, in})};
  for (int64_t rows : {1, 2, 4}) {
    auto x = torch::randn({rows, in});
    std::vector<torch::Tensor> ys;
    std::vector<MatvecView> views;
    std::vector<float*> outs;
    for (const auto& w : ws) {
      views.push_back(matvec_view(w));
      ys.push_back(torch::full({rows, w.size(0)}, NAN));
      outs.push_back(ys.back().data_ptr<float>());
    }
    matvec_group(views.data(), 3, x.data_ptr<float>(), rows, outs.data());
    for (size_t i = 0; i < ws.size(); ++i) EXPECT_LT(max_diff(ys[i], at::linear(x, ws[i])), 1e-4) << rows << " " << i;
    if (kernels::has_avx512_bf16()) {
      std::vector<std::shared_ptr<LinearKernel>> ks;
      for (size_t i = 0; i < ws.size(); ++i) {
        ks.push_back(make_linear_kernel(ws[i], WeightsDtype::BF16));
        views[i] = ks.back()->matvec_view();
        ys[i].fill_(NAN);
      }
      matvec_group(views.data(), 3, x.data_ptr<float>(), rows, outs.data());
      for (size_t i = 0; i < ws.size(); ++i) {
        auto ref = at::matmul(x.to(torch::kBFloat16).to(torch::kDouble), ws[i].to(torch::kBFloat16).to(torch::kDouble).t());
        EXPECT_LT(max_diff(ys[i], ref), 1e-3) << rows << " " << i;
      }
      const MatvecView mixed[2] = {matvec_view(ws[0]), ks[1]->matvec_view()};
      EXPECT_THROW(matvec_group(mixed, 2, x.data_ptr<float>(), rows, outs.data()), v2m::Error);
    }
  }
  auto narrow = torch::randn({8, 128});
  const MatvecView widths[2] = {matvec_view(ws[0]), matvec_view(narrow)};
  auto x = torch::randn({1, in});
  std::vector<float> y0(300), y1(8);
  float* const outs[2] = {y0.data(), y1.data()};
  EXPECT_THROW(matvec_group(widths, 2, x.data_ptr<float>(), 1, outs), v2m::Error);
}

TEST(CpuKernels, CachedStepAttentionMatchesSoftmaxAttention) {
  torch::manual_seed(3);
  torch::NoGradGuard ng;
  for (int64_t dh : {64, 24}) {  // 64: the AVX-512 path; 24: the portable loop
    const int64_t B = 2, H = 3, cap = 40;
    auto kc = torch::randn({B, H, cap, dh}), vc = torch::randn({B, H, cap, dh});
    auto q = torch::randn({B, 1, H, dh}).transpose(1, 2);  // [B, H, 1, Dh] as heads_of makes it
    for (int64_t len : {1, 17, 40}) {
      auto out = attend_cached_step(q, kc, vc, len);
      ASSERT_TRUE(out.defined());
      ASSERT_EQ(out.sizes(), (std::vector<int64_t>{B, 1, H * dh}));
      auto ref = attention(q, kc.narrow(2, 0, len), vc.narrow(2, 0, len), {}, false).transpose(1, 2).reshape({B, 1, -1});
      EXPECT_LT(max_diff(out, ref), 1e-5) << "dh " << dh << " len " << len;
    }
  }
  // Shapes the kernel does not take come back undefined (the caller uses attention()).
  auto kc = torch::randn({1, 2, 8, 16});
  EXPECT_FALSE(attend_cached_step(torch::randn({1, 2, 2, 16}), kc, kc, 4).defined());  // two queries
  EXPECT_FALSE(attend_cached_step(torch::randn({1, 2, 1, 16}), kc, kc, 9).defined());  // past capacity
  EXPECT_FALSE(
      attend_cached_step(torch::randn({1, 2, 1, 16}).to(torch::kDouble), kc.to(torch::kDouble), kc.to(torch::kDouble), 4)
          .defined());
}

TEST(CpuKernels, StepAttentionWithAMaskBiasMatchesMaskedSoftmaxAttention) {
  // The cross-attention of a decode step: batch row 0 with its last keys masked, row 1 (CFG's
  // null condition) with every key masked, which softmax turns into uniform weights.
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  for (int64_t dh : {64, 24}) {
    const int64_t B = 2, H = 3, S = 21;
    auto k = torch::randn({B, H, S, dh}), v = torch::randn({B, H, S, dh});
    auto q = torch::randn({B, H, 1, dh});
    auto keep = torch::ones({B, S});
    keep[0].slice(0, 15).fill_(0);
    keep[1].fill_(0);
    const float lowest = std::numeric_limits<float>::lowest();
    auto bias = (1 - keep).masked_fill((1 - keep).to(torch::kBool), lowest).contiguous();  // [B, S]
    auto out = torch::empty({B, H, dh});
    std::vector<float> scratch(S);
    kernels::attend_one_f32(q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), S, S, dh,
                            1.0f / std::sqrt(static_cast<float>(dh)), out.data_ptr<float>(), scratch.data(), 0, B * H,
                            bias.data_ptr<float>(), H, S);
    auto ref = attention(q, k, v, bias.view({B, 1, 1, S}), false).view({B, H, dh});
    EXPECT_LT(max_diff(out, ref), 1e-5) << "dh " << dh;
    EXPECT_LT(max_diff(out[1], v[1].mean(1)), 1e-5) << "all keys masked: the mean of V";
  }
}

TEST(CpuKernels, Bf16CacheStepAttentionMatchesAttentionOnTheRoundedCache) {
  torch::manual_seed(4);
  torch::NoGradGuard ng;
  for (int64_t dh : {64, 24}) {
    const int64_t B = 2, H = 2, cap = 33, len = 30;
    auto kc = torch::randn({B, H, cap, dh}).to(torch::kBFloat16), vc = torch::randn({B, H, cap, dh}).to(torch::kBFloat16);
    auto q = torch::randn({B, H, 1, dh});
    auto out = attend_cached_step(q, kc, vc, len);
    ASSERT_TRUE(out.defined());
    auto ref = attention(q, kc.narrow(2, 0, len).to(torch::kFloat), vc.narrow(2, 0, len).to(torch::kFloat), {}, false)
                   .transpose(1, 2)
                   .reshape({B, 1, -1});
    EXPECT_LT(max_diff(out, ref), 1e-5) << "dh " << dh;
  }
}

// The caching CPU allocator (v2m/runtime.h): freed blocks of 1 MB and more come back for
// requests they fit closely; past the cap the oldest cached blocks make room; smaller
// tensors are not its business.
TEST(CpuAllocator, FreedLargeBlocksAreReusedAndTheOldestMakeRoomAtTheCap) {
  ::setenv("V2M_CPU_CACHE_MB", "64", 1);
  ASSERT_TRUE(v2m::use_caching_cpu_allocator());
  ::unsetenv("V2M_CPU_CACHE_MB");
  constexpr size_t MB = size_t{1} << 20;
  const auto floats = [](size_t mb) { return static_cast<int64_t>(mb * MB / sizeof(float)); };
  EXPECT_EQ(v2m::cpu_cache_stats().cap_bytes, 64 * MB);
  v2m::release_cached_cpu_memory();
  const auto s0 = v2m::cpu_cache_stats();

  void* first = nullptr;
  {
    torch::Tensor a = torch::empty({floats(16)});
    first = a.data_ptr();
    a.fill_(1.0);
  }
  EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 16 * MB);
  {
    // A little smaller: the same block, and it computes like any other.
    torch::Tensor b = torch::empty({floats(16) - 1000});
    EXPECT_EQ(b.data_ptr(), first);
    b.fill_(2.0);
    EXPECT_DOUBLE_EQ(b.sum().item<double>(), 2.0 * double(floats(16) - 1000));
    EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 0u);
  }
  {
    // Half the size would leave half the cached block unused: a new one.
    torch::Tensor c = torch::empty({floats(8)});
    EXPECT_NE(c.data_ptr(), first);
    EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 16 * MB);
  }
  EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 24 * MB);
  // 24 + 48 MB is over the cap: the oldest block (16 MB) goes, the 8 MB one stays.
  void* big_ptr = nullptr;
  {
    torch::Tensor big = torch::empty({floats(48)});
    big_ptr = big.data_ptr();
  }
  EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 56 * MB);
  { torch::Tensor huge = torch::empty({floats(80)}); }  // larger than the cap: never cached
  EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 56 * MB);
  {
    torch::Tensor d = torch::empty({floats(40)});  // fills the 48 MB block to 83%
    EXPECT_EQ(d.data_ptr(), big_ptr);
  }
  { torch::Tensor small = torch::empty({1000}); }  // below 1 MB: not the cache's
  const auto s1 = v2m::cpu_cache_stats();
  EXPECT_EQ(s1.hits - s0.hits, 2);    // b, d
  EXPECT_EQ(s1.misses - s0.misses, 4);  // a, c, big, huge
  v2m::release_cached_cpu_memory();
  EXPECT_EQ(v2m::cpu_cache_stats().cached_bytes, 0u);
}
