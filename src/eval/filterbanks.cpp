#include "eval/filterbanks.h"

#include <algorithm>
#include <cmath>

#include "v2m/error.h"

namespace v2m::eval {

std::vector<double> chroma_filterbank(double sr, int n_fft, int n_chroma, double tuning, double ctroct,
                                      double octwidth) {
  if (n_fft < 2 || n_chroma < 1 || !(sr > 0)) throw Error("chroma_filterbank: bad sizes");
  // Log-frequency position of every FFT bin in chroma bins (A440 tuned by `tuning`), with a
  // made-up DC position 1.5 octaves below bin 1 (librosa's convention).
  const double a440 = 440.0 * std::pow(2.0, tuning / n_chroma);
  std::vector<double> frq(n_fft);
  for (int k = 1; k < n_fft; ++k) frq[k] = n_chroma * std::log2((k * sr / n_fft) / (a440 / 16.0));
  frq[0] = frq[1] - 1.5 * n_chroma;
  std::vector<double> width(n_fft, 1.0);
  for (int k = 0; k + 1 < n_fft; ++k) width[k] = std::max(frq[k + 1] - frq[k], 1.0);

  const double half = std::round(n_chroma / 2.0);
  std::vector<double> w(static_cast<size_t>(n_chroma) * n_fft);
  for (int k = 0; k < n_fft; ++k) {
    double norm = 0;
    for (int c = 0; c < n_chroma; ++c) {
      // Distance in chroma bins, wrapped into [-half, n_chroma - half) (Python modulo).
      double d = std::fmod(frq[k] - c + half + 10.0 * n_chroma, static_cast<double>(n_chroma));
      if (d < 0) d += n_chroma;
      d -= half;
      const double v = std::exp(-0.5 * std::pow(2.0 * d / width[k], 2));
      w[static_cast<size_t>(c) * n_fft + k] = v;
      norm += v * v;
    }
    norm = std::sqrt(norm);
    const double oct = std::exp(-0.5 * std::pow((frq[k] / n_chroma - ctroct) / octwidth, 2));
    for (int c = 0; c < n_chroma; ++c) {
      double& v = w[static_cast<size_t>(c) * n_fft + k];
      if (norm > 0) v /= norm;
      v *= oct;
    }
  }
  // Roll so that row 0 is C (rows were indexed from A), keep the non-aliased bins.
  const int bins = n_fft / 2 + 1, shift = 3 * (n_chroma / 12);
  std::vector<double> out(static_cast<size_t>(n_chroma) * bins);
  for (int c = 0; c < n_chroma; ++c) {
    const int src = (c + shift) % n_chroma;
    for (int k = 0; k < bins; ++k) out[static_cast<size_t>(c) * bins + k] = w[static_cast<size_t>(src) * n_fft + k];
  }
  return out;
}

namespace {

// Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above.
constexpr double kFsp = 200.0 / 3, kMinLogHz = 1000.0, kMinLogMel = kMinLogHz / kFsp;
const double kLogStep = std::log(6.4) / 27.0;

double hz_to_mel_slaney(double f) {
  return f >= kMinLogHz ? kMinLogMel + std::log(f / kMinLogHz) / kLogStep : f / kFsp;
}
double mel_to_hz_slaney(double m) {
  return m >= kMinLogMel ? kMinLogHz * std::exp(kLogStep * (m - kMinLogMel)) : kFsp * m;
}

}  // namespace

std::vector<double> slaney_mel_filterbank(double sr, int n_fft, int n_mels, double fmin, double fmax) {
  if (n_fft < 2 || n_mels < 1 || !(fmax > fmin)) throw Error("slaney_mel_filterbank: bad sizes");
  const int bins = n_fft / 2 + 1;
  std::vector<double> fft_f(bins);
  for (int k = 0; k < bins; ++k) fft_f[k] = (sr / 2.0) * k / (bins - 1);
  const double m0 = hz_to_mel_slaney(fmin), m1 = hz_to_mel_slaney(fmax);
  std::vector<double> mel_f(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) mel_f[i] = mel_to_hz_slaney(m0 + (m1 - m0) * i / (n_mels + 1));
  std::vector<double> w(static_cast<size_t>(n_mels) * bins, 0.0);
  for (int i = 0; i < n_mels; ++i) {
    const double lo_d = mel_f[i + 1] - mel_f[i], hi_d = mel_f[i + 2] - mel_f[i + 1];
    const double enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
    for (int k = 0; k < bins; ++k) {
      const double lower = (fft_f[k] - mel_f[i]) / lo_d;
      const double upper = (mel_f[i + 2] - fft_f[k]) / hi_d;
      w[static_cast<size_t>(i) * bins + k] = std::max(0.0, std::min(lower, upper)) * enorm;
    }
  }
  return w;
}

std::vector<double> vggish_mel_matrix(double sr, int n_bins, int n_mels, double fmin, double fmax) {
  if (n_bins < 2 || n_mels < 1 || fmin < 0 || !(fmax > fmin) || fmax > sr / 2)
    throw Error("vggish_mel_matrix: bad band edges");
  auto mel = [](double f) { return 1127.0 * std::log(1.0 + f / 700.0); };
  std::vector<double> bin_mel(n_bins);
  for (int k = 0; k < n_bins; ++k) bin_mel[k] = mel((sr / 2.0) * k / (n_bins - 1));
  const double e0 = mel(fmin), e1 = mel(fmax);
  std::vector<double> edges(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i) edges[i] = e0 + (e1 - e0) * i / (n_mels + 1);
  std::vector<double> w(static_cast<size_t>(n_mels) * n_bins, 0.0);
  for (int i = 0; i < n_mels; ++i) {
    for (int k = 1; k < n_bins; ++k) {  // k = 0 (DC) stays zero
      const double lower = (bin_mel[k] - edges[i]) / (edges[i + 1] - edges[i]);
      const double upper = (edges[i + 2] - bin_mel[k]) / (edges[i + 2] - edges[i + 1]);
      w[static_cast<size_t>(i) * n_bins + k] = std::max(0.0, std::min(lower, upper));
    }
  }
  return w;
}

}  // namespace v2m::eval
