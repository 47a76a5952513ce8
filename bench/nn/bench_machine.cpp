// Machine limits that the other benchmarks are compared against: streaming memory
// bandwidth (STREAM-like triad over arrays far larger than the caches, on LibTorch's
// threads) and sgemm GFLOP/s through LibTorch's BLAS. JSON on stdout.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <functional>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double best_of(int reps, const std::function<void()>& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

}  // namespace

int main(int, char** argv) {
  v2m::bench::passive_openmp(argv);
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  // Triad a = b + s*c over 3 x 256 MiB: reads 2 arrays, writes 1.
  const int64_t n = 64ll << 20;
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  const float s = 3.0f;
  auto triad = [&] {
    at::parallel_for(0, n, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
    });
  };
  triad();
  const double t_triad = best_of(5, triad);
  const double bw = 3.0 * n * sizeof(float) / t_triad / 1e9;

  const int64_t m = 2048;
  auto A = at::randn({m, m}), B = at::randn({m, m});
  at::mm(A, B);
  const double t_mm = best_of(5, [&] { at::mm(A, B); });
  const double gflops = 2.0 * m * m * m / t_mm / 1e9;

  std::printf("{\n  \"bench\": \"machine\",\n  \"threads\": %d,\n  \"triad_bandwidth_gbs\": %.2f,\n"
              "  \"sgemm_2048_gflops\": %.1f\n}\n",
              threads, bw, gflops);
  return a[7] == 7.0f ? 0 : 0;
}
