// Hand-written CPU kernels for the decode loop's memory-bound shapes: a decoder step at
// batch 2 (CFG) multiplies every weight matrix by 1-4 vectors and attends one query over the
// KV cache. Library GEMMs pack and block for large M; here each weight row is streamed once
// and dotted with the few input rows while it is in registers, so a step runs at the
// memory bandwidth. LibTorch-free: callers pass raw pointers and split rows across threads.
//
// All kernels take row ranges [row_begin, row_end) of the output so a caller can split the
// work with at::parallel_for; they never allocate.
#pragma once

#include <cstdint>

namespace v2m::nn::kernels {

// Largest number of input rows the matrix-vector kernels take (more: use a GEMM).
constexpr int64_t kMaxRows = 4;

// What this CPU runs (cpuid; the OS-enabled AVX-512 state included).
bool has_avx512();       // AVX-512 F + BW (the fp32 kernels, bf16 <-> fp32 conversion)
bool has_avx512_bf16();  // AVX-512 BF16 dot products (the bf16 weight kernel)
// An int8 dot-product instruction (AVX-512 VNNI or AVX-VNNI). Without one, x86 int8 GEMMs
// sum u8 x s8 pairs in saturating int16 (vpmaddubsw), so activations must use 7 bits.
bool has_int8_dot();

// Rounds n floats to bf16 (round to nearest even; NaN stays NaN): the input side of the
// bf16 kernel, as oneDNN rounds activations.
void round_to_bf16(const float* x, int64_t n, uint16_t* out);

// y[m, r] = sum_k x[m, k] * w[r, k] for m < rows (1..kMaxRows), r in [row_begin, row_end).
// w: [*, K] row-major (row stride K); x: [rows, K] (row stride K); y: row stride ldy.
// bf16: w and x bf16 (x from round_to_bf16), fp32 accumulation; needs has_avx512_bf16().
void matvec_bf16(const uint16_t* w, int64_t K, const uint16_t* x, int64_t rows, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end);
// fp32: needs has_avx512().
void matvec_f32(const float* w, int64_t K, const float* x, int64_t rows, float* y, int64_t ldy,
                int64_t row_begin, int64_t row_end);

// One query per (batch, head) over the first `len` cached keys (a decode step):
//   out[bh] = softmax(scale * K[bh, :len] q[bh] + bias[b]) V[bh, :len]
// q, out: [BH, Dh] fp32; k, v: [BH, capacity, Dh] (cache layout, row stride Dh);
// scratch: `len` floats per call, for scores. Pairs bh in [bh_begin, bh_end). bias: null, or
// an additive score per key for batch row b = bh / heads at bias + b * bias_stride (a
// cross-attention mask: 0 to keep, the float lowest to drop; all dropped = uniform weights,
// as softmax gives). Dh % 16 == 0 and has_avx512() use AVX-512, anything else a portable loop.
void attend_one_f32(const float* q, const float* k, const float* v, int64_t capacity, int64_t len, int64_t dh,
                    float scale, float* out, float* scratch, int64_t bh_begin, int64_t bh_end,
                    const float* bias = nullptr, int64_t heads = 1, int64_t bias_stride = 0);
// The same over a bf16 cache (half the bytes per step; fp32 arithmetic).
void attend_one_bf16(const float* q, const uint16_t* k, const uint16_t* v, int64_t capacity, int64_t len, int64_t dh,
                     float scale, float* out, float* scratch, int64_t bh_begin, int64_t bh_end,
                     const float* bias = nullptr, int64_t heads = 1, int64_t bias_stride = 0);

// The fused decode step's elementwise work (nn/musicgen_decoder.cpp), on a few rows of width n:
// y[r] = (x[r] - mean) / sqrt(var + eps) * w + b per row (biased variance, as LayerNorm;
// sums in double); y may be x.
void layer_norm_rows(const float* x, int64_t rows, int64_t n, const float* w, const float* b, double eps, float* y);
// x[i] += y[i] for i < n.
void add_into(float* x, const float* y, int64_t n);

}  // namespace v2m::nn::kernels
