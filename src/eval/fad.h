// Fréchet Audio Distance (Kilgour et al. 2019): Gaussians fitted to embeddings of the
// reference and generated sets, compared with the Fréchet (2-Wasserstein) distance
//   d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2).
// The matrix square root goes through eigen-decompositions of symmetric matrices in float64
// (negative round-off eigenvalues clamped to 0), which stays real and stable where the
// scipy.linalg.sqrtm(S1 S2) of the reference scripts can return complex parts.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace v2m::eval {

struct Gaussian {
  at::Tensor mu;     // [D] float64
  at::Tensor sigma;  // [D, D] float64, unbiased (N - 1), as np.cov(rowvar=False)
  int64_t count = 0;
};

// emb: [N, D], N >= 2 -> its Gaussian fit. Throws v2m::Error for N < 2.
Gaussian fit_gaussian(const at::Tensor& emb);

double frechet_distance(const Gaussian& a, const Gaussian& b);

}  // namespace v2m::eval
