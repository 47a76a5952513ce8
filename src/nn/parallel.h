// Whether the nn kernels' at::parallel_for really forks. at::parallel_for is a header
// template: with LibTorch's OpenMP backend it forks only in translation units compiled with
// OpenMP, and runs its whole range on the calling thread anywhere else, whatever
// at::get_num_threads() says. src/CMakeLists.txt compiles linear_kernel.cpp with OpenMP
// (and the file refuses to build without it); this is the run-time check.
#pragma once

namespace v2m::nn {

// The number of distinct threads one at::parallel_for in linear_kernel.cpp ran its chunks
// on: min(at::get_num_threads(), 64) when the kernels fork, 1 when they do not.
int kernel_parallel_threads();

}  // namespace v2m::nn
