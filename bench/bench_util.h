// Shared helpers of the benchmark executables (header-only, no LibTorch in the interface
// except the triad, which runs on LibTorch's thread pool like the models do).
#pragma once

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <vector>

namespace v2m::bench {

// As the CLI (tools/v2m/main.cpp): libgomp reads OMP_WAIT_POLICY when it loads, before main,
// so set PASSIVE and re-exec once; spinning OpenMP workers fight OpenBLAS's threads on few
// cores and make every matmul several times slower.
inline void passive_openmp(char** argv) {
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::setenv("GOMP_SPINCOUNT", "30000", 0);  // a short spin before sleeping, as the CLI
    ::execv("/proc/self/exe", argv);  // returns only on failure: carry on
  }
}

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

}  // namespace v2m::bench
