// Fuzzes the JSON-lines manifest reader. Besides "no crash, only v2m::Error", it checks the
// confinement promise: with absolute paths disallowed, every resolved path stays under the
// dataset root (no absolute path, no ".." component).
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "data/manifest.h"
#include "v2m/error.h"

namespace {

void check_confined(const std::string& root, const std::string& resolved) {
  if (resolved.compare(0, root.size() + 1, root + "/") != 0) std::abort();
  std::stringstream ss(resolved.substr(root.size() + 1));
  std::string part;
  while (std::getline(ss, part, '/'))
    if (part == "..") std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  v2m::data::ManifestOptions opts;
  opts.root = "/dataset";
  opts.check_files = false;  // no file system access from the fuzzer
  try {
    v2m::data::Manifest m = v2m::data::parse_manifest(text, "<fuzz>", opts);
    if (m.clips.empty()) std::abort();  // an empty manifest must be an error
    for (const auto& c : m.clips) {
      check_confined(opts.root, c.video_path);
      check_confined(opts.root, c.audio_path);
      if (!(c.duration > 0) || !(c.start >= 0)) std::abort();
    }
    for (const auto& s : v2m::data::split_names()) m.split(s);
  } catch (const v2m::Error&) {
  }
  return 0;
}
