#include "nn/hf_json.h"

#include <fstream>

#include "v2m/fs.h"

namespace v2m::nn {

nlohmann::json read_json_file(const std::string& path) {
  require_regular_file(path, "cannot read config");
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(describe("invalid config.json", path, "not valid JSON"));
  return j;
}

}  // namespace v2m::nn
