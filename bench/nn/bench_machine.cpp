// Machine limits that the other benchmarks are compared against: streaming memory
// bandwidth (STREAM-like triad over arrays far larger than the caches, on LibTorch's
// threads; and a read-only stream), the rate of writing freshly allocated memory (what a
// weight conversion at load pays) and sgemm GFLOP/s through LibTorch's BLAS. JSON on stdout.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "bench_util.h"

namespace {

// Read-only stream: the sum of `mib` MiB of floats on LibTorch's threads (at::sum's
// vectorised reduction); GB/s read, best of `reps`. A decode step's weights and cache are a
// read-only stream, so this is the rate it can reach; the triad mixes in writes.
double read_gbs(int64_t mib = 768, int reps = 5) {
  const at::Tensor x = at::ones({(mib << 20) / static_cast<int64_t>(sizeof(float))});
  volatile float sink = at::sum(x).item<float>();
  const double t = v2m::bench::best_of(reps, [&] { sink = at::sum(x).item<float>(); });
  (void)sink;
  return static_cast<double>(x.numel()) * sizeof(float) / t / 1e9;
}

}  // namespace

int main(int, char** argv) {
  using namespace v2m::bench;
  v2m::reexec_with_thread_env(argv);  // as the CLI
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  // Fresh memory first, before the other measures recycle freed pages into this process.
  const FreshWrite fresh = fresh_write_gbs(1024);
  const double bw = triad_gbs(256, 5);  // 3 x 256 MiB: reads 2 arrays, writes 1
  const double read = read_gbs(768, 5);

  const int64_t m = 2048;
  auto A = at::randn({m, m}), B = at::randn({m, m});
  at::mm(A, B);
  const double t_mm = best_of(5, [&] { at::mm(A, B); });
  const double gflops = 2.0 * m * m * m / t_mm / 1e9;

  std::printf("{\n  \"bench\": \"machine\",\n  \"threads\": %d,\n  \"triad_bandwidth_gbs\": %.2f,\n"
              "  \"read_bandwidth_gbs\": %.2f,\n  \"fresh_memory_write_gbs\": %.2f,\n  \"rewrite_gbs\": %.2f,\n"
              "  \"sgemm_2048_gflops\": %.1f\n}\n",
              threads, bw, read, fresh.first_gbs, fresh.again_gbs, gflops);
  return 0;
}
