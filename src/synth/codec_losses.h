// Objectives and metrics of codec training (EnCodec, Défossez et al. 2022, §3.4):
// multi-scale log-mel reconstruction loss, SI-SNR. LibTorch only.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace v2m::synth {

// HTK-scale triangular mel filters (torchaudio's melscale_fbanks with mel_scale="htk",
// norm=None, f_min 0, f_max sr/2): [n_fft/2 + 1, n_mels].
at::Tensor mel_filterbank(int64_t n_fft, int64_t n_mels, int64_t sample_rate);

// Magnitude mel spectrogram (power 1, Hann window, hop win/4, centred): x [B, N] -> [B, n_mels, frames].
at::Tensor mel_spectrogram(const at::Tensor& x, int64_t win, int64_t n_mels, int64_t sample_rate);

struct MelScale {
  int64_t win;
  int64_t n_mels;
};
// Window sizes 2^lo .. 2^hi (inclusive), n_mels = min(64, win / 4) (small windows have too
// few FFT bins for 64 non-empty filters).
std::vector<MelScale> mel_scales(int lo_log2, int hi_log2);

// Multi-scale mel loss as audiocraft's MultiScaleMelSpectrogramLoss, reduced to what the
// brief asks: for each scale, L1 + L2 (mean squared) between log10(max(mel, 1e-5)) of x and
// y, averaged over scales. x, y: [B, 1, N] or [B, N]. Differentiable in x.
at::Tensor multi_scale_mel_loss(const at::Tensor& x, const at::Tensor& y, const std::vector<MelScale>& scales,
                                int64_t sample_rate);

// Mean over scales of the mean absolute log10-mel difference (the reported "mel distance").
at::Tensor mel_distance(const at::Tensor& x, const at::Tensor& y, const std::vector<MelScale>& scales,
                        int64_t sample_rate);

// Scale-invariant SNR in dB (Le Roux et al. 2019) of `estimate` against `reference`, both
// zero-meaned, over the last dim: [..., N] -> [...]. Invariant to any non-zero scale of the
// estimate, sign included (x vs -x is as good as x vs x). eps keeps silent or perfect
// inputs finite: 10 log10((|s|^2 + eps) / (|e - s|^2 + eps)).
at::Tensor si_snr(const at::Tensor& estimate, const at::Tensor& reference, double eps = 1e-8);

// Same on plain buffers (n samples).
double si_snr(const float* estimate, const float* reference, int64_t n, double eps = 1e-8);

}  // namespace v2m::synth
