// V2MModel: CLIP vision + motion encoder + temporal fusion + MusicGen decoder + EnCodec,
// assembled from a ModelConfig. A model directory is config.yaml + model.safetensors
// with tensors under "clip.", "fusion.", "decoder.", "codec." (the pretrained parts keep
// their Hugging Face names below the prefix).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <map>
#include <memory>
#include <string>

#include "model/model_config.h"

namespace v2m::model {

struct V2MModelImpl : torch::nn::Module {
  explicit V2MModelImpl(const ModelConfig& cfg);

  ModelConfig cfg;
  nn::ClipVision clip{nullptr};
  nn::TemporalFusion fusion{nullptr};
  nn::MusicgenDecoder decoder{nullptr};
  nn::Encodec codec{nullptr};

  // Parameter counts per part and "total".
  std::map<std::string, int64_t> parameter_counts() const;
  int sample_rate() const { return static_cast<int>(cfg.codec.sampling_rate); }
  double frame_rate() const;  // codec frames per second
};
TORCH_MODULE(V2MModel);

// `path` is a model directory (config.yaml + model.safetensors) or a model config .yaml
// (random init with a fixed seed: for tests, benchmarks and the untrained pipeline).
// Strict: a missing/mismatched tensor names the tensor and both shapes; unused tensors in
// the file are an error too (they mean the config and the weights disagree).
// check_weights: scan every tensor for NaN/Inf.
// bf16_decoder_linears: the decoder weights that set_weights_dtype converts, where they are
// bf16 in the file, stay bf16 over the file mapping instead of widening to fp32. Only for a
// decoder that is converted to bf16 next (Generator::load does): it then takes them with no
// copy, so a bf16 file loads in the time of an fp32 one, and with no fresh memory.
V2MModel load_model(const std::string& path, bool check_weights = false, const std::vector<std::string>& overrides = {},
                    bool bf16_decoder_linears = false);

// Writes dir/config.yaml and dir/model.safetensors (floating tensors cast to `dtype`:
// kFloat, kHalf or kBFloat16), each atomically. bf16_decoder_linears: the decoder weights
// that bf16 inference converts (nn::musicgen_converted_weight) are written in bf16 whatever
// `dtype` is: with kFloat, the "mixed" file that a bf16 CPU decoder loads with no conversion
// and no copy (every tensor aliases the mapping in its own dtype).
void save_model(V2MModel& model, const std::string& dir, at::ScalarType dtype = at::kFloat,
                const std::map<std::string, std::string>& metadata = {}, bool bf16_decoder_linears = false);
// The same by name, as `v2m export/import --dtype` take it: fp32, fp16, bf16 (parse_dtype's
// spellings), or "mixed" (kFloat with bf16_decoder_linears).
void save_model(V2MModel& model, const std::string& dir, const std::string& dtype_name,
                const std::map<std::string, std::string>& metadata = {});

// The codec of `dir`: a codec directory (`v2m train-codec` exports one: config.json +
// model.safetensors in EncodecModel names) or a V2M model directory (config.yaml), whose
// codec it takes (a model directory's weights are checked for NaN/Inf, as `v2m export` does).
nn::Encodec load_codec_from(const std::string& dir);

// load_codec_from(dir), checked to have the architecture `want` (the codec section of the
// config file `config`, named in the error).
nn::Encodec load_codec_matching(const std::string& dir, const nn::EncodecConfig& want, const std::string& config);

// Replaces model's codec weights by those of load_codec_from(dir). Throws v2m::Error naming
// `dir` when that codec's architecture differs from the model's codec section (`config`
// names where that section came from). With keep_codebooks, the quantizer codebooks must
// also be equal (the decoder's tokens keep their meaning: only the codec's encoder and
// decoder change), else it throws and leaves the model as it was.
void assign_codec(V2MModel& model, const std::string& dir, const std::string& config, bool keep_codebooks = false);

// Parses "fp32"/"float32", "fp16"/"float16", "bf16"/"bfloat16".
at::ScalarType parse_dtype(const std::string& s);

}  // namespace v2m::model
