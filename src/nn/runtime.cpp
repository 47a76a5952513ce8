#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <unistd.h>
#include <fstream>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>
#include <thread>
#include <unordered_map>

#include "v2m/runtime.h"

namespace v2m {

namespace {

// Debian's LibTorch calls whatever libblas.so.3 resolves to through the alternatives
// system; the reference BLAS makes every matmul ~20x slower. The mapped libraries of
// the running process tell which one was loaded.
void check_blas_once() {
  static bool done = false;
  if (done) return;
  done = true;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool fast = false, reference = false;
  while (std::getline(maps, line)) {
    if (line.find("openblas") != std::string::npos || line.find("libmkl") != std::string::npos ||
        line.find("blis") != std::string::npos)
      fast = true;
    if (line.find("/blas/libblas.so") != std::string::npos) reference = true;
  }
  if (reference && !fast)
    spdlog::warn("LibTorch is using the reference BLAS (matmuls ~20x slower); install libopenblas0-pthread");
  else
    spdlog::debug("BLAS: {}", fast ? "optimised (OpenBLAS/MKL/BLIS)" : "unknown");
}

// LibTorch's CPU allocator hands every request to malloc, and glibc serves anything over
// 32 MB (less, below its dynamic threshold) with a fresh mmap that free() unmaps again. A
// codec decode of 10 s at 32 kHz allocates and frees ~80 MB activations layer after layer,
// so each one pays page faults and the kernel's zeroing of new pages (and, on a VM that
// reports free memory to its host, the host backing them again). This allocator keeps freed
// blocks of 1 MB and more, up to a cap, and hands one back for a request it fits closely.
// Large blocks cost a table entry and a lock per allocation; smaller ones go to malloc as
// before, whose bins already reuse them.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t cap) { stats_.cap_bytes = cap; }

  // The context is the pointer itself (raw_allocate/raw_deallocate, which some LibTorch
  // kernels use, require it), so the sizes of large blocks live in a table.
  c10::DataPtr allocate(size_t n) const override {
    void* p = n < kMinBytes ? c10::alloc_cpu(n) : allocate_large(n);
    return {p, p, &CachingCpuAllocator::deallocate, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deallocate; }

  void release() const {
    std::list<Cached> drop;
    {
      std::lock_guard<std::mutex> lock(mu_);
      drop.swap(age_);
      by_size_.clear();
      stats_.cached_bytes = 0;
    }
    for (const auto& c : drop) c10::free_cpu(c.ptr);
  }

  CpuCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  static CachingCpuAllocator* instance;

 private:
  static constexpr size_t kMinBytes = size_t{1} << 20;
  static constexpr size_t kRound = size_t{1} << 16;

  void* allocate_large(size_t n) const {
    const size_t want = (n + kRound - 1) / kRound * kRound;
    {
      // The smallest cached block of at least `want` bytes and at most a quarter more.
      std::lock_guard<std::mutex> lock(mu_);
      auto it = by_size_.lower_bound(want);
      if (it != by_size_.end() && it->first <= want + want / 4) {
        void* p = it->second->ptr;
        stats_.cached_bytes -= it->first;
        ++stats_.hits;
        live_.emplace(p, it->first);
        age_.erase(it->second);
        by_size_.erase(it);
        return p;
      }
    }
    void* p = nullptr;
    try {
      p = c10::alloc_cpu(want);
    } catch (const c10::Error&) {  // out of memory: the cached blocks go first
      release();
      p = c10::alloc_cpu(want);
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.misses;
    live_.emplace(p, want);
    return p;
  }

  // A freed large block is cached; the oldest cached blocks make room for it when the cap
  // would be passed (blocks of sizes no longer asked for age out instead of filling the cap).
  static void deallocate(void* p) {
    if (!p) return;
    const CachingCpuAllocator* self = instance;
    std::vector<void*> drop;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      auto it = self->live_.find(p);
      if (it == self->live_.end() || it->second > self->stats_.cap_bytes) {
        if (it != self->live_.end()) self->live_.erase(it);
        drop.push_back(p);
      } else {
        const size_t size = it->second;
        self->live_.erase(it);
        while (self->stats_.cached_bytes + size > self->stats_.cap_bytes) {
          const Cached& old = self->age_.front();
          auto range = self->by_size_.equal_range(old.size);
          for (auto r = range.first; r != range.second; ++r)
            if (r->second == self->age_.begin()) {
              self->by_size_.erase(r);
              break;
            }
          self->stats_.cached_bytes -= old.size;
          drop.push_back(old.ptr);
          self->age_.pop_front();
        }
        self->age_.push_back({p, size});
        self->by_size_.emplace(size, std::prev(self->age_.end()));
        self->stats_.cached_bytes += size;
      }
    }
    for (void* q : drop) c10::free_cpu(q);
  }

  struct Cached {
    void* ptr;
    size_t size;
  };

  mutable std::mutex mu_;
  mutable std::unordered_map<void*, size_t> live_;  // large blocks in use -> their size
  mutable std::list<Cached> age_;                   // cached blocks, oldest first
  mutable std::multimap<size_t, std::list<Cached>::iterator> by_size_;
  mutable CpuCacheStats stats_;
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

}  // namespace

bool use_caching_cpu_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    size_t mb = kDefaultCpuCacheMb;
    if (const char* env = std::getenv("V2M_CPU_CACHE_MB"); env && *env) {
      char* end = nullptr;
      mb = std::strtoull(env, &end, 10);
      if (*end) {
        spdlog::warn("V2M_CPU_CACHE_MB={}: not a number of megabytes; using {}", env, kDefaultCpuCacheMb);
        mb = kDefaultCpuCacheMb;
      }
    }
    if (mb == 0) return;
    // Never freed: tensors made through it may outlive main's locals.
    CachingCpuAllocator::instance = new CachingCpuAllocator(mb << 20);
    c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/1);  // above LibTorch's default (0)
  });
  return CachingCpuAllocator::instance != nullptr;
}

void release_cached_cpu_memory() {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->release();
}

CpuCacheStats cpu_cache_stats() { return CachingCpuAllocator::instance ? CachingCpuAllocator::instance->stats() : CpuCacheStats{}; }

void reexec_with_thread_env(char** argv) {
  bool changed = false;
  const auto set_default = [&](const char* name, const char* value) {
    if (std::getenv(name)) return;
    ::setenv(name, value, 1);
    changed = true;
  };
  // A spin count only goes with our own wait policy: an explicit OMP_WAIT_POLICY is left as given.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    set_default("OMP_WAIT_POLICY", "PASSIVE");
    set_default("GOMP_SPINCOUNT", "30000");
  }
  set_default("OPENBLAS_THREAD_TIMEOUT", "4");
  if (changed) ::execv("/proc/self/exe", argv);  // only returns on failure: carry on as we are
}

void set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  check_blas_once();
}

int threads() { return at::get_num_threads(); }

}  // namespace v2m
