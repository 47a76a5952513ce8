#include "eval/kld.h"

#include <algorithm>
#include <vector>

#include "eval/spectrogram.h"
#include "v2m/error.h"

namespace v2m::eval {

namespace {
constexpr int64_t kSegment = 10 * kPannsRate;          // PaSST/AudioSet clip length
constexpr int64_t kMinSegment = kPannsRate * 15 / 100;  // 0.15 s
}  // namespace

at::Tensor kl_divergence(const at::Tensor& pred, const at::Tensor& target, double eps) {
  at::Tensor p = pred.to(at::kDouble), t = target.to(at::kDouble);
  at::Tensor tlogt = at::where(t > 0, t * t.log(), at::zeros_like(t));
  return (tlogt - t * (p + eps).log()).sum(-1);
}

at::Tensor label_distributions(Cnn14& tagger, const at::Tensor& wav32k) {
  at::InferenceMode guard;
  std::vector<at::Tensor> probs;
  const int64_t n = wav32k.size(0);
  for (int64_t s = 0; s < n; s += kSegment) {
    const int64_t len = std::min(kSegment, n - s);
    if (len <= kMinSegment) continue;
    at::Tensor logits = tagger->forward(wav32k.slice(0, s, s + len).unsqueeze(0));
    probs.push_back(at::softmax(logits.to(at::kDouble), -1)[0]);
  }
  if (probs.empty()) return at::zeros({0, kPannsClasses}, at::kDouble);
  return at::stack(probs);
}

KldSums kld_clip(Cnn14& tagger, const media::Audio& reference, const media::Audio& generated) {
  media::Audio r = to_mono(reference, kPannsRate), g = to_mono(generated, kPannsRate);
  const int64_t n = std::min(r.frames(), g.frames());
  r.samples.resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  g.samples.resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  KldSums k;
  if (n <= kMinSegment) return k;
  at::Tensor p = label_distributions(tagger, to_tensor(r));
  at::Tensor q = label_distributions(tagger, to_tensor(g));
  if (p.size(0) == 0) return k;
  k.pq_sum = kl_divergence(q, p).sum().item<double>();
  k.qp_sum = kl_divergence(p, q).sum().item<double>();
  k.segments = p.size(0);
  return k;
}

}  // namespace v2m::eval
