#include "synth/score.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "synth/rng.h"

namespace v2m::synth {

const std::vector<InstrumentFamily>& instrument_families() {
  static const std::vector<InstrumentFamily> f = {
      {"piano", {0, 1, 4}, "circle"},         // Acoustic Grand, Bright Acoustic, Electric Piano 1
      {"organ", {16, 17, 19}, "square"},      // Drawbar, Percussive, Church Organ
      {"guitar", {24, 25, 27}, "triangle"},   // Nylon, Steel, Clean Electric Guitar
      {"strings", {48, 49, 40}, "star"},      // String Ensemble 1/2, Violin
      {"brass", {56, 61, 57}, "diamond"},     // Trumpet, Brass Section, Trombone
      {"synth_lead", {80, 81, 82}, "hexagon"} // Lead 1 (square), 2 (sawtooth), 3 (calliope)
  };
  return f;
}

int key_pitch_class(const std::string& name) {
  for (int pc = 0; pc < 12; ++pc) {
    const std::string k = key_name(pc);
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return a == std::toupper(static_cast<unsigned char>(b));
        }))
      return pc;
  }
  return -1;
}

namespace {

const int kMajor[7] = {0, 2, 4, 5, 7, 9, 11};
const int kMinor[7] = {0, 2, 3, 5, 7, 8, 10};          // natural minor
const int kHarmonicMinor[7] = {0, 2, 3, 5, 7, 8, 11};  // raised 7th: the major dominant of minor keys

// Scale degrees (0-based) of one chord per bar, cycled; the same table for both modes. Every
// progression opens on the tonic and reaches the dominant (V), so even a two-bar clip states
// its tonic triad, and in minor the dominant's leading tone (harmonic minor) sets the pitch
// content apart from the relative major's (a natural-minor piece shares all seven pitch
// classes with it).
const std::vector<std::vector<int>> kProgressions = {{0, 4, 5, 3}, {0, 3, 4, 0}, {0, 5, 3, 4}, {0, 3, 0, 4}};

// Melody rhythms of one 4-beat bar, in beats.
const std::vector<std::vector<double>> kRhythms = {
    {1, 1, 1, 1}, {0.5, 0.5, 1, 2}, {1.5, 0.5, 1, 1}, {2, 1, 1}, {0.5, 0.5, 0.5, 0.5, 1, 1}, {1, 0.5, 0.5, 2}};

// MIDI note of scale degree `deg` (any integer, octaves folded) above `tonic`.
int degree_note(int tonic, const int* scale, int deg) {
  const int oct = deg >= 0 ? deg / 7 : -((6 - deg) / 7);
  return tonic + scale[deg - oct * 7] + 12 * oct;
}

int velocity(double loudness, int offset) {
  return std::clamp(static_cast<int>(std::lround(40 + 80 * loudness)) + offset, 1, 127);
}

}  // namespace

ClipParams sample_clip_params(uint64_t seed, uint64_t index, double seconds, int tonic) {
  Rng r(mix_seed(seed, index));
  ClipParams p;
  p.seconds = seconds;
  p.bpm = std::round(r.uniform(70.0, 160.0) * 100.0) / 100.0;
  p.key_pc = r.below(12);  // drawn even when fixed, so the draws after it do not move
  if (tonic >= 0) p.key_pc = tonic % 12;
  p.minor = r.chance(0.5);
  p.family = r.below(static_cast<int>(instrument_families().size()));
  const auto& progs = instrument_families()[p.family].programs;
  p.program = progs[r.below(static_cast<int>(progs.size()))];
  p.loudness = std::round(r.uniform(0.35, 1.0) * 1000.0) / 1000.0;
  p.progression = r.below(4);
  p.seed = r.next();
  return p;
}

Score compose(const ClipParams& p) {
  Score s;
  s.params = p;
  Rng r(mix_seed(p.seed, 0x5C04E));
  const double beat = s.beat_seconds(), bar = s.bar_seconds();
  const int bpb = p.beats_per_bar;
  const auto& prog = kProgressions[p.progression % kProgressions.size()];
  const int tonic = 48 + p.key_pc;  // C3..B3
  for (int k = 0;; ++k) {
    const double t = k * beat;
    if (t >= p.seconds - 1e-9) break;
    s.beats.push_back(t);
    if (k > 0 && k % bpb == 0) s.cuts.push_back(t);
  }
  const int chord_style = r.below(3);  // sustained / stabs on every beat / half notes
  const int melody_deg_lo = 7, melody_deg_hi = 16;  // an octave and a bit above the tonic octave
  int mdeg = 7 + 2 * r.below(3);
  auto add = [&](double t, double dur, int ch, int key, int vel) {
    if (t >= p.seconds) return;
    s.notes.push_back({t, std::min(dur, p.seconds - t), ch, std::clamp(key, 0, 127), vel});
  };
  const int bars = static_cast<int>(std::ceil(p.seconds / bar - 1e-9));
  for (int b = 0; b < bars; ++b) {
    const double t0 = b * bar;
    const int deg = prog[b % prog.size()];
    // Minor keys take the dominant bar (chord and melody) from the harmonic minor scale.
    const int* scale = !p.minor ? kMajor : deg == 4 ? kHarmonicMinor : kMinor;
    // Chords: diatonic triad on the degree, root position.
    std::vector<int> triad = {degree_note(tonic, scale, deg), degree_note(tonic, scale, deg + 2),
                              degree_note(tonic, scale, deg + 4)};
    const int cv = velocity(p.loudness, -15);
    if (chord_style == 0) {
      for (int n : triad) add(t0, bar * 0.98, kChordChannel, n, cv);
    } else if (chord_style == 1) {
      for (int k = 0; k < bpb; ++k)
        for (int n : triad) add(t0 + k * beat, beat * 0.8, kChordChannel, n, cv - (k % 2 ? 10 : 0));
    } else {
      for (int k = 0; k < bpb; k += 2)
        for (int n : triad) add(t0 + k * beat, beat * 1.9, kChordChannel, n, cv);
    }
    // Bass: the chord root an octave below the chords, on beats 1 and 3.
    for (int k = 0; k < bpb; k += 2) add(t0 + k * beat, beat * 1.8, kBassChannel, triad[0] - 12, velocity(p.loudness, -5));
    // Drums (GM channel 10): kick on 1 and 3, snare on 2 and 4, closed hi-hat on eighths.
    for (int k = 0; k < bpb; ++k) {
      const double t = t0 + k * beat;
      add(t, beat * 0.5, kDrumChannel, k % 2 == 0 ? 36 : 38, velocity(p.loudness, k == 0 ? 5 : 0));
      add(t, beat * 0.25, kDrumChannel, 42, velocity(p.loudness, -25));
      add(t + beat / 2, beat * 0.25, kDrumChannel, 42, velocity(p.loudness, -35));
    }
    // Melody: a walk over the scale that lands on a chord tone on each bar's downbeat.
    const auto& rhythm = kRhythms[r.below(static_cast<int>(kRhythms.size()))];
    double pos = 0;
    for (size_t i = 0; i < rhythm.size(); ++i) {
      if (i == 0) {
        // nearest chord tone (degree deg, deg+2 or deg+4 in the melody octave)
        int best = mdeg, bestd = 100;
        for (int c = 0; c < 3; ++c)
          for (int o = 0; o < 3; ++o) {
            const int cand = deg + 2 * c + 7 * o;
            if (cand < melody_deg_lo || cand > melody_deg_hi) continue;
            if (std::abs(cand - mdeg) < bestd) bestd = std::abs(cand - mdeg), best = cand;
          }
        mdeg = best;
      } else {
        static const int steps[6] = {-2, -1, -1, 1, 1, 2};
        mdeg = std::clamp(mdeg + steps[r.below(6)], melody_deg_lo, melody_deg_hi);
      }
      const bool rest = i > 0 && r.chance(0.1);
      if (!rest)
        add(t0 + pos * beat, rhythm[i] * beat * 0.9, kMelodyChannel, degree_note(tonic, scale, mdeg),
            velocity(p.loudness, i == 0 ? 0 : -8));
      pos += rhythm[i] * bpb / 4.0;
    }
  }
  std::stable_sort(s.notes.begin(), s.notes.end(), [](const NoteEvent& a, const NoteEvent& b) { return a.time < b.time; });
  return s;
}

nlohmann::json score_labels(const Score& s) {
  const auto& p = s.params;
  return nlohmann::json{{"bpm", p.bpm},
                        {"key", key_name(p.key_pc)},
                        {"key_pc", p.key_pc},
                        {"mode", p.minor ? "minor" : "major"},
                        {"program", p.program},
                        {"family", instrument_families()[p.family].name},
                        {"beats", s.beats},
                        {"cuts", s.cuts}};
}

}  // namespace v2m::synth
