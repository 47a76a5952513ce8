// SynthV2M scores: per-clip musical parameters drawn from a seed, and a procedurally
// composed piece (diatonic chord progression in the key, drums on the tempo, a bass line
// and a melody over the chords) as timed note events. Everything is a pure function of the
// seed, so a dataset is reproducible on every machine. No FluidSynth / OpenCV here.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace v2m::synth {

// A General MIDI instrument family: the programs it draws from and the shape the video
// draws for it (design §3.7: shape family <-> instrument family).
struct InstrumentFamily {
  std::string name;           // piano | organ | guitar | strings | brass | synth_lead
  std::vector<int> programs;  // GM program numbers (0-based)
  std::string shape;          // circle | square | triangle | star | diamond | hexagon
};
const std::vector<InstrumentFamily>& instrument_families();

// Sharp names C C# D ... B for pitch classes 0..11 (any integer, octaves folded). Inline so
// eval can name its key estimates without linking the synth library.
inline const char* key_name(int pitch_class) {
  static const char* const names[12] = {"C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"};
  return names[((pitch_class % 12) + 12) % 12];
}
// The pitch class of a sharp name ("C", "c#", ... "B"; key_name's spelling, any case), or -1.
int key_pitch_class(const std::string& name);

struct ClipParams {
  uint64_t seed = 0;      // drives composition details and the video layout
  double seconds = 8.0;
  double bpm = 120.0;     // 70..160
  int key_pc = 0;         // tonic pitch class 0..11
  bool minor = false;
  int family = 0;         // index into instrument_families()
  int program = 0;        // GM program of chords and melody
  double loudness = 0.7;  // 0..1: velocity scale and output level (video: brightness)
  int beats_per_bar = 4;
  int progression = 0;    // index into the progression table (shared by both modes)
};

// Parameters of clip `index` of a dataset with seed `seed` (independent of other clips).
// tonic -1 draws the key per clip; 0..11 fixes it, and every other draw (tempo, mode,
// instrument, layout, ...) stays what it is with a drawn key.
ClipParams sample_clip_params(uint64_t seed, uint64_t index, double seconds, int tonic = -1);

struct NoteEvent {
  double time = 0;      // onset, seconds from clip start
  double duration = 0;  // seconds
  int channel = 0;      // MIDI channel (9 = GM drums)
  int key = 60;         // MIDI note
  int velocity = 100;   // 1..127
};

// MIDI channels of the parts.
constexpr int kChordChannel = 0, kMelodyChannel = 1, kBassChannel = 2, kDrumChannel = 9;
constexpr int kBassProgram = 33;  // GM Electric Bass (finger)

struct Score {
  ClipParams params;
  std::vector<NoteEvent> notes;  // sorted by time
  std::vector<double> beats;     // beat onsets in [0, seconds)
  std::vector<double> cuts;      // bar lines after 0 in (0, seconds): the video's scene cuts
  double beat_seconds() const { return 60.0 / params.bpm; }
  double bar_seconds() const { return beat_seconds() * params.beats_per_bar; }
};

Score compose(const ClipParams& params);

// The manifest's per-clip "labels" object (schema read by eval):
// {"bpm", "key", "key_pc", "mode", "program", "family", "beats", "cuts"}.
nlohmann::json score_labels(const Score& score);

}  // namespace v2m::synth
