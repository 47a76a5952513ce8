#include "train/feature_cache.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <cstdio>
#include <set>

#include "nn/state_dict.h"
#include "v2m/config.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/safetensors.h"

namespace v2m::train {

model::V2MModel load_run_model(const data::RunConfig& cfg) {
  model::V2MModel m = model::load_model(cfg.model);
  if (cfg.init.empty()) return m;
  const std::string cpath = cfg.init + "/config.yaml", wpath = cfg.init + "/model.safetensors";
  require_regular_file(cpath, "cannot load init model");
  require_regular_file(wpath, "cannot load init model");
  model::ModelConfig ic = model::load_model_config(cpath);
  auto same = [](auto a, auto b) { return to_yaml(a) == to_yaml(b); };
  auto& mc = m->cfg;
  // A decoder may model more of the codec's codebooks than the init's and otherwise match it.
  const int64_t init_k = ic.decoder.num_codebooks;
  auto init_decoder = ic.decoder;
  if (init_k < mc.decoder.num_codebooks) init_decoder.num_codebooks = mc.decoder.num_codebooks;
  for (auto [name, ok] : {std::pair<const char*, bool>{"clip", same(ic.clip, mc.clip)},
                          {"decoder", same(init_decoder, mc.decoder)},
                          {"codec", same(ic.codec, mc.codec)}})
    if (!ok)
      throw Error(describe("init model does not match", cpath,
                           std::string("section '") + name + "' differs from " + cfg.model));
  nn::TensorMap w = nn::load_safetensors(wpath);
  nn::load_into(*m->clip, w, "clip.", wpath);
  // The added codebooks: a zero input embedding (the shared stack starts out computing what
  // the init computed) and the fresh head the architecture drew.
  if (init_k < mc.decoder.num_codebooks) {
    nn::TensorMap own;
    nn::collect_state(*m->decoder, "decoder.", &own);
    for (int64_t k = init_k; k < mc.decoder.num_codebooks; ++k) {
      const std::string emb = "decoder.model.decoder.embed_tokens." + std::to_string(k) + ".weight";
      const std::string head = "decoder.lm_heads." + std::to_string(k) + ".weight";
      if (!own.count(emb) || !own.count(head) || w.count(emb) || w.count(head))
        throw Error(describe("init model does not match", wpath, "unexpected tensors for codebook " + std::to_string(k)));
      w[emb] = at::zeros_like(own.at(emb));
      w[head] = own.at(head).clone();
    }
    spdlog::info("init {}: decoder grown from {} to {} codebooks (new embeddings zero, new heads random)", cfg.init,
                 init_k, mc.decoder.num_codebooks);
  }
  nn::load_into(*m->decoder, w, "decoder.", wpath);
  nn::load_into(*m->codec, w, "codec.", wpath);
  return m;
}

namespace {
// Size and modification time: a file rewritten in place (a dataset regenerated under the
// same names) gets a new identity, so no stale cache entry is reused for it.
std::string file_identity(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}
}  // namespace

std::string weights_identity(const std::string& init_dir) {
  if (init_dir.empty()) return "random-init";
  const std::string w = init_dir + "/model.safetensors";
  if (file_identity(w) == "missing") throw Error(describe("cannot read init weights", w, "no such file"));
  // FNV-1a over the names, dtypes, shapes and bytes of the CLIP and codec tensors only: a
  // new decoder or fusion init (other codebooks, other widths) reuses the cache, a different
  // CLIP tower or codec does not.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 1099511628211ull;
    }
  };
  int64_t n_tensors = 0;
  for (const auto& [name, t] : nn::load_safetensors(w)) {
    if (name.rfind("clip.", 0) != 0 && name.rfind("codec.", 0) != 0) continue;
    const at::Tensor c = t.contiguous();
    const std::string head = name + "|" + std::string(c10::toString(c.scalar_type())) + "|" + c10::str(c.sizes());
    mix(head.data(), head.size());
    mix(c.data_ptr(), c.nbytes());
    ++n_tensors;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return "clip+codec tensors " + std::to_string(n_tensors) + ":" + buf;
}

std::string cache_dir(const data::RunConfig& run, const model::ModelConfig& m) {
  // Only what changes the cached tensors: frame sampling and descriptor settings, the CLIP
  // tower, the codec, whether motion is extracted, and the frozen weights themselves.
  auto features = m.features;
  auto clip = m.clip;
  auto codec = m.codec;
  std::string key = to_yaml(features) + "\n--\n" + to_yaml(clip) + "\n--\n" + to_yaml(codec) +
                    "\nmotion: " + (m.fusion.motion ? "1" : "0") + "\nweights: " + weights_identity(run.init);
  return run.data.cache_dir + "/" + config_hash(key);
}

std::vector<ShardPlan> plan_shards(const std::vector<data::ClipEntry>& clips, int64_t shard_size) {
  if (shard_size < 1) throw Error("plan_shards: shard_size must be >= 1");
  std::vector<ShardPlan> out;
  for (size_t b = 0, k = 0; b < clips.size(); b += shard_size, ++k) {
    ShardPlan s;
    std::string key;
    for (size_t i = b; i < std::min(clips.size(), b + static_cast<size_t>(shard_size)); ++i) {
      const auto& c = clips[i];
      s.clips.push_back(c);
      key += c.id + "|" + c.video + "|" + c.audio + "|" + std::to_string(c.start) + "|" +
             std::to_string(c.duration) + "|" + file_identity(c.video_path) + "|" + file_identity(c.audio_path) + "\n";
    }
    char name[64];
    std::snprintf(name, sizeof name, "shard-%05zu-", k);
    s.file = name + config_hash(key).substr(0, 12) + ".safetensors";
    out.push_back(std::move(s));
  }
  return out;
}

void write_shard(const std::string& path, const std::vector<CachedClip>& clips,
                 const std::map<std::string, std::string>& failed) {
  nn::TensorMap t;
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& c : clips) {
    ids.push_back(c.id);
    t[c.id + "/clip"] = c.clip.to(at::kCPU, at::kFloat).contiguous();
    t[c.id + "/clip_t"] = c.clip_t.to(at::kCPU, at::kFloat).contiguous();
    if (c.motion.defined()) {
      t[c.id + "/motion"] = c.motion.to(at::kCPU, at::kFloat).contiguous();
      t[c.id + "/motion_t"] = c.motion_t.to(at::kCPU, at::kFloat).contiguous();
    }
    t[c.id + "/codes"] = c.codes.to(at::kCPU, at::kInt).contiguous();
  }
  nlohmann::json f = nlohmann::json::object();
  for (const auto& [id, why] : failed) f[id] = why;
  nn::save_safetensors(path, t, {{"format", "v2m-feature-cache"}, {"ids", ids.dump()}, {"failed", f.dump()}});
}

namespace {
std::map<std::string, std::string> failures_of(const SafeTensorsFile& file) {
  std::map<std::string, std::string> failed;
  if (auto it = file.metadata().find("failed"); it != file.metadata().end()) {
    auto j = nlohmann::json::parse(it->second, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(describe("feature cache", file.path(), "bad 'failed' metadata"));
    for (auto e = j.begin(); e != j.end(); ++e) failed[e.key()] = e->is_string() ? e->get<std::string>() : "?";
  }
  return failed;
}
}  // namespace

std::map<std::string, std::string> shard_failures(const std::string& path) {
  return failures_of(*SafeTensorsFile::open(path));
}

FeatureCache FeatureCache::open(const std::string& dir, const std::vector<data::ClipEntry>& clips,
                                int64_t shard_size, bool with_motion, const std::string& split) {
  FeatureCache fc;
  const auto plan = plan_shards(clips, shard_size);
  size_t missing = 0;
  std::string first_missing;
  for (const auto& s : plan)
    if (!std::filesystem::exists(dir + "/" + s.file)) {
      if (!missing++) first_missing = s.file;
    }
  if (missing)
    throw Error(describe("feature cache", dir,
                         std::to_string(missing) + " of " + std::to_string(plan.size()) + " shards missing (first: " +
                             first_missing + "); run `v2m prep --config ...` first"));
  for (const auto& s : plan) {
    const std::string path = dir + "/" + s.file;
    auto file = SafeTensorsFile::open(path);
    std::map<std::string, std::string> failed = failures_of(*file);
    for (const auto& c : s.clips) {
      if (!split.empty() && c.split != split) continue;
      if (failed.count(c.id)) {
        fc.failed_[c.id] = failed[c.id];
        continue;
      }
      auto get = [&](const std::string& n) { return nn::to_tensor(file->get(c.id + "/" + n), file); };
      CachedClip cc;
      cc.id = c.id;
      cc.clip = get("clip");
      cc.clip_t = get("clip_t");
      if (with_motion) {
        if (!file->contains(c.id + "/motion"))
          throw Error(describe("feature cache", path, "clip '" + c.id + "' has no motion features (stale cache?)"));
        cc.motion = get("motion");
        cc.motion_t = get("motion_t");
      }
      cc.codes = get("codes").to(at::kLong);
      if (cc.clip.dim() != 2 || cc.clip_t.dim() != 1 || cc.clip.size(0) != cc.clip_t.size(0) || cc.codes.dim() != 2 ||
          cc.codes.size(1) < 1)
        throw Error(describe("feature cache", path, "clip '" + c.id + "' has malformed tensors"));
      fc.clips_.push_back(std::move(cc));
    }
  }
  return fc;
}

}  // namespace v2m::train
