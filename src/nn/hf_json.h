// Reading Hugging Face config.json files: one strict, typed field reader shared by the
// CLIP, EnCodec and MusicGen config parsers and the model importer.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <type_traits>
#include <vector>

#include "v2m/error.h"

namespace v2m::nn {

// Parses `path` (must be a regular, non-empty file); v2m::Error naming it otherwise.
nlohmann::json read_json_file(const std::string& path);

// Copies j[key] into `out` when present and not null (absent keys keep transformers'
// defaults, which the config structs carry). A value of the wrong JSON type throws
// "<what>: <source>: '<where><key>' has the wrong type".
template <class T>
void read_hf(const nlohmann::json& j, const char* key, T& out, const char* what, const std::string& source,
             const std::string& where = "") {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  bool ok;
  if constexpr (std::is_same_v<T, bool>) ok = it->is_boolean();
  else if constexpr (std::is_same_v<T, std::string>) ok = it->is_string();
  else if constexpr (std::is_integral_v<T>) ok = it->is_number_integer();
  else if constexpr (std::is_floating_point_v<T>) ok = it->is_number();
  else ok = it->is_array();
  if (ok) {
    try {
      out = it->template get<T>();
      return;
    } catch (const nlohmann::json::exception&) {
    }
  }
  throw Error(describe(what, source, "'" + where + key + "' has the wrong type"));
}

}  // namespace v2m::nn
