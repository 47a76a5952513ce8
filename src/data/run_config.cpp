#include "data/run_config.h"

#include "v2m/error.h"

namespace v2m::data {

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  RunConfig cfg = load_config<RunConfig>(path, overrides);
  cfg.source = path;
  if (cfg.model.empty()) throw Error(describe("config", path, "'model' (architecture yaml) is not set"));
  if (cfg.model[0] != '/') {
    auto pos = path.find_last_of('/');
    const std::string dir = pos == std::string::npos ? "." : path.substr(0, pos);
    cfg.model = dir + "/" + cfg.model;
  }
  if (cfg.data.manifest.empty())
    throw Error(describe("config", path, "'data.manifest' is not set"));
  if (cfg.train.batch_size % cfg.train.grad_accum != 0)
    throw Error(describe("config", path, "train.batch_size must be a multiple of train.grad_accum"));
  return cfg;
}

}  // namespace v2m::data
