// Fuzzes the YAML config loader: parse, one optional `--set` override, strict bind into a
// RunConfig, and back to YAML. Input: the YAML text, optionally followed by a NUL byte and
// an override assignment ("train.lr=0.1"). Anything but v2m::Error escaping is a bug.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "data/run_config.h"
#include "v2m/config.h"
#include "v2m/error.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto nul = in.find('\0');
  const std::string text = in.substr(0, nul);
  try {
    v2m::ConfigDoc doc = v2m::ConfigDoc::parse(text, "<fuzz>");
    if (nul != std::string::npos) doc.set(in.substr(nul + 1));
    v2m::data::RunConfig cfg;
    doc.bind(cfg);
    // A config that bound must render and bind again to the same canonical YAML.
    const std::string yaml = v2m::to_yaml(cfg);
    v2m::data::RunConfig again;
    v2m::ConfigDoc::parse(yaml, "<canonical>").bind(again);
    if (v2m::to_yaml(again) != yaml) std::abort();
  } catch (const v2m::Error&) {
  }
  return 0;
}
