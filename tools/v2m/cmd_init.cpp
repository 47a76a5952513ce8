// v2m init CONFIG.yaml -o DIR: a model directory with seeded random weights (the starting
// point for training, and a real model directory for tests and benchmarks).
#include <torch/torch.h>

#include <cstdio>
#include <memory>

#include "commands.h"
#include "model/v2m_model.h"

namespace {

const v2m::cli::Command reg("init", "Write a randomly initialised model directory from a model config",
                            [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto config = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("fp32");
  auto sets = std::make_shared<std::vector<std::string>>();
  sub.add_option("config", *config, "Model config .yaml")->required();
  sub.add_option("-o,--output", *out, "Output model directory")->required();
  sub.add_option("--dtype", *dtype, "fp32, fp16 or bf16")->check(CLI::IsMember({"fp32", "fp16", "bf16"}));
  sub.add_option("--set", *sets, "Override a config key (a.b=c)");
  sub.callback([=] {
    auto m = v2m::model::load_model(*config, false, *sets);
    v2m::model::save_model(m, *out, v2m::model::parse_dtype(*dtype));
    std::printf("%s\n", out->c_str());
  });
});

}  // namespace
