// Process-wide runtime settings: logging level, compute threads, the CPU allocator.
#pragma once

#include <cstddef>
#include <cstdint>

namespace v2m {

// level: 0 quiet (warnings+), 1 info, 2 debug. Logs go to stderr; stdout is for results.
void init_logging(int level);

// The thread pools' wait behaviour, which libgomp and OpenBLAS read from the environment when
// they load, before main: sets OMP_WAIT_POLICY=PASSIVE with GOMP_SPINCOUNT=30000 (unless a
// wait policy is given) and OPENBLAS_THREAD_TIMEOUT=4 where unset, and re-executes the program
// once (/proc/self/exe, the same argv) so the libraries see them; returns only if nothing
// needed setting or exec failed.
// Why: on few cores LibTorch's OpenMP workers and OpenBLAS's own threads take turns on the
// same cores, and whichever pool is idle must get off them quickly. OpenBLAS's idle threads
// otherwise spin on sched_yield for 2^28 cycles (~0.1 s) after every matmul (README Performance).
void reexec_with_thread_env(char** argv);

// Sets LibTorch's intra-op threads (and OpenBLAS's through it); n <= 0 means all cores.
// Warns once if LibTorch's BLAS is not OpenBLAS/MKL (matmuls ~20x slower).
void set_threads(int n);

// Threads in use after set_threads (or the default).
int threads();

// Makes LibTorch's CPU tensors of 1 MB and more come from a cache of freed blocks (a request
// takes the smallest cached block it fills to at least 80%), so layer after layer of large
// activations reuses memory instead of faulting in fresh pages (the EnCodec decode of 10 s
// of codes, warm: 1.4 s -> 0.9 s; see README Performance). Freed blocks are kept up to
// V2M_CPU_CACHE_MB (default kDefaultCpuCacheMb; 0 leaves LibTorch's allocator in place).
// Call once, early: tensors made before keep their own allocator. Returns whether the cache
// is in use. The CLI calls it.
inline constexpr std::size_t kDefaultCpuCacheMb = 512;
bool use_caching_cpu_allocator();

// Frees the cached blocks (the live tensors are untouched); a no-op without the cache.
void release_cached_cpu_memory();

struct CpuCacheStats {
  int64_t hits = 0;          // requests served from the cache
  int64_t misses = 0;        // requests of 1 MB and more that allocated
  std::size_t cached_bytes = 0;  // freed blocks held now
  std::size_t cap_bytes = 0;
};
CpuCacheStats cpu_cache_stats();

}  // namespace v2m
