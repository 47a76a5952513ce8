// Typed configs from YAML, strict. A config struct is a plain aggregate with defaults and
// one `visit` function that names its fields:
//
//   struct FusionConfig {
//     int64_t width = 1024; bool motion = true;
//     void visit(v2m::ConfigVisitor& v) {
//       v.field("width", width, {1, 65536});
//       v.field("motion", motion);
//     }
//   };
//
// The same visit() reads YAML (unknown key, wrong type, out-of-range value -> v2m::Error
// naming file:line and the dotted key), writes YAML, and feeds the config hash.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace YAML {
class Node;
}

namespace v2m {

struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
};

class ConfigVisitor {
 public:
  virtual ~ConfigVisitor() = default;
  virtual void field(const char* key, bool& v) = 0;
  virtual void field(const char* key, int64_t& v, Range r = {}) = 0;
  virtual void field(const char* key, double& v, Range r = {}) = 0;
  virtual void field(const char* key, std::string& v, const std::vector<std::string>& choices = {}) = 0;
  virtual void field(const char* key, std::vector<int64_t>& v, Range r = {}) = 0;
  virtual void field(const char* key, std::vector<double>& v, Range r = {}) = 0;
  virtual void field(const char* key, std::vector<std::string>& v) = 0;
  // A nested struct with its own visit().
  template <class T>
  void section(const char* key, T& s) {
    section_impl(key, [&s](ConfigVisitor& v) { s.visit(v); });
  }

 protected:
  virtual void section_impl(const char* key, const std::function<void(ConfigVisitor&)>& body) = 0;
};

// A parsed YAML document plus where it came from (for messages).
class ConfigDoc {
 public:
  // Reads `path`; throws v2m::Error "config: path:line: why" on a syntax error.
  static ConfigDoc load(const std::string& path);
  static ConfigDoc parse(const std::string& text, const std::string& label);
  ConfigDoc();
  ~ConfigDoc();
  ConfigDoc(const ConfigDoc&);
  ConfigDoc& operator=(const ConfigDoc&);

  // Applies one `a.b.c=value` override (value parsed as YAML: 3, 0.5, true, [1, 2], text).
  // Creates intermediate maps; unknown keys are caught when binding.
  void set(const std::string& assignment);

  // Fills `cfg` from the document, strictly.
  template <class T>
  void bind(T& cfg) const {
    bind_impl([&cfg](ConfigVisitor& v) { cfg.visit(v); });
  }
  const std::string& label() const { return label_; }
  YAML::Node& node();

 private:
  void bind_impl(const std::function<void(ConfigVisitor&)>& body) const;
  std::string label_;
  std::unique_ptr<YAML::Node> node_;
};

// Renders a config as YAML (same key names).
std::string to_yaml_impl(const std::function<void(ConfigVisitor&)>& body);
template <class T>
std::string to_yaml(T& cfg) {
  return to_yaml_impl([&cfg](ConfigVisitor& v) { cfg.visit(v); });
}

// FNV-1a hash (hex) of the config's canonical YAML: identifies caches and checkpoints.
std::string config_hash(const std::string& canonical_yaml);

// Loads `path`, applies `overrides` ("a.b=c"), binds into cfg. Convenience for the CLI.
template <class T>
T load_config(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigDoc d = ConfigDoc::load(path);
  for (const auto& o : overrides) d.set(o);
  T cfg;
  d.bind(cfg);
  return cfg;
}

}  // namespace v2m
