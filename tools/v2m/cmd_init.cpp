// v2m init CONFIG.yaml -o DIR: a model directory with seeded random weights (the starting
// point for training, and a real model directory for tests and benchmarks). --codec DIR
// takes the codec from a trained codec directory (`v2m train-codec` exports one) or from a
// V2M model directory (config.yaml + model.safetensors, e.g. models/v2m-tiny) instead.
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "model/v2m_model.h"
#include "nn/encodec.h"
#include "nn/state_dict.h"
#include "v2m/config.h"
#include "v2m/error.h"

namespace {

const v2m::cli::Command reg("init", "Write a randomly initialised model directory from a model config",
                            [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto config = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("fp32");
  auto sets = std::make_shared<std::vector<std::string>>();
  auto codec = std::make_shared<std::string>();
  sub.add_option("config", *config, "Model config .yaml")->required();
  sub.add_option("-o,--output", *out, "Output model directory")->required();
  sub.add_option("--dtype", *dtype, "fp32, fp16 or bf16")->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  sub.add_option("--set", *sets, "Override a config key (a.b=c)");
  sub.add_option("--codec", *codec,
                 "Codec to take: a trained codec directory (config.json + model.safetensors) or a model directory");
  sub.callback([=] {
    auto m = v2m::model::load_model(*config, false, *sets);
    if (!codec->empty()) v2m::model::assign_codec(m, *codec, *config);
    v2m::model::save_model(m, *out, v2m::model::parse_dtype(*dtype));
    std::printf("%s\n", out->c_str());
  });
});

}  // namespace

namespace {

// v2m export MODEL_DIR -o DIR --dtype fp16: a model directory (a trainer checkpoint is one)
// rewritten as a plain model directory in another dtype, e.g. the fp16 models/v2m-tiny, or
// "mixed" (the decoder's linears bf16, the rest fp32) for bf16 CPU inference of large models.
// --codec DIR swaps in another codec with the same codebooks (a fine-tuned decoder).
const v2m::cli::Command reg_export("export", "Write a model directory (or trainer checkpoint) as a model directory in another dtype",
                                   [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto in = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("fp16");
  sub.add_option("model", *in, "Model directory or trainer checkpoint directory")->required();
  sub.add_option("-o,--output", *out, "Output model directory")->required();
  sub.add_option("--dtype", *dtype,
                 "fp32, fp16, bf16, or mixed (the decoder's linears bf16, the rest fp32: loads with no conversion for "
                 "bf16 CPU inference)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "mixed"}));
  auto codec = std::make_shared<std::string>();
  sub.add_option("--codec", *codec,
                 "Take the codec's encoder and decoder from this codec or model directory (e.g. a decoder fine-tuned "
                 "by `v2m train-codec` with decoder_only); its codebooks must equal the model's");
  sub.callback([=] {
    std::error_code ec;
    if (std::filesystem::equivalent(*in, *out, ec))
      throw v2m::Error(v2m::describe("cannot export", *out, "the output is the input directory"));
    auto m = v2m::model::load_model(*in, /*check_weights=*/true);
    if (!codec->empty()) v2m::model::assign_codec(m, *codec, *in + "/config.yaml", /*keep_codebooks=*/true);
    v2m::model::save_model(m, *out, *dtype);
    std::printf("%s\n", out->c_str());
  });
});

}  // namespace
