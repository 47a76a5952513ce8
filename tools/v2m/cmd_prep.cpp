// v2m prep --videos DIR -o manifest.jsonl     (a manifest from a folder of videos)
// v2m prep --config run.yaml [--set k=v]      (the feature cache training reads)
#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "data/run_config.h"
#include "pipeline/prep.h"
#include "train/trainer.h"
#include "v2m/error.h"

namespace {

struct Opts {
  std::string videos, output, config, device = "auto";
  std::vector<std::string> sets;
  std::vector<double> ratios = {0.7, 0.2, 0.1};
  double clip_seconds = 30;
  uint64_t seed = 0;
};

void run(const Opts& o) {
  if (!o.videos.empty() == !o.config.empty()) throw v2m::UsageError("give either --videos DIR or --config FILE");
  if (!o.videos.empty()) {
    const std::string out = o.output.empty() ? o.videos + "/manifest.jsonl" : o.output;
    v2m::pipeline::ManifestFromVideos mo;
    mo.clip_seconds = o.clip_seconds;
    mo.ratios = o.ratios;
    mo.seed = o.seed;
    auto rep = v2m::pipeline::build_manifest_from_videos(o.videos, out, mo);
    std::printf("manifest: %s (%lld clips, %zu skipped)\n", out.c_str(), static_cast<long long>(rep.clips),
                rep.skipped.size());
    for (const auto& s : rep.skipped) std::printf("skipped: %s\n", s.c_str());
    if (!o.output.empty() && o.output.rfind(o.videos, 0) != 0)
      std::printf("note: manifest paths are relative to %s; set data.root to it\n", o.videos.c_str());
    return;
  }
  auto cfg = v2m::data::load_run_config(o.config, o.sets);
  auto rep = v2m::pipeline::prep_cache(cfg, v2m::train::resolve_device(o.device));
  std::printf("cache: %s\nclips: %lld in %lld shards (%lld reused)\nfailed: %zu\n", rep.cache_dir.c_str(),
              static_cast<long long>(rep.clips), static_cast<long long>(rep.shards),
              static_cast<long long>(rep.shards_reused), rep.failed.size());
  for (const auto& [id, why] : rep.failed) std::printf("failed: %s: %s\n", id.c_str(), why.c_str());
}

const v2m::cli::Command reg("prep", "Build a manifest from videos, or the feature cache for training", [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto o = std::make_shared<Opts>();
  sub.add_option("--videos", o->videos, "Folder of videos to make a manifest from");
  sub.add_option("-o,--output", o->output, "Manifest to write (default: DIR/manifest.jsonl)");
  sub.add_option("--ratios", o->ratios, "train,val,test split ratios")->delimiter(',')->expected(3);
  sub.add_option("--clip-seconds", o->clip_seconds, "Seconds per clip, from the start of each video")
      ->check(CLI::PositiveNumber);
  sub.add_option("--seed", o->seed, "Split seed");
  sub.add_option("-c,--config", o->config, "Run config: extract the feature cache for its manifest");
  sub.add_option("--set", o->sets, "Override a config value (key.path=value), repeatable");
  sub.add_option("--device", o->device, "auto, cpu or cuda");
  sub.callback([o] { run(*o); });
});

}  // namespace
