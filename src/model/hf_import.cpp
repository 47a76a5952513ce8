#include "model/hf_import.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "model/v2m_model.h"
#include "nn/hf_json.h"
#include "nn/state_dict.h"
#include "v2m/error.h"

namespace v2m::model {

namespace {

// Adds `src` tensors whose names start with `from` to `dst` under `to` + rest.
void take_prefixed(const nn::TensorMap& src, const std::string& from, const std::string& to, nn::TensorMap* dst) {
  for (const auto& [k, t] : src)
    if (k.rfind(from, 0) == 0) (*dst)[to + k.substr(from.size())] = t;
}

}  // namespace

void import_hf(const ImportPaths& in, const std::string& out_dir, const std::string& dtype, uint64_t seed) {
  if (in.clip.empty() || in.musicgen.empty()) throw UsageError("import needs --clip DIR and --musicgen DIR");
  ModelConfig cfg;
  if (!in.base_config.empty()) cfg = load_model_config(in.base_config);
  cfg.name = "v2m-s";
  const auto clip_json = nn::read_json_file(in.clip + "/config.json");
  const auto mg_json = nn::read_json_file(in.musicgen + "/config.json");
  cfg.clip = nn::clip_vision_config_from_hf(clip_json);
  cfg.decoder = nn::musicgen_decoder_config_from_hf(mg_json);
  if (!in.encodec.empty()) {
    cfg.codec = nn::encodec_config_from_hf(nn::read_json_file(in.encodec + "/config.json"));
  } else if (mg_json.contains("audio_encoder")) {
    cfg.codec = nn::encodec_config_from_hf(mg_json["audio_encoder"]);
  } else {
    throw Error(describe("cannot import", in.musicgen + "/config.json", "no audio_encoder section; pass --encodec DIR"));
  }
  cfg.validate(out_dir);

  // The fusion is new: seeded random init; the pretrained parts are replaced below.
  torch::manual_seed(static_cast<int64_t>(seed));
  V2MModel m(cfg);
  nn::TensorMap tensors;
  nn::collect_state(*m->fusion, "fusion.", &tensors);

  const std::string clip_w = in.clip + "/model.safetensors";
  auto clip = nn::load_safetensors(clip_w);
  take_prefixed(clip, "vision_model.", "clip.vision_model.", &tensors);
  take_prefixed(clip, "visual_projection.", "clip.visual_projection.", &tensors);
  tensors.erase("clip.vision_model.embeddings.position_ids");  // a buffer older exports carry

  const std::string mg_w = in.musicgen + "/model.safetensors";
  auto mg = nn::load_safetensors(mg_w);
  take_prefixed(mg, "decoder.", "decoder.", &tensors);
  // enc_to_dec_proj maps T5 states to the decoder width; v2m's fusion.out_proj takes that
  // role, so it is not imported (nor is the T5 text encoder).
  nn::TensorMap codec_src;
  if (!in.encodec.empty())
    take_prefixed(nn::load_safetensors(in.encodec + "/model.safetensors"), "", "", &codec_src);
  else
    take_prefixed(mg, "audio_encoder.", "", &codec_src);
  take_prefixed(nn::fold_weight_norm(codec_src), "", "codec.", &tensors);

  // Strict: every model tensor must be provided with the right shape (the error names
  // the tensor and both shapes); extras were dropped above by prefix.
  nn::load_into(*m, tensors, "", "import");
  save_model(m, out_dir, dtype,
             {{"source_clip", in.clip}, {"source_musicgen", in.musicgen}, {"source_encodec", in.encodec}});
}

}  // namespace v2m::model
