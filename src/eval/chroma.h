// Chroma cosine similarity, as audiocraft's ChromaCosineSimilarityMetric with its
// ChromaExtractor (audiocraft/metrics/chroma_cosinesim.py, audiocraft/modules/chroma.py):
//   audio -> mono, 32 kHz -> power spectrogram (n_fft = win = 2^12, hop = n_fft/4, Hann,
//   reflect-centred, torchaudio "window" normalisation) -> librosa chroma filter bank
//   (tuning 0) -> per-frame max-normalisation (p = inf, eps 1e-6) -> [T, 12].
//   Similarity: cosine (eps 1e-8) between reference and generated chroma per frame over the
//   first ceil(N / hop) frames, summed over frames and clips, divided by the frame count.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "v2m/media.h"

namespace v2m::eval {

class ChromaExtractor {
 public:
  explicit ChromaExtractor(int sample_rate = 32000, int n_chroma = 12, int radix2_exp = 12);
  // wav: [N] mono at sample_rate() -> [T, n_chroma] (T = 1 + max(N, n_fft) / hop)
  at::Tensor operator()(const at::Tensor& wav) const;
  int sample_rate() const { return sample_rate_; }
  int n_fft() const { return n_fft_; }
  int hop() const { return hop_; }
  const at::Tensor& filterbank() const { return fbank_; }  // [n_chroma, n_fft/2 + 1]

 private:
  int sample_rate_, n_chroma_, n_fft_, hop_;
  at::Tensor fbank_;
};

// Running sum over clips (the metric's state): value() = cosine_sum / frames.
struct ChromaCosine {
  double cosine_sum = 0;
  int64_t frames = 0;
  double value() const { return frames > 0 ? cosine_sum / static_cast<double>(frames) : 0.0; }
  void add(const ChromaCosine& o) {
    cosine_sum += o.cosine_sum;
    frames += o.frames;
  }
};

// One clip: both signals are converted to mono at the extractor's rate and cut to the
// shorter length (audiocraft compares equal-length batches; `sizes` = that length).
ChromaCosine chroma_cosine(const ChromaExtractor& ex, const media::Audio& reference, const media::Audio& generated);

// The mean chroma vector [12] of a clip (for key/mode estimation).
at::Tensor mean_chroma(const ChromaExtractor& ex, const media::Audio& audio);

}  // namespace v2m::eval
