// v2m train-codec --config configs/synth/codec.yaml [--steps N] [--eval-only [--codec DIR] [--write DIR]] [--fresh]
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "synth/codec_train.h"
#include "v2m/progress.h"

namespace {

struct Opts {
  v2m::synth::CodecRunOptions run;
  bool json = false;
};

const v2m::cli::Command reg("train-codec", "Train (or evaluate) a small EnCodec-family codec on SynthV2M audio",
                            [](CLI::App& sub, const v2m::cli::GlobalOptions& g) {
  auto o = std::make_shared<Opts>();
  sub.add_option("--config", o->run.config_path, "Codec training config (.yaml)")->required();
  sub.add_option("--set", o->run.overrides, "Override a config key: a.b=value (repeatable)");
  sub.add_option("--steps", o->run.steps, "Train until this global step (default: the config's steps)")
      ->check(CLI::PositiveNumber);
  auto* eval_only =
      sub.add_flag("--eval-only", o->run.eval_only, "Only evaluate the latest checkpoint (or the exported codec)");
  sub.add_option("--codebooks", o->run.codebooks, "With --eval-only: decode only the first N codebooks")
      ->check(CLI::PositiveNumber);
  sub.add_option("--codec", o->run.codec,
                 "With --eval-only: evaluate this codec directory, or a model directory's codec (e.g. models/v2m-tiny)")
      ->needs(eval_only);
  sub.add_option("--write", o->run.write_dir,
                 "With --eval-only: write each reconstruction as DIR/<id>.wav (score it with v2m eval --generated DIR)")
      ->needs(eval_only);
  sub.add_flag("--fresh", o->run.fresh, "Start from scratch even if out_dir has checkpoints");
  sub.add_flag("--json", o->json, "Print the evaluation as JSON");
  sub.callback([o, &g] {
    v2m::synth::CodecRunOptions run = o->run;
    if (g.threads > 0) run.overrides.push_back("threads=" + std::to_string(g.threads));
    std::unique_ptr<v2m::Progress> bar;
    int64_t first = -1;
    run.on_step = [&](int64_t step, int64_t total) {
      if (!bar) {
        first = step - 1;
        bar = std::make_unique<v2m::Progress>("train-codec", static_cast<double>(total - first), "steps");
      }
      bar->set(static_cast<double>(step - first));
    };
    const auto r = v2m::synth::run_train_codec(run);
    if (bar) bar->finish();
    if (o->json) {
      nlohmann::json j = {{"split", r.split}, {"clips", r.clips}, {"seconds", r.seconds}, {"si_snr_db", r.si_snr_db},
                          {"mel_distance", r.mel_distance}, {"step", r.step}, {"codebooks", r.codebooks}};
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("codec at step %lld, %lld codebooks, on %d %s clips (%.1f s): SI-SNR %.2f dB, mel distance %.4f\n",
                  static_cast<long long>(r.step), static_cast<long long>(r.codebooks), r.clips, r.split.c_str(),
                  r.seconds, r.si_snr_db, r.mel_distance);
    }
  });
});

}  // namespace
