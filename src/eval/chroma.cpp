#include "eval/chroma.h"

#include <algorithm>

#include "eval/filterbanks.h"
#include "eval/spectrogram.h"
#include "v2m/error.h"

namespace v2m::eval {

ChromaExtractor::ChromaExtractor(int sample_rate, int n_chroma, int radix2_exp)
    : sample_rate_(sample_rate), n_chroma_(n_chroma), n_fft_(1 << radix2_exp), hop_((1 << radix2_exp) / 4) {
  auto w = chroma_filterbank(sample_rate, n_fft_, n_chroma, 0.0);
  fbank_ = at::from_blob(w.data(), {n_chroma, n_fft_ / 2 + 1}, at::kDouble).to(at::kFloat);
}

at::Tensor ChromaExtractor::operator()(const at::Tensor& wav_in) const {
  at::Tensor wav = wav_in.reshape({-1}).to(at::kFloat);
  const int64_t n = wav.size(0);
  if (n < n_fft_) {  // audiocraft pads short (e.g. nullified) inputs symmetrically to n_fft
    const int64_t pad = n_fft_ - n;
    wav = at::constant_pad_nd(wav, {pad / 2, pad / 2 + pad % 2}, 0);
  }
  SpectrogramOptions o;
  o.n_fft = n_fft_;
  o.hop = hop_;
  o.pad = PadMode::Reflect;
  o.normalized = true;
  o.power = 2.0;
  at::Tensor spec = spectrogram(wav, o);   // [F, T]
  at::Tensor raw = at::matmul(fbank_, spec);  // [C, T]
  at::Tensor denom = raw.abs().amax(0, /*keepdim=*/true).clamp_min(1e-6);
  return (raw / denom).transpose(0, 1).contiguous();  // [T, C]
}

ChromaCosine chroma_cosine(const ChromaExtractor& ex, const media::Audio& reference, const media::Audio& generated) {
  media::Audio r = to_mono(reference, ex.sample_rate());
  media::Audio g = to_mono(generated, ex.sample_rate());
  const int64_t n = std::min(r.frames(), g.frames());
  if (n <= 0) throw Error("chroma: empty audio");
  r.samples.resize(static_cast<size_t>(n));
  g.samples.resize(static_cast<size_t>(n));
  at::Tensor cr = ex(to_tensor(r)), cg = ex(to_tensor(g));
  const int64_t t = std::min<int64_t>((n + ex.hop() - 1) / ex.hop(), cr.size(0));
  // torch.nn.functional.cosine_similarity: x.y / sqrt(max(|x|^2 |y|^2, eps^2)), eps = 1e-8
  at::Tensor a = cr.slice(0, 0, t).to(at::kDouble), b = cg.slice(0, 0, t).to(at::kDouble);
  at::Tensor dot = (a * b).sum(1);
  at::Tensor den = (a.pow(2).sum(1) * b.pow(2).sum(1)).clamp_min(1e-16).sqrt();
  ChromaCosine c;
  c.cosine_sum = (dot / den).sum().item<double>();
  c.frames = t;
  return c;
}

at::Tensor mean_chroma(const ChromaExtractor& ex, const media::Audio& audio) {
  media::Audio m = to_mono(audio, ex.sample_rate());
  if (m.frames() <= 0) throw Error("chroma: empty audio");
  return ex(to_tensor(m)).to(at::kDouble).mean(0);
}

}  // namespace v2m::eval
