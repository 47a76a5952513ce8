#include "model/model_config.h"

#include "v2m/error.h"

namespace v2m::model {

namespace {
int64_t descriptor_dim(int64_t grid, int64_t bins) { return grid * grid * bins + 2 + 4 + 1; }
}  // namespace

void ModelConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& why) { throw Error(describe("config", source, why)); };
  if (stride_s > window_s) bad("stride_s " + std::to_string(stride_s) + " is larger than window_s " + std::to_string(window_s));
  const int64_t d = descriptor_dim(features.motion_grid, features.motion_bins);
  if (fusion.motion && motion.in_dim != d)
    bad("motion.in_dim is " + std::to_string(motion.in_dim) + " but features.motion_grid/motion_bins give descriptors of " +
        std::to_string(d));
  if (fusion.width % fusion.heads) bad("fusion.width is not divisible by fusion.heads");
  if (decoder.hidden_size % decoder.num_attention_heads) bad("decoder.hidden_size is not divisible by decoder.num_attention_heads");
  if (clip.hidden_size % clip.num_attention_heads) bad("clip.hidden_size is not divisible by clip.num_attention_heads");
  if (clip.image_size % clip.patch_size) bad("clip.image_size is not a multiple of clip.patch_size");
  // The decoder models the first num_codebooks of the codec's residual codebooks (as
  // EnCodec's bandwidth choice does); the codec decodes that prefix.
  if (decoder.num_codebooks > codec.num_codebooks)
    bad("decoder.num_codebooks (" + std::to_string(decoder.num_codebooks) + ") > codec.num_codebooks (" +
        std::to_string(codec.num_codebooks) + ")");
  if (decoder.vocab_size != codec.codebook_size)
    bad("decoder.vocab_size (" + std::to_string(decoder.vocab_size) + ") != codec.codebook_size (" +
        std::to_string(codec.codebook_size) + ")");
}

ModelConfig load_model_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto cfg = load_config<ModelConfig>(path, overrides);
  cfg.validate(path);
  return cfg;
}

}  // namespace v2m::model
