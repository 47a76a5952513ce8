// v2m import --clip DIR --musicgen DIR [--encodec DIR] -o OUT
#include <cstdio>
#include <memory>

#include "commands.h"
#include "model/hf_import.h"

namespace {

const v2m::cli::Command reg("import", "Assemble a Model-S directory from Hugging Face downloads",
                            [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto in = std::make_shared<v2m::model::ImportPaths>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("fp32");
  auto seed = std::make_shared<uint64_t>(0);
  sub.add_option("--clip", in->clip, "openai/clip-vit-base-patch32 directory")->required();
  sub.add_option("--musicgen", in->musicgen, "facebook/musicgen-small directory")->required();
  sub.add_option("--encodec", in->encodec, "facebook/encodec_32khz directory (default: musicgen's audio_encoder)");
  sub.add_option("--config", in->base_config, "v2m model yaml for the fusion/features sections (default: Model-S)");
  sub.add_option("-o,--output", *out, "Output model directory")->required();
  sub.add_option("--dtype", *dtype,
                 "fp32, fp16, bf16, or mixed (the decoder's linears bf16, the rest fp32: the fastest load for "
                 "CPU generation; keep fp32 to train from)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "mixed"}));
  sub.add_option("--seed", *seed, "Seed of the new fusion's initialisation");
  sub.callback([=] {
    v2m::model::import_hf(*in, *out, *dtype, *seed);
    std::printf("%s\n", out->c_str());
  });
});

}  // namespace
