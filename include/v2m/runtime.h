// Process-wide runtime settings: logging level and compute threads.
#pragma once

namespace v2m {

// level: 0 quiet (warnings+), 1 info, 2 debug. Logs go to stderr; stdout is for results.
void init_logging(int level);

// Sets LibTorch's intra-op threads (and OpenBLAS's through it); n <= 0 means all cores.
// Warns once if LibTorch's BLAS is not OpenBLAS/MKL (matmuls ~20x slower).
void set_threads(int n);

// Threads in use after set_threads (or the default).
int threads();

}  // namespace v2m
