// v2m info MODEL: config and parameter counts per part.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "model/v2m_model.h"
#include "v2m/config.h"

namespace {

const v2m::cli::Command reg("info", "Show a model's config and parameter counts", [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto model = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto sets = std::make_shared<std::vector<std::string>>();
  sub.add_option("model", *model, "Model directory or model config .yaml")->required();
  sub.add_flag("--json", *json, "Print JSON");
  sub.add_option("--set", *sets, "Override a config key (a.b=c)");
  sub.callback([=] {
    auto m = v2m::model::load_model(*model, false, *sets);
    auto counts = m->parameter_counts();
    if (*json) {
      nlohmann::json j;
      j["name"] = m->cfg.name;
      j["parameters"] = counts;
      j["sample_rate"] = m->sample_rate();
      j["frame_rate"] = m->frame_rate();
      std::printf("%s\n", j.dump(2).c_str());
      return;
    }
    std::printf("%s", v2m::to_yaml(m->cfg).c_str());
    std::printf("# parameters\n");
    for (const char* k : {"clip", "fusion", "decoder", "codec", "total"})
      std::printf("#   %-8s %12lld  (%.1fM)\n", k, static_cast<long long>(counts[k]), counts[k] / 1e6);
  });
});

}  // namespace
