// KL divergence between AudioSet label distributions of reference (P) and generated (Q)
// audio, as audiocraft's metrics/kld.py computes it (with CNN14 in PaSST's place):
//   each clip (mono, 32 kHz, both cut to the shorter length) is split into 10 s segments,
//   segments of <= 0.15 s are dropped, each segment gets softmax(logits) over the classes;
//   kl(pred, target) = sum_c target * (log target - log(pred + 1e-6))  (F.kl_div, 0 log 0 = 0)
//   KLD(P||Q) = mean over segments of kl(Q, P); KLD(Q||P) = mean of kl(P, Q).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "eval/panns.h"
#include "v2m/media.h"

namespace v2m::eval {

// pred, target: [S, C] probabilities -> [S]
at::Tensor kl_divergence(const at::Tensor& pred, const at::Tensor& target, double eps = 1e-6);

// mono 32 kHz [N] -> [S, C] per-segment label distributions (S = 0 when nothing is long enough)
at::Tensor label_distributions(Cnn14& tagger, const at::Tensor& wav32k);

struct KldSums {
  double pq_sum = 0, qp_sum = 0;
  int64_t segments = 0;
  double pq() const { return pq_sum / static_cast<double>(segments); }
  double qp() const { return qp_sum / static_cast<double>(segments); }
  void add(const KldSums& o) {
    pq_sum += o.pq_sum;
    qp_sum += o.qp_sum;
    segments += o.segments;
  }
};

KldSums kld_clip(Cnn14& tagger, const media::Audio& reference, const media::Audio& generated);

}  // namespace v2m::eval
