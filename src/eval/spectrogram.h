// Short-time power spectra with the framing conventions of the reference implementations
// (torchaudio.transforms.Spectrogram, librosa.stft, torchlibrosa.Spectrogram, VGGish's
// mel_features.stft_magnitude), plus the audio conversions every metric starts with.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "v2m/media.h"

namespace v2m::eval {

enum class PadMode { None, Reflect, Constant };

struct SpectrogramOptions {
  int n_fft = 2048;
  int hop = 512;
  int win = 0;             // window length (<= n_fft, centred in the frame); 0 = n_fft
  PadMode pad = PadMode::Reflect;  // None: frames start at sample 0 (no centring)
  bool normalized = false;  // torchaudio's "window" normalisation: |X| / sqrt(sum w^2)
  double power = 2.0;       // 1: magnitude, 2: power
};

// x: [N] float -> [n_fft/2 + 1, T] (periodic Hann window). Computed in float64 when x is.
at::Tensor spectrogram(const at::Tensor& x, const SpectrogramOptions& o);

// Mono (mean over channels, as audiocraft's convert_audio) resampled to `sample_rate`.
media::Audio to_mono(const media::Audio& a, int sample_rate);

// A mono buffer as a [N] float tensor (copied).
at::Tensor to_tensor(const media::Audio& mono);

}  // namespace v2m::eval
