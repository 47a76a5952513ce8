// v2m eval --config RUN.yaml --split test [--model DIR | --checkpoint DIR] [--generated DIR]
//          [--metrics fad,kld,chroma,av_align] [--limit N] [--out-dir DIR] [--set k=v]
#include <cstdio>
#include <memory>

#include "commands.h"
#include "eval/eval_driver.h"

namespace {

const v2m::cli::Command reg("eval", "Evaluate a model on a dataset split: FAD, KLD, chroma similarity, AV-Align",
                            [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto o = std::make_shared<v2m::eval::EvalOptions>();
  auto json = std::make_shared<bool>(false);
  sub.add_option("--config", o->config, "Run config .yaml (data.manifest, eval section)")->required();
  sub.add_option("--split", o->split, "Manifest split to evaluate")->check(CLI::IsMember({"train", "val", "test"}));
  sub.add_option("--model", o->model, "Model directory to evaluate");
  sub.add_option("--checkpoint", o->checkpoint, "Trainer checkpoint directory to evaluate");
  sub.add_option("--generated", o->generated, "Evaluate <id>.wav files from this directory instead of generating");
  sub.add_option("--metrics", o->metrics, "Metrics (default: the config's eval.metrics)")
      ->delimiter(',')
      ->check(CLI::IsMember({"fad", "kld", "chroma", "av_align"}));
  sub.add_option("--limit", o->limit, "Evaluate the first N clips of the split (0 = all)")->check(CLI::NonNegativeNumber);
  sub.add_option("--out-dir", o->out_dir, "Output directory (default: <out_dir>/eval-<split>)");
  sub.add_option("--set", o->overrides, "Override a run config key (a.b=c)");
  sub.add_flag("--shuffle-video", o->shuffle_video,
               "Baseline: condition clip i on clip i+1's video (scored against clip i); output in eval-<split>-shuffled");
  sub.add_flag("--json", *json, "Print results.json instead of the table");
  sub.callback([o, json] {
    auto rep = v2m::eval::run_eval(*o);
    if (*json) std::printf("%s\n", rep.results.dump(2).c_str());
    else std::printf("%s", rep.table.c_str());
  });
});

}  // namespace
