#include "eval/spectrogram.h"

#include "v2m/error.h"

namespace v2m::eval {

at::Tensor spectrogram(const at::Tensor& x_in, const SpectrogramOptions& o) {
  const int win = o.win > 0 ? o.win : o.n_fft;
  if (win > o.n_fft || o.hop < 1) throw Error("spectrogram: window longer than n_fft or hop < 1");
  at::Tensor x = x_in.reshape({-1});
  const int64_t half = o.n_fft / 2;
  if (o.pad == PadMode::Reflect) {
    if (x.size(0) <= half) throw Error("spectrogram: signal shorter than n_fft/2 for reflect padding");
    x = at::reflection_pad1d(x.view({1, 1, -1}), {half, half}).view({-1});
  } else if (o.pad == PadMode::Constant) {
    x = at::constant_pad_nd(x, {half, half}, 0);
  }
  if (x.size(0) < o.n_fft) throw Error("spectrogram: signal shorter than one frame");
  at::Tensor w = at::hann_window(win, /*periodic=*/true, x.options());
  at::Tensor spec = at::stft(x, o.n_fft, o.hop, win, w, /*normalized=*/false, /*onesided=*/true,
                             /*return_complex=*/true)
                        .abs();
  if (o.normalized) spec = spec / w.pow(2).sum().sqrt();
  if (o.power == 2.0) return spec.pow(2);
  if (o.power == 1.0) return spec;
  return spec.pow(o.power);
}

media::Audio to_mono(const media::Audio& a, int sample_rate) {
  if (a.channels < 1 || a.sample_rate < 1) throw Error("audio: empty buffer");
  media::Audio m;
  m.sample_rate = a.sample_rate;
  m.channels = 1;
  const int64_t n = a.frames();
  m.samples.assign(static_cast<size_t>(n), 0.0f);
  for (int c = 0; c < a.channels; ++c) {
    const float* p = a.channel(c);
    for (int64_t i = 0; i < n; ++i) m.samples[i] += p[i] / a.channels;
  }
  if (sample_rate > 0 && sample_rate != m.sample_rate && n > 0) return media::resample(m, sample_rate, 1);
  if (sample_rate > 0) m.sample_rate = sample_rate;
  return m;
}

at::Tensor to_tensor(const media::Audio& mono) {
  return at::from_blob(const_cast<float*>(mono.samples.data()), {static_cast<int64_t>(mono.samples.size())},
                       at::kFloat)
      .clone();
}

}  // namespace v2m::eval
