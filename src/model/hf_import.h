// Assembles a Model-S directory from Hugging Face hub downloads (design §3.1):
// openai/clip-vit-base-patch32, facebook/encodec_32khz, facebook/musicgen-small.
#pragma once

#include <string>

namespace v2m::model {

struct ImportPaths {
  std::string clip;      // CLIPModel or CLIPVisionModelWithProjection dir (config.json + model.safetensors)
  std::string encodec;   // EncodecModel dir; empty: the musicgen checkpoint's audio_encoder.*
  std::string musicgen;  // MusicgenForConditionalGeneration dir
  std::string base_config;  // optional v2m model yaml for the non-pretrained sections (fusion, features)
};

// Writes out_dir/config.yaml + model.safetensors with a freshly initialised fusion
// (seeded), in `dtype` (fp32, fp16, bf16, or mixed: the decoder's linears bf16, the rest
// fp32). Every tensor the model needs must come from the inputs; wrong shapes and
// configs that disagree with tensors are errors naming the tensor.
void import_hf(const ImportPaths& in, const std::string& out_dir, const std::string& dtype, uint64_t seed);

}  // namespace v2m::model
