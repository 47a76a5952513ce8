#include "synth/codec_losses.h"

#include <algorithm>
#include <cmath>

namespace v2m::synth {

namespace {

double hz_to_mel(double f) { return 2595.0 * std::log10(1.0 + f / 700.0); }
double mel_to_hz(double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); }

at::Tensor flat(const at::Tensor& x) { return x.dim() == 3 ? x.reshape({x.size(0) * x.size(1), x.size(2)}) : x; }

}  // namespace

at::Tensor mel_filterbank(int64_t n_fft, int64_t n_mels, int64_t sr) {
  const int64_t n_freqs = n_fft / 2 + 1;
  std::vector<float> fb(static_cast<size_t>(n_freqs * n_mels), 0.0f);
  const double mmax = hz_to_mel(sr / 2.0);
  std::vector<double> pts(static_cast<size_t>(n_mels + 2));
  for (int64_t i = 0; i < n_mels + 2; ++i) pts[i] = mel_to_hz(mmax * static_cast<double>(i) / (n_mels + 1));
  for (int64_t f = 0; f < n_freqs; ++f) {
    const double hz = static_cast<double>(f) * (sr / 2.0) / static_cast<double>(n_freqs - 1);
    for (int64_t m = 0; m < n_mels; ++m) {
      const double lo = pts[m], c = pts[m + 1], hi = pts[m + 2];
      const double up = (hz - lo) / (c - lo), down = (hi - hz) / (hi - c);
      fb[f * n_mels + m] = static_cast<float>(std::max(0.0, std::min(up, down)));
    }
  }
  return at::tensor(fb).reshape({n_freqs, n_mels});
}

at::Tensor mel_spectrogram(const at::Tensor& x, int64_t win, int64_t n_mels, int64_t sr) {
  const at::Tensor w = at::hann_window(win, x.options());
  at::Tensor spec = at::stft(flat(x), win, win / 4, win, w, /*center=*/true, "reflect", /*normalized=*/false,
                             /*onesided=*/true, /*return_complex=*/true);
  at::Tensor mag = at::abs(spec);  // [B, F, frames]
  const at::Tensor fb = mel_filterbank(win, n_mels, sr).to(mag.options());
  return at::matmul(fb.t(), mag);  // [B, n_mels, frames]
}

std::vector<MelScale> mel_scales(int lo, int hi) {
  std::vector<MelScale> s;
  for (int i = lo; i <= hi; ++i) {
    const int64_t win = int64_t{1} << i;
    s.push_back({win, std::min<int64_t>(64, win / 4)});
  }
  return s;
}

at::Tensor multi_scale_mel_loss(const at::Tensor& x, const at::Tensor& y, const std::vector<MelScale>& scales, int64_t sr) {
  at::Tensor total = at::zeros({}, x.options());
  for (const auto& s : scales) {
    const at::Tensor lx = at::log10(at::clamp_min(mel_spectrogram(x, s.win, s.n_mels, sr), 1e-5));
    const at::Tensor ly = at::log10(at::clamp_min(mel_spectrogram(y, s.win, s.n_mels, sr), 1e-5));
    const at::Tensor d = lx - ly;
    total = total + d.abs().mean() + d.pow(2).mean();
  }
  return total / static_cast<double>(scales.size());
}

at::Tensor mel_distance(const at::Tensor& x, const at::Tensor& y, const std::vector<MelScale>& scales, int64_t sr) {
  at::Tensor total = at::zeros({}, x.options());
  for (const auto& s : scales) {
    const at::Tensor lx = at::log10(at::clamp_min(mel_spectrogram(x, s.win, s.n_mels, sr), 1e-5));
    const at::Tensor ly = at::log10(at::clamp_min(mel_spectrogram(y, s.win, s.n_mels, sr), 1e-5));
    total = total + (lx - ly).abs().mean();
  }
  return total / static_cast<double>(scales.size());
}

at::Tensor si_snr(const at::Tensor& estimate, const at::Tensor& reference, double eps) {
  const at::Tensor e = estimate.to(at::kDouble) - estimate.to(at::kDouble).mean(-1, true);
  const at::Tensor r = reference.to(at::kDouble) - reference.to(at::kDouble).mean(-1, true);
  const at::Tensor alpha = (e * r).sum(-1, true) / ((r * r).sum(-1, true) + eps);
  const at::Tensor s = alpha * r, n = e - s;
  return 10.0 * at::log10(((s * s).sum(-1) + eps) / ((n * n).sum(-1) + eps));
}

double si_snr(const float* estimate, const float* reference, int64_t n, double eps) {
  double me = 0, mr = 0;
  for (int64_t i = 0; i < n; ++i) me += estimate[i], mr += reference[i];
  me /= std::max<int64_t>(n, 1), mr /= std::max<int64_t>(n, 1);
  double er = 0, rr = 0;
  for (int64_t i = 0; i < n; ++i) er += (estimate[i] - me) * (reference[i] - mr), rr += (reference[i] - mr) * (reference[i] - mr);
  const double alpha = er / (rr + eps);
  double ss = 0, nn = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double s = alpha * (reference[i] - mr), d = (estimate[i] - me) - s;
    ss += s * s, nn += d * d;
  }
  return 10.0 * std::log10((ss + eps) / (nn + eps));
}

}  // namespace v2m::synth
