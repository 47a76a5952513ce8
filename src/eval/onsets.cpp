#include "eval/onsets.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "eval/filterbanks.h"
#include "eval/spectrogram.h"

namespace v2m::eval {

namespace {
constexpr int kFft = 2048, kMels = 128;
}

OnsetEnvelope onset_strength(const media::Audio& audio) {
  OnsetEnvelope o;
  o.frame_rate = static_cast<double>(kOnsetRate) / kOnsetHop;
  media::Audio m = to_mono(audio, kOnsetRate);
  if (m.frames() == 0) return o;
  static const at::Tensor mel = [] {
    auto w = slaney_mel_filterbank(kOnsetRate, kFft, kMels, 0.0, kOnsetRate / 2.0);
    return at::from_blob(w.data(), {kMels, kFft / 2 + 1}, at::kDouble).clone();
  }();
  SpectrogramOptions so;
  so.n_fft = kFft;
  so.hop = kOnsetHop;
  so.pad = PadMode::Constant;
  so.power = 2.0;
  at::Tensor s = at::matmul(mel, spectrogram(to_tensor(m).to(at::kDouble), so));  // [M, T]
  at::Tensor db = 10.0 * at::log10(s.clamp_min(1e-10));
  db = at::max(db, db.max() - 80.0);
  const int64_t t = db.size(1);
  o.env.assign(static_cast<size_t>(t), 0.0);
  if (t < 2) return o;
  at::Tensor flux = (db.slice(1, 1) - db.slice(1, 0, t - 1)).clamp_min(0).mean(0).contiguous();  // [T-1]
  const int pad = 1 + kFft / (2 * kOnsetHop);
  const double* f = flux.data_ptr<double>();
  for (int64_t i = 0; i < flux.size(0) && i + pad < t; ++i) o.env[static_cast<size_t>(i + pad)] = f[i];
  return o;
}

std::vector<int> peak_pick(const std::vector<double>& x, int pre_max, int post_max, int pre_avg, int post_avg,
                           double delta, int wait) {
  std::vector<int> peaks;
  const int n = static_cast<int>(x.size());
  long last = -(1L << 40);
  for (int i = 0; i < n; ++i) {
    const int a0 = std::max(0, i - pre_max), a1 = std::min(n, i + post_max);
    double mx = x[i];
    for (int j = a0; j < a1; ++j) mx = std::max(mx, x[j]);
    if (x[i] != mx || x[i] <= 0) continue;
    const int b0 = std::max(0, i - pre_avg), b1 = std::min(n, i + post_avg);
    double sum = 0;
    for (int j = b0; j < b1; ++j) sum += x[j];
    if (x[i] < sum / std::max(1, b1 - b0) + delta) continue;
    if (i > last + wait) {
      peaks.push_back(i);
      last = i;
    }
  }
  return peaks;
}

std::vector<double> onset_times(const OnsetEnvelope& o) {
  if (o.env.empty()) return {};
  std::vector<double> x = o.env;
  const double lo = *std::min_element(x.begin(), x.end());
  for (double& v : x) v -= lo;
  const double hi = *std::max_element(x.begin(), x.end());
  if (!(hi > 0) || !std::isfinite(hi)) return {};
  for (double& v : x) v /= hi + 1e-300;
  const double sr = kOnsetRate, hop = kOnsetHop;
  auto frames = [&](double s) { return static_cast<int>(std::floor(s * sr / hop)); };
  auto peaks = peak_pick(x, frames(0.03), frames(0.0) + 1, frames(0.10), frames(0.10) + 1, 0.07, frames(0.03));
  std::vector<double> t;
  for (int p : peaks) t.push_back(p / o.frame_rate);
  return t;
}

std::vector<double> onset_times(const media::Audio& audio) { return onset_times(onset_strength(audio)); }

double estimate_tempo(const OnsetEnvelope& o, double min_bpm, double max_bpm) {
  const int n = static_cast<int>(o.env.size());
  if (n < 4) return 0.0;
  double mean = 0;
  for (double v : o.env) mean += v;
  mean /= n;
  std::vector<double> x(o.env);
  for (double& v : x) v -= mean;
  const int lag_lo = std::max(1, static_cast<int>(std::floor(60.0 * o.frame_rate / max_bpm)));
  const int lag_hi = std::min(n - 2, static_cast<int>(std::ceil(60.0 * o.frame_rate / min_bpm)));
  if (lag_hi <= lag_lo) return 0.0;
  // Autocorrelation normalised by the overlap length (unbiased), lags 0 .. lag_hi + 1.
  std::vector<double> ac(static_cast<size_t>(lag_hi + 2), 0.0);
  for (int l = 0; l <= lag_hi + 1 && l < n; ++l) {
    double s = 0;
    for (int i = 0; i + l < n; ++i) s += x[i] * x[i + l];
    ac[l] = s / (n - l);
  }
  if (!(ac[0] > 0)) return 0.0;
  int best = -1;
  double best_score = -1e300;
  for (int l = lag_lo; l <= lag_hi; ++l) {
    const double bpm = 60.0 * o.frame_rate / l;
    const double prior = std::exp(-0.5 * std::pow(std::log2(bpm / 120.0), 2));
    const double score = ac[l] * prior;
    if (score > best_score) {
      best_score = score;
      best = l;
    }
  }
  if (best < 0 || !(ac[best] > 0)) return 0.0;
  double lag = best;
  const double a = ac[best - 1], b = ac[best], c = ac[best + 1];
  const double den = a - 2 * b + c;
  if (den < 0) lag += std::clamp(0.5 * (a - c) / den, -0.5, 0.5);
  return 60.0 * o.frame_rate / lag;
}

}  // namespace v2m::eval
