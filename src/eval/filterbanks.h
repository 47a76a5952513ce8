// Spectral filter banks of the reference implementations the metrics must match, computed
// in float64 and returned row-major [n_filters, n_fft / 2 + 1]. LibTorch-free.
#pragma once

#include <vector>

namespace v2m::eval {

// librosa.filters.chroma(sr, n_fft, n_chroma, tuning, ctroct=5, octwidth=2, norm=2,
// base_c=True): Gaussian bumps per pitch class over log-frequency, columns L2-normalised,
// weighted by a Gaussian over octaves centred on ctroct, rolled so row 0 is C.
std::vector<double> chroma_filterbank(double sr, int n_fft, int n_chroma = 12, double tuning = 0.0,
                                      double ctroct = 5.0, double octwidth = 2.0);

// librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm="slaney"): triangles
// on the Slaney mel scale, each scaled to unit area (2 / bandwidth in Hz).
std::vector<double> slaney_mel_filterbank(double sr, int n_fft, int n_mels, double fmin, double fmax);

// VGGish's mel_features.spectrogram_to_mel_matrix: HTK-style mel (1127 ln(1 + f/700)),
// triangles between evenly spaced mel edges, bins at linspace(0, sr/2, n_bins), the DC bin
// zeroed, no area normalisation. Returned [n_mels, n_bins] (transposed from VGGish's layout).
std::vector<double> vggish_mel_matrix(double sr, int n_bins, int n_mels, double fmin, double fmax);

}  // namespace v2m::eval
