// Renders a SynthV2M score with FluidSynth: the synth API is driven directly (program
// changes, noteon/noteoff issued at their sample positions between fluid_synth_write_float
// calls), no MIDI files and no audio driver. Output is mono float at the requested rate,
// scaled to the clip's loudness.
#pragma once

#include <memory>
#include <string>

#include "synth/score.h"
#include "v2m/media.h"

namespace v2m::synth {

// The General MIDI soundfont to use: `requested` if not empty (must exist), else
// $V2M_SOUNDFONT, else Debian's timgm6mb-soundfont (/usr/share/sounds/sf2/TimGM6mb.sf2),
// else fluid-soundfont-gm (FluidR3_GM.sf2). Throws v2m::Error naming the files looked for
// and the apt packages that provide them.
std::string find_soundfont(const std::string& requested = "");

// RMS level (dBFS) a clip of `loudness` (0..1) is normalised to: -30 dB .. -16 dB.
double target_rms_db(double loudness);

// One FluidSynth instance with the soundfont loaded; reuse it for many clips (one per
// thread: not thread-safe).
class Renderer {
 public:
  Renderer(const std::string& soundfont, int sample_rate);
  ~Renderer();
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  // round(seconds * rate) mono samples, rendered by a fresh synthesizer: the result depends
  // only on the score (bit-exact across calls and workers).
  media::Audio render(const Score& score);
  int sample_rate() const { return rate_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rate_;
};

}  // namespace v2m::synth
