#include "model/v2m_model.h"

#include <sys/stat.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "nn/linear.h"
#include "nn/state_dict.h"
#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m::model {

namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

V2MModelImpl::V2MModelImpl(const ModelConfig& c) : cfg(c) {
  clip = register_module("clip", nn::ClipVision(cfg.clip));
  fusion = register_module("fusion", nn::TemporalFusion(cfg.fusion, cfg.motion, cfg.clip_dim(), cfg.decoder.hidden_size));
  decoder = register_module("decoder", nn::MusicgenDecoder(cfg.decoder));
  codec = register_module("codec", nn::Encodec(cfg.codec));
}

std::map<std::string, int64_t> V2MModelImpl::parameter_counts() const {
  std::map<std::string, int64_t> m;
  m["clip"] = nn::count_parameters(*clip);
  m["fusion"] = nn::count_parameters(*fusion);
  m["decoder"] = nn::count_parameters(*decoder);
  m["codec"] = nn::count_parameters(*codec);
  m["total"] = m["clip"] + m["fusion"] + m["decoder"] + m["codec"];
  return m;
}

double V2MModelImpl::frame_rate() const {
  int64_t hop = 1;
  for (auto r : cfg.codec.upsampling_ratios) hop *= r;
  return static_cast<double>(cfg.codec.sampling_rate) / static_cast<double>(hop);
}

nn::Encodec load_codec_from(const std::string& dir) {
  if (std::filesystem::exists(dir + "/config.yaml")) return load_model(dir, /*check_weights=*/true)->codec;
  return nn::load_encodec(dir);
}

nn::Encodec load_codec_matching(const std::string& dir, const nn::EncodecConfig& want, const std::string& config) {
  nn::Encodec trained = load_codec_from(dir);
  nn::EncodecConfig have = trained->cfg, expected = want;
  have.target_bandwidths = expected.target_bandwidths;  // metadata; num_codebooks is the architecture
  if (to_yaml(expected) != to_yaml(have))
    throw Error(describe("codec does not match the model config", dir,
                         "its architecture differs from the codec section of " + config));
  return trained;
}

void assign_codec(V2MModel& model, const std::string& dir, const std::string& config, bool keep_codebooks) {
  nn::Encodec trained = load_codec_matching(dir, model->cfg.codec, config);
  nn::TensorMap w, mine;
  nn::collect_state(*trained, "", &w);
  if (keep_codebooks) {
    nn::collect_state(*model->codec, "", &mine);
    for (const auto& [k, t] : mine)
      if (k.rfind("quantizer.", 0) == 0 && !at::equal(t.to(at::kFloat), w.at(k).to(at::kFloat)))
        throw Error(describe("cannot replace the codec", dir,
                             "its codebook " + k + " differs from the model's (the decoder's tokens would change meaning)"));
  }
  nn::load_into(*model->codec, w, "", dir + "/model.safetensors");
}

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32" || s == "f32") return at::kFloat;
  if (s == "fp16" || s == "float16" || s == "f16") return at::kHalf;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  throw UsageError("unknown dtype '" + s + "' (use fp32, fp16 or bf16)");
}

V2MModel load_model(const std::string& path, bool check_weights, const std::vector<std::string>& overrides,
                    bool bf16_decoder_linears) {
  if (is_dir(path)) {
    const std::string cfg_path = path + "/config.yaml";
    const std::string w_path = path + "/model.safetensors";
    require_regular_file(cfg_path, "cannot load model");
    require_regular_file(w_path, "cannot load model");
    ModelConfig cfg = load_model_config(cfg_path, overrides);
    // Every parameter is assigned from the file below (a missing one is an error), so the
    // linears skip their random init: at Model-S size it was most of the load time.
    V2MModel m = [&] {
      nn::SkipInitGuard skip;
      return V2MModel(cfg);
    }();
    nn::TensorMap tensors = nn::load_safetensors(w_path);
    if (check_weights) nn::check_finite(tensors, w_path);
    // Zero-copy where the file's dtype is the model's: parameters alias the mapping.
    std::function<bool(const std::string&)> keep;
    if (bf16_decoder_linears)
      keep = [&](const std::string& key) {
        const auto it = tensors.find(key);
        return it != tensors.end() && it->second.scalar_type() == at::kBFloat16 && key.rfind("decoder.", 0) == 0 &&
               nn::musicgen_converted_weight(key.substr(8));
      };
    auto used = nn::load_into(*m, tensors, "", w_path, /*alias=*/true, keep);
    std::set<std::string> used_set(used.begin(), used.end());
    for (const auto& [k, t] : tensors)
      if (!used_set.count(k))
        throw Error(describe("model/weights mismatch", w_path, "tensor '" + k + "' is not part of the model in " + cfg_path));
    m->eval();
    return m;
  }
  if (ends_with(path, ".yaml") || ends_with(path, ".yml")) {
    require_regular_file(path, "cannot load model config");
    ModelConfig cfg = load_model_config(path, overrides);
    // Random init with a fixed seed: the same config gives the same model everywhere.
    torch::manual_seed(0);
    V2MModel m(cfg);
    m->eval();
    return m;
  }
  require_regular_file(path, "cannot load model");  // names a missing path precisely
  throw Error(describe("cannot load model", path, "expected a model directory (config.yaml + model.safetensors) or a config .yaml"));
}

void save_model(V2MModel& model, const std::string& dir, at::ScalarType dtype,
                const std::map<std::string, std::string>& metadata, bool bf16_decoder_linears) {
  if (!is_dir(dir) && ::mkdir(dir.c_str(), 0755) != 0)
    throw Error(describe("cannot create model directory", dir, std::strerror(errno)));
  if (model->decoder->weights_dtype() != nn::WeightsDtype::FP32)
    throw Error(describe("cannot save model", dir,
                         std::string("its decoder weights were converted to ") +
                             nn::weights_dtype_name(model->decoder->weights_dtype()) + " for inference"));
  nn::TensorMap state;
  nn::collect_state(*model, "", &state);
  for (auto& [k, t] : state)
    if (t.is_floating_point())
      t = t.to(bf16_decoder_linears && k.rfind("decoder.", 0) == 0 && nn::musicgen_converted_weight(k.substr(8))
                   ? at::kBFloat16
                   : dtype);
  auto md = metadata;
  md["format"] = "v2m";
  md["name"] = model->cfg.name;
  nn::save_safetensors(dir + "/model.safetensors", state, md);
  const std::string y = to_yaml(model->cfg);
  atomic_write_bytes(dir + "/config.yaml", y.data(), y.size());
}

void save_model(V2MModel& model, const std::string& dir, const std::string& dtype_name,
                const std::map<std::string, std::string>& metadata) {
  const bool mixed = dtype_name == "mixed";
  save_model(model, dir, mixed ? at::kFloat : parse_dtype(dtype_name), metadata, mixed);
}

}  // namespace v2m::model
