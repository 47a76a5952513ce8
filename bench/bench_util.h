// Shared helpers of the benchmark executables (header-only, no LibTorch in the interface
// except the triad, which runs on LibTorch's thread pool like the models do).
#pragma once

#include <ATen/Parallel.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <vector>

#include "v2m/runtime.h"

namespace v2m::bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double best_of(int reps, const std::function<void()>& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

// STREAM-like triad a = b + s c over 3 x `mib` MiB (far beyond the caches) on LibTorch's
// threads; returns GB/s counting 2 reads + 1 write per element (best of `reps`).
inline double triad_gbs(int64_t mib = 256, int reps = 5) {
  const int64_t n = (mib << 20) / static_cast<int64_t>(sizeof(float));
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  auto triad = [&] {
    at::parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
    });
  };
  triad();
  const double t = best_of(reps, triad);
  volatile float sink = a[n / 2];
  (void)sink;
  return 3.0 * static_cast<double>(n) * sizeof(float) / t / 1e9;
}

struct FreshWrite {
  double first_gbs = 0;   // writing `mib` MiB of freshly allocated memory (page faults, zeroing)
  double again_gbs = 0;   // writing the same memory again (no faults): the write bandwidth
};

// What converting weights at load pays: writing memory the process has just allocated, on
// 2 MB transparent huge pages as nn::empty_huge_pages allocates them, on LibTorch's threads.
// The first write takes the page faults and the kernel's zeroing; in a VM whose host reclaims
// the guest's free pages (free page reporting), also the host backing them again.
inline FreshWrite fresh_write_gbs(int64_t mib = 1024) {
  const size_t bytes = static_cast<size_t>(mib) << 20;
  void* p = std::aligned_alloc(size_t{2} << 20, bytes);
  if (!p) return {};
  ::madvise(p, bytes, MADV_HUGEPAGE);
  auto* c = static_cast<unsigned char*>(p);
  auto write = [&](int v) {
    at::parallel_for(0, static_cast<int64_t>(bytes), int64_t{1} << 21,
                     [&](int64_t lo, int64_t hi) { std::memset(c + lo, v, static_cast<size_t>(hi - lo)); });
  };
  FreshWrite r;
  double t0 = now_s();
  write(1);
  r.first_gbs = static_cast<double>(bytes) / (now_s() - t0) / 1e9;
  r.again_gbs = static_cast<double>(bytes) / best_of(3, [&] { write(2); }) / 1e9;
  std::free(p);
  return r;
}

}  // namespace v2m::bench
