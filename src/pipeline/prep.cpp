#include "pipeline/prep.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "data/manifest.h"
#include "model/v2m_model.h"
#include "pipeline/features.h"
#include "train/feature_cache.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"
#include "v2m/progress.h"

namespace v2m::pipeline {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_video_ext(const std::string& e) {
  static const std::set<std::string> v = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg"};
  return v.count(lower(e)) > 0;
}

}  // namespace

ManifestBuildReport build_manifest_from_videos(const std::string& dir, const std::string& out,
                                               const ManifestFromVideos& opts) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(describe("cannot scan videos", dir, "not a directory"));
  if (!(opts.clip_seconds > 0)) throw UsageError("--clip-seconds must be > 0");
  std::vector<fs::path> videos;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec) && is_video_ext(it->path().extension().string())) videos.push_back(it->path());
  }
  std::sort(videos.begin(), videos.end());
  ManifestBuildReport rep;
  std::vector<data::ClipEntry> clips;
  std::set<std::string> ids;
  Progress bar("scan", static_cast<double>(videos.size()), "videos");
  for (const auto& v : videos) {
    bar.advance();
    const std::string rel = fs::relative(v, dir, ec).string();
    try {
      media::ProbeInfo info = media::probe(v.string());
      if (!info.video()) throw Error("no video stream");
      data::ClipEntry c;
      c.video = rel;
      for (const char* ext : {".wav", ".flac", ".mp3", ".ogg"}) {
        fs::path a = v;
        a.replace_extension(ext);
        if (fs::is_regular_file(a, ec)) {
          c.audio = fs::relative(a, dir, ec).string();
          break;
        }
      }
      if (c.audio.empty() && !info.audio()) throw Error("no audio track and no same-named audio file");
      double dur = info.duration;
      if (!c.audio.empty()) {
        const double ad = media::probe(v.parent_path() / fs::path(c.audio).filename()).duration;
        if (ad > 0) dur = dur > 0 ? std::min(dur, ad) : ad;
      }
      if (!(dur > 0)) throw Error("unknown duration");
      c.duration = std::min(opts.clip_seconds, dur);
      std::string id = fs::path(rel).replace_extension("").string();
      std::replace(id.begin(), id.end(), '/', '_');
      for (int k = 2; ids.count(id); ++k) id = fs::path(rel).replace_extension("").string() + "_" + std::to_string(k);
      ids.insert(id);
      c.id = id;
      clips.push_back(std::move(c));
    } catch (const std::exception& e) {
      rep.skipped.push_back(v.string() + ": " + e.what());
      spdlog::warn("prep: skipping {}: {}", v.string(), e.what());
    }
  }
  bar.finish();
  if (clips.empty()) throw Error(describe("cannot build manifest", dir, "no usable videos found"));
  auto splits = data::assign_splits(clips.size(), opts.ratios, opts.seed);
  for (size_t i = 0; i < clips.size(); ++i) clips[i].split = splits[i];
  data::write_manifest(out, clips);
  rep.clips = static_cast<int64_t>(clips.size());
  return rep;
}

PrepReport prep_cache(const data::RunConfig& cfg, const std::string& device) {
  at::InferenceMode guard;
  const at::Device dev(device);
  model::V2MModel model = train::load_run_model(cfg);
  model->to(dev);
  model->eval();
  const auto& mc = model->cfg;
  data::ManifestOptions mo;
  mo.root = cfg.data.root;
  mo.allow_absolute_paths = cfg.data.allow_absolute_paths;
  mo.check_files = false;  // a missing file becomes a failed clip, listed, not a fatal error
  const data::Manifest manifest = data::read_manifest(cfg.data.manifest, mo);

  PrepReport rep;
  rep.cache_dir = train::cache_dir(cfg, mc);
  fs::create_directories(rep.cache_dir);
  {
    // What the cache key covers, for humans.
    auto f = mc.features;
    const std::string info = "# v2m feature cache\nweights: " + train::weights_identity(cfg.init) +
                             "\nmotion: " + (mc.fusion.motion ? "true" : "false") + "\nfeatures:\n" + to_yaml(f);
    atomic_write_bytes(rep.cache_dir + "/cache_info.yaml", info.data(), info.size());
  }
  const auto plan = train::plan_shards(manifest.clips, cfg.data.shard_size);
  rep.clips = static_cast<int64_t>(manifest.clips.size());
  rep.shards = static_cast<int64_t>(plan.size());
  int64_t todo = 0;
  for (const auto& s : plan)
    if (!fs::exists(rep.cache_dir + "/" + s.file)) todo += static_cast<int64_t>(s.clips.size());
  rep.shards_reused = 0;
  Progress bar("prep", static_cast<double>(todo), "clips");
  const int sr = model->sample_rate();
  for (const auto& s : plan) {
    const std::string path = rep.cache_dir + "/" + s.file;
    if (fs::exists(path)) {
      // Count the failures recorded in reused shards too, so the report is complete.
      for (const auto& [id, why] : train::shard_failures(path)) rep.failed[id] = why;
      ++rep.shards_reused;
      continue;
    }
    std::vector<train::CachedClip> done;
    std::map<std::string, std::string> failed;
    for (const auto& c : s.clips) {
      try {
        VideoFeatures f = extract_features(model, c.video_path, c.start, c.duration, dev);
        media::Audio a = media::decode_audio(c.audio_path, sr, 1, c.start, c.duration);
        at::Tensor wav = at::from_blob(a.samples.data(), {1, 1, static_cast<int64_t>(a.samples.size())}, at::kFloat)
                             .clone()
                             .to(dev);
        // Every codebook of the codec: the cache is keyed by the codec, not the decoder, so a
        // decoder modelling fewer of them reads a prefix of the same codes.
        at::Tensor codes = model->codec->encode(wav);  // [1, Kc, T]
        if (codes.dim() != 3 || codes.size(1) != mc.codec.num_codebooks)
          throw Error("codec produced " + std::to_string(codes.size(1)) + " codebooks, its config says " +
                      std::to_string(mc.codec.num_codebooks));
        train::CachedClip cc;
        cc.id = c.id;
        cc.clip = f.clip;
        cc.clip_t = f.clip_t;
        if (mc.fusion.motion) {
          cc.motion = f.motion;
          cc.motion_t = f.motion_t;
        }
        cc.codes = codes[0];
        done.push_back(std::move(cc));
      } catch (const std::exception& e) {
        failed[c.id] = e.what();
        spdlog::warn("prep: line {}: clip '{}' failed: {}", c.line, c.id, e.what());
      }
      bar.advance();
    }
    train::write_shard(path, done, failed);
    for (const auto& [id, why] : failed) rep.failed[id] = why;
  }
  bar.finish();
  return rep;
}

}  // namespace v2m::pipeline
