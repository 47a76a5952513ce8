// v2m synth -o DIR --clips N --seconds S --seed K: the SynthV2M procedural dataset.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "synth/dataset.h"
#include "synth/score.h"
#include "v2m/progress.h"

namespace {

const v2m::cli::Command reg("synth", "Generate the SynthV2M procedural video-music dataset",
                            [](CLI::App& sub, const v2m::cli::GlobalOptions& g) {
  auto o = std::make_shared<v2m::synth::SynthOptions>();
  sub.add_option("-o,--out-dir", o->out_dir, "Output directory (clips/ + manifest.jsonl)")->required();
  sub.add_option("--clips", o->clips, "Number of clips")->check(CLI::Range(1, 1000000));
  sub.add_option("--seconds", o->seconds, "Seconds per clip")->check(CLI::Range(0.5, 600.0));
  sub.add_option("--seed", o->seed, "Dataset seed (same seed, same dataset)");
  sub.add_option("--sample-rate", o->sample_rate, "Audio sample rate (the codec's)")->check(CLI::Range(8000, 96000));
  sub.add_option("--size", o->size, "Frame width and height (even)")->check(CLI::Range(16, 4096));
  sub.add_option("--fps", o->fps, "Video frames per second")->check(CLI::Range(1.0, 120.0));
  sub.add_option("--soundfont", o->soundfont, "General MIDI .sf2 (default: TimGM6mb / FluidR3_GM from Debian)");
  sub.add_option("--video-codec", o->video_codec, "libavcodec video encoder (auto: libx264, else mpeg4)");
  auto tonic = std::make_shared<std::string>("random");
  sub.add_option("--tonic", *tonic, "Key of every clip: C, C#, ..., B, or random (one per clip)");
  sub.callback([o, tonic, &g] {
    v2m::synth::SynthOptions opts = *o;
    if (*tonic != "random") {
      opts.tonic = v2m::synth::key_pitch_class(*tonic);
      if (opts.tonic < 0)
        throw CLI::ValidationError("--tonic", "'" + *tonic + "' is not a key: C, C#, D, D#, E, F, F#, G, G#, A, A#, B or random");
    }
    opts.threads = g.threads;
    std::unique_ptr<v2m::Progress> bar = std::make_unique<v2m::Progress>("synth", opts.clips, "clips");
    const std::string manifest = v2m::synth::generate_dataset(opts, [&](int done, int) { bar->set(done); });
    bar->finish();
    std::printf("%s\n", manifest.c_str());
  });
});

}  // namespace
