#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <string>
#include <thread>

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

}  // namespace

void set_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  check_blas_once();
}

int threads() { return at::get_num_threads(); }

}  // namespace v2m
