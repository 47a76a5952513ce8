#include "nn/cpu_kernels.h"

// GCC 12's AVX-512 intrinsics fill don't-care lanes from a self-initialised "undefined"
// register, which -W(maybe-)uninitialized reports at every inlined use (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace v2m::nn::kernels {

#define V2M_AVX512 __attribute__((target("avx512f,avx512bw")))
#define V2M_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

bool has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return ok;
}

bool has_avx512_bf16() {
  static const bool ok = has_avx512() && __builtin_cpu_supports("avx512bf16");
  return ok;
}

bool has_int8_dot() {
  static const bool ok = __builtin_cpu_supports("avx512vnni") || __builtin_cpu_supports("avxvnni");
  return ok;
}

namespace {

void round_to_bf16_portable(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it a (quiet) NaN
      out[i] = static_cast<uint16_t>((u >> 16) | 0x40u);
      continue;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    out[i] = static_cast<uint16_t>(u >> 16);
  }
}

// The same 16 floats at a time, bit for bit (integer arithmetic on the float bits).
V2M_AVX512 void round_to_bf16_avx512(const float* x, int64_t n, uint16_t* out) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), quiet = _mm512_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(x + i);
    const __m512i hi = _mm512_srli_epi32(u, 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs_mask), inf);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(hi, one))), 16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, quiet));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(r));
  }
  round_to_bf16_portable(x + i, n - i, out + i);
}

}  // namespace

void round_to_bf16(const float* x, int64_t n, uint16_t* out) {
  if (has_avx512())
    round_to_bf16_avx512(x, n, out);
  else
    round_to_bf16_portable(x, n, out);
}

namespace {

// The matrix-vector kernels read the weights front to back as one sequential stream: one
// weight row at a time (rows are contiguous), dotted with all R input rows while in
// registers, U vectors per iteration in independent accumulators, and every line
// prefetched into L2 kPrefetchBytes ahead (so the next rows are in flight while this one
// is summed). Reading four rows side by side instead makes four short streams per block,
// which the prefetchers do not ramp up on: 13 against 18-20 GB/s on one thread of this
// machine's AVX-512 EPYC, 23-25 against 28-32 GB/s on two (see the README's Performance).
// The main loops use plain loads only: with masked loads in them GCC stored every
// accumulator back to the stack each iteration, as if the load might read them.
constexpr int kUnroll = 4;  // the final sums below add exactly four accumulators
constexpr int64_t kPrefetchBytes = 4096;
static_assert(kUnroll == 4, "bf16_rows / f32_rows sum four accumulators");

template <int R>
V2M_AVX512_BF16 void bf16_rows(const uint16_t* w, int64_t K, const uint16_t* x, float* y, int64_t ldy, int64_t r0,
                               int64_t r1) {
  constexpr int64_t L = 32;  // bf16 per vector
  const int64_t full = K / (kUnroll * L) * (kUnroll * L), whole = K / L * L;
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = w + r * K;
    __m512 acc[R][kUnroll];
    for (int m = 0; m < R; ++m)
      for (int u = 0; u < kUnroll; ++u) acc[m][u] = _mm512_setzero_ps();
    for (int64_t k = 0; k < full; k += kUnroll * L) {
      for (int u = 0; u < kUnroll; ++u) {
        const uint16_t* p = wr + k + u * L;
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T1);
        const __m512bh wv = (__m512bh)_mm512_loadu_si512(p);
        for (int m = 0; m < R; ++m)
          acc[m][u] = _mm512_dpbf16_ps(acc[m][u], (__m512bh)_mm512_loadu_si512(x + m * K + k + u * L), wv);
      }
    }
    for (int64_t k = full; k < whole; k += L) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(wr + k);
      for (int m = 0; m < R; ++m) acc[m][0] = _mm512_dpbf16_ps(acc[m][0], (__m512bh)_mm512_loadu_si512(x + m * K + k), wv);
    }
    if (whole < K) {  // the last partial vector, masked
      const __mmask32 mask = static_cast<__mmask32>((1ull << (K - whole)) - 1);
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(mask, wr + whole);
      for (int m = 0; m < R; ++m)
        acc[m][0] = _mm512_dpbf16_ps(acc[m][0], (__m512bh)_mm512_maskz_loadu_epi16(mask, x + m * K + whole), wv);
    }
    for (int m = 0; m < R; ++m)
      y[m * ldy + r] = _mm512_reduce_add_ps(
          _mm512_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]), _mm512_add_ps(acc[m][2], acc[m][3])));
  }
}

// The same in fp32 (16 floats per vector).
template <int R>
V2M_AVX512 void f32_rows(const float* w, int64_t K, const float* x, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  constexpr int64_t L = 16;
  const int64_t full = K / (kUnroll * L) * (kUnroll * L), whole = K / L * L;
  for (int64_t r = r0; r < r1; ++r) {
    const float* wr = w + r * K;
    __m512 acc[R][kUnroll];
    for (int m = 0; m < R; ++m)
      for (int u = 0; u < kUnroll; ++u) acc[m][u] = _mm512_setzero_ps();
    for (int64_t k = 0; k < full; k += kUnroll * L) {
      for (int u = 0; u < kUnroll; ++u) {
        const float* p = wr + k + u * L;
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T1);
        const __m512 wv = _mm512_loadu_ps(p);
        for (int m = 0; m < R; ++m) acc[m][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * K + k + u * L), wv, acc[m][u]);
      }
    }
    for (int64_t k = full; k < whole; k += L) {
      const __m512 wv = _mm512_loadu_ps(wr + k);
      for (int m = 0; m < R; ++m) acc[m][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + m * K + k), wv, acc[m][0]);
    }
    if (whole < K) {  // the last partial vector, masked
      const __mmask16 mask = static_cast<__mmask16>((1u << (K - whole)) - 1);
      const __m512 wv = _mm512_maskz_loadu_ps(mask, wr + whole);
      for (int m = 0; m < R; ++m) acc[m][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, x + m * K + whole), wv, acc[m][0]);
    }
    for (int m = 0; m < R; ++m)
      y[m * ldy + r] = _mm512_reduce_add_ps(
          _mm512_add_ps(_mm512_add_ps(acc[m][0], acc[m][1]), _mm512_add_ps(acc[m][2], acc[m][3])));
  }
}

// e^x for x <= 0 (scores minus their maximum): 2^(x log2 e) split into 2^n 2^f, |f| <= 1/2,
// 2^f by its degree-6 Taylor polynomial (relative error ~1.2e-7, float's own).
V2M_AVX512 inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(1.5252734e-5f);
  for (float c : {1.5403530e-4f, 1.3333558e-3f, 9.6181291e-3f, 5.5504109e-2f, 2.4022651e-1f, 6.9314718e-1f, 1.0f})
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// 16 cache entries as floats: fp32 as is, bf16 widened (its bits are the top half of a float).
V2M_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
V2M_AVX512 inline __m512 load16(const uint16_t* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

template <typename T>
V2M_AVX512 void attend_one_avx512(const float* q, const T* k, const T* v, int64_t len, int64_t dh, float scale,
                                  const float* bias, float* out, float* s) {
  const int64_t chunks = dh / 16;
  __m512 qv[16];  // dh <= 256 on this path
  for (int64_t c = 0; c < chunks; ++c) qv[c] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * c), _mm512_set1_ps(scale));
  // The cache rows stream front to back; each line is prefetched kPrefetchBytes ahead, as in
  // the matvec kernels (the K and V passes are one short stream each per head).
  const char* kbytes = reinterpret_cast<const char*>(k);
  const char* vbytes = reinterpret_cast<const char*>(v);
  const int64_t row_bytes = dh * static_cast<int64_t>(sizeof(T));
  float mx = -INFINITY;
  for (int64_t t = 0; t < len; ++t) {
    const T* kt = k + t * dh;
    for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(kbytes + t * row_bytes + b + kPrefetchBytes, _MM_HINT_T1);
    __m512 acc = _mm512_mul_ps(qv[0], load16(kt));
    for (int64_t c = 1; c < chunks; ++c) acc = _mm512_fmadd_ps(qv[c], load16(kt + 16 * c), acc);
    s[t] = _mm512_reduce_add_ps(acc) + (bias ? bias[t] : 0.0f);
    mx = std::max(mx, s[t]);
  }
  // The V pass's first lines are requested now, so they arrive while the softmax computes.
  for (int64_t b = 0; b < std::min<int64_t>(kPrefetchBytes, len * row_bytes); b += 64) _mm_prefetch(vbytes + b, _MM_HINT_T1);
  const __m512 vmx = _mm512_set1_ps(mx);
  __m512 vsum = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 16 <= len; t += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(s + t), vmx));
    _mm512_storeu_ps(s + t, e);
    vsum = _mm512_add_ps(vsum, e);
  }
  if (t < len) {
    const __mmask16 m = static_cast<__mmask16>((1u << (len - t)) - 1);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + t), vmx));
    _mm512_mask_storeu_ps(s + t, m, e);
    vsum = _mm512_add_ps(vsum, _mm512_maskz_mov_ps(m, e));
  }
  const float inv = 1.0f / _mm512_reduce_add_ps(vsum);
  __m512 acc[16];
  for (int64_t c = 0; c < chunks; ++c) acc[c] = _mm512_setzero_ps();
  for (int64_t u = 0; u < len; ++u) {
    for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(vbytes + u * row_bytes + b + kPrefetchBytes, _MM_HINT_T1);
    const __m512 p = _mm512_set1_ps(s[u]);
    const T* vt = v + u * dh;
    for (int64_t c = 0; c < chunks; ++c) acc[c] = _mm512_fmadd_ps(p, load16(vt + 16 * c), acc[c]);
  }
  for (int64_t c = 0; c < chunks; ++c) _mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(acc[c], _mm512_set1_ps(inv)));
}

inline float to_float(float x) { return x; }
inline float to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <typename T>
void attend_one_portable(const float* q, const T* k, const T* v, int64_t len, int64_t dh, float scale,
                         const float* bias, float* out, float* s) {
  float mx = -INFINITY;
  for (int64_t t = 0; t < len; ++t) {
    float acc = 0.0f;
    for (int64_t d = 0; d < dh; ++d) acc += q[d] * to_float(k[t * dh + d]);
    s[t] = acc * scale + (bias ? bias[t] : 0.0f);
    mx = std::max(mx, s[t]);
  }
  float sum = 0.0f;
  for (int64_t t = 0; t < len; ++t) sum += (s[t] = std::exp(s[t] - mx));
  std::fill(out, out + dh, 0.0f);
  for (int64_t t = 0; t < len; ++t)
    for (int64_t d = 0; d < dh; ++d) out[d] += s[t] * to_float(v[t * dh + d]);
  for (int64_t d = 0; d < dh; ++d) out[d] /= sum;
}

template <typename T>
void attend_one(const float* q, const T* k, const T* v, int64_t capacity, int64_t len, int64_t dh, float scale,
                float* out, float* scratch, int64_t bh_begin, int64_t bh_end, const float* bias, int64_t heads,
                int64_t bias_stride) {
  const bool vec = has_avx512() && dh % 16 == 0 && dh <= 256;
  for (int64_t bh = bh_begin; bh < bh_end; ++bh) {
    const T* kb = k + bh * capacity * dh;
    const T* vb = v + bh * capacity * dh;
    const float* bb = bias ? bias + (bh / heads) * bias_stride : nullptr;
    if (vec)
      attend_one_avx512(q + bh * dh, kb, vb, len, dh, scale, bb, out + bh * dh, scratch);
    else
      attend_one_portable(q + bh * dh, kb, vb, len, dh, scale, bb, out + bh * dh, scratch);
  }
}

}  // namespace

void matvec_bf16(const uint16_t* w, int64_t K, const uint16_t* x, int64_t rows, float* y, int64_t ldy,
                 int64_t row_begin, int64_t row_end) {
  switch (rows) {
    case 1: return bf16_rows<1>(w, K, x, y, ldy, row_begin, row_end);
    case 2: return bf16_rows<2>(w, K, x, y, ldy, row_begin, row_end);
    case 3: return bf16_rows<3>(w, K, x, y, ldy, row_begin, row_end);
    case 4: return bf16_rows<4>(w, K, x, y, ldy, row_begin, row_end);
    default: break;
  }
}

void matvec_f32(const float* w, int64_t K, const float* x, int64_t rows, float* y, int64_t ldy,
                int64_t row_begin, int64_t row_end) {
  switch (rows) {
    case 1: return f32_rows<1>(w, K, x, y, ldy, row_begin, row_end);
    case 2: return f32_rows<2>(w, K, x, y, ldy, row_begin, row_end);
    case 3: return f32_rows<3>(w, K, x, y, ldy, row_begin, row_end);
    case 4: return f32_rows<4>(w, K, x, y, ldy, row_begin, row_end);
    default: break;
  }
}

void attend_one_f32(const float* q, const float* k, const float* v, int64_t capacity, int64_t len, int64_t dh,
                    float scale, float* out, float* scratch, int64_t bh_begin, int64_t bh_end, const float* bias,
                    int64_t heads, int64_t bias_stride) {
  attend_one(q, k, v, capacity, len, dh, scale, out, scratch, bh_begin, bh_end, bias, heads, bias_stride);
}

void attend_one_bf16(const float* q, const uint16_t* k, const uint16_t* v, int64_t capacity, int64_t len, int64_t dh,
                     float scale, float* out, float* scratch, int64_t bh_begin, int64_t bh_end, const float* bias,
                     int64_t heads, int64_t bias_stride) {
  attend_one(q, k, v, capacity, len, dh, scale, out, scratch, bh_begin, bh_end, bias, heads, bias_stride);
}

void layer_norm_rows(const float* x, int64_t rows, int64_t n, const float* w, const float* b, double eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i) sum += xr[i];
    const double mean = sum / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) sq += (xr[i] - mean) * (xr[i] - mean);
    const float inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n) + eps));
    const float m = static_cast<float>(mean);
    float* yr = y + r * n;
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) * inv * w[i] + b[i];
  }
}

void add_into(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace v2m::nn::kernels
