// Onset strength, onset peaks and tempo with librosa's semantics (librosa 0.10:
// onset.onset_strength, onset.onset_detect, util.peak_pick), the audio side of AV-Align and
// of the SynthV2M tempo / beat-to-cut metrics.
#pragma once

#include <vector>

#include "v2m/media.h"

namespace v2m::eval {

constexpr int kOnsetRate = 22050;  // librosa.load's default rate, which AV-Align uses
constexpr int kOnsetHop = 512;

struct OnsetEnvelope {
  double frame_rate = 0;      // frames per second (sr / hop)
  std::vector<double> env;    // onset strength per frame
};

// Mono at 22050 Hz -> spectral flux of the dB mel spectrogram (128 Slaney mels, n_fft 2048,
// hop 512, zero-padded centred frames; power_to_db with top_db 80; positive first difference,
// mean over bands, shifted by lag + n_fft / (2 hop) frames, trimmed to the frame count).
OnsetEnvelope onset_strength(const media::Audio& audio);

// librosa.util.peak_pick: n is a peak when x[n] = max(x[n - pre_max : n + post_max]),
// x[n] >= mean(x[n - pre_avg : n + post_avg]) + delta (windows cut at the ends), x[n] > 0 and
// n is more than `wait` frames after the previous peak.
std::vector<int> peak_pick(const std::vector<double>& x, int pre_max, int post_max, int pre_avg, int post_avg,
                           double delta, int wait);

// librosa.onset.onset_detect defaults: envelope normalised to [0, 1], then peak_pick with
// pre_max 30 ms, post_max 0 ms + 1, pre_avg 100 ms, post_avg 100 ms + 1, wait 30 ms,
// delta 0.07 (all in frames, floor). Returns onset times in seconds (frame * hop / sr).
std::vector<double> onset_times(const OnsetEnvelope& o);
std::vector<double> onset_times(const media::Audio& audio);

// Global tempo in BPM from the autocorrelation of the onset envelope: the lag in
// [60/max_bpm, 60/min_bpm] s maximising autocorrelation x a log-normal prior around 120 BPM
// (one octave std, as librosa.beat.tempo), refined by parabolic interpolation.
// Returns 0 for a flat envelope.
double estimate_tempo(const OnsetEnvelope& o, double min_bpm = 30.0, double max_bpm = 300.0);

}  // namespace v2m::eval
