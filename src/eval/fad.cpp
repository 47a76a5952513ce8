#include "eval/fad.h"

#include <algorithm>
#include <string>

#include "v2m/error.h"

namespace v2m::eval {

Gaussian fit_gaussian(const at::Tensor& emb) {
  if (emb.dim() != 2 || emb.size(0) < 2)
    throw Error("fad: need at least 2 embeddings to fit a Gaussian, got " + std::to_string(emb.dim() == 2 ? emb.size(0) : 0));
  at::Tensor x = emb.to(at::kDouble);
  Gaussian g;
  g.count = x.size(0);
  g.mu = x.mean(0);
  at::Tensor c = x - g.mu;
  g.sigma = at::matmul(c.transpose(0, 1), c) / static_cast<double>(g.count - 1);
  return g;
}

namespace {

// Symmetric positive semi-definite square root through eigh.
at::Tensor sqrtm_psd(const at::Tensor& s) {
  at::Tensor sym = (s + s.transpose(0, 1)) * 0.5;
  auto [evals, evecs] = at::linalg_eigh(sym);
  at::Tensor r = evals.clamp_min(0).sqrt();
  return at::matmul(evecs * r.unsqueeze(0), evecs.transpose(0, 1));
}

}  // namespace

double frechet_distance(const Gaussian& a, const Gaussian& b) {
  if (!a.mu.defined() || !b.mu.defined() || a.mu.sizes() != b.mu.sizes())
    throw Error("fad: Gaussians of different dimension");
  at::Tensor diff = a.mu - b.mu;
  at::Tensor s1h = sqrtm_psd(a.sigma);
  at::Tensor m = at::matmul(at::matmul(s1h, b.sigma), s1h);
  m = (m + m.transpose(0, 1)) * 0.5;
  at::Tensor ev = at::linalg_eigvalsh(m).clamp_min(0);
  const double tr_cov = ev.sqrt().sum().item<double>();
  const double d = diff.dot(diff).item<double>() + a.sigma.trace().item<double>() + b.sigma.trace().item<double>() -
                   2.0 * tr_cov;
  return std::max(d, 0.0);  // round-off only: the distance is non-negative
}

}  // namespace v2m::eval
