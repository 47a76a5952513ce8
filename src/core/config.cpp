#include "v2m/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "v2m/error.h"

namespace v2m {

namespace {

std::string join_key(const std::string& prefix, const char* key) {
  return prefix.empty() ? std::string(key) : prefix + "." + key;
}

std::string fmt_num(double x) {
  std::ostringstream o;
  o << x;
  return o.str();
}

// Reads a YAML mapping into config fields; remembers which keys were consumed so
// leftovers are reported as unknown.
class Reader : public ConfigVisitor {
 public:
  Reader(const YAML::Node& node, std::string label, std::string prefix)
      : node_(node), label_(std::move(label)), prefix_(std::move(prefix)) {
    if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap())
      fail(node_, prefix_.empty() ? "the document must be a mapping" : "expected a mapping of keys");
  }

  void field(const char* key, bool& v) override {
    if (auto opt = take(key)) {
      const YAML::Node& n = *opt;
      try {
        v = n.as<bool>();
      } catch (const YAML::Exception&) {
        fail(n, key, "expected true or false, got '" + scalar(n) + "'");
      }
    }
  }
  void field(const char* key, int64_t& v, Range r) override {
    if (auto n = take(key)) v = to_int(*n, key, r);
  }
  void field(const char* key, double& v, Range r) override {
    if (auto n = take(key)) v = to_double(*n, key, r);
  }
  void field(const char* key, std::string& v, const std::vector<std::string>& choices) override {
    if (auto opt = take(key)) {
      const YAML::Node& n = *opt;
      if (!n.IsScalar()) fail(n, key, "expected a string");
      v = n.Scalar();
      if (!choices.empty() && std::find(choices.begin(), choices.end(), v) == choices.end()) {
        std::string list;
        for (auto& c : choices) list += (list.empty() ? "" : ", ") + c;
        fail(n, key, "'" + v + "' is not one of: " + list);
      }
    }
  }
  void field(const char* key, std::vector<int64_t>& v, Range r) override {
    if (auto opt = take(key)) {
      const YAML::Node& n = *opt;
      if (!n.IsSequence()) fail(n, key, "expected a list of integers");
      v.clear();
      for (const auto& e : n) v.push_back(to_int(e, key, r));
    }
  }
  void field(const char* key, std::vector<double>& v, Range r) override {
    if (auto opt = take(key)) {
      const YAML::Node& n = *opt;
      if (!n.IsSequence()) fail(n, key, "expected a list of numbers");
      v.clear();
      for (const auto& e : n) v.push_back(to_double(e, key, r));
    }
  }
  void field(const char* key, std::vector<std::string>& v) override {
    if (auto opt = take(key)) {
      const YAML::Node& n = *opt;
      if (!n.IsSequence()) fail(n, key, "expected a list of strings");
      v.clear();
      for (const auto& e : n) {
        if (!e.IsScalar()) fail(e, key, "expected a string");
        v.push_back(e.Scalar());
      }
    }
  }
  void finish() const {
    const YAML::Node& map = node_;
    if (!map.IsDefined() || !map.IsMap()) return;
    for (const auto& kv : map) {
      const std::string k = kv.first.Scalar();
      if (!used_.count(k)) fail(kv.first, k.c_str(), "unknown key");
    }
  }

 protected:
  void section_impl(const char* key, const std::function<void(ConfigVisitor&)>& body) override {
    auto n = take(key);
    Reader sub(n ? *n : YAML::Node(YAML::NodeType::Undefined), label_, join_key(prefix_, key));
    body(sub);
    sub.finish();
  }

 private:
  // The value at `key`, or nothing when absent or null (then the default stays).
  // Looked up through a const node: operator[] on a non-const node inserts the key.
  std::optional<YAML::Node> take(const char* key) {
    used_.insert(key);
    const YAML::Node& map = node_;
    if (!map.IsDefined() || !map.IsMap()) return std::nullopt;
    YAML::Node n = map[key];
    if (!n.IsDefined() || n.IsNull()) return std::nullopt;
    return n;
  }
  static std::string scalar(const YAML::Node& n) { return n.IsScalar() ? n.Scalar() : "(not a scalar)"; }

  int64_t to_int(const YAML::Node& n, const char* key, Range r) const {
    if (!n.IsScalar()) fail(n, key, "expected an integer");
    const std::string s = n.Scalar();
    size_t pos = 0;
    long long x = 0;
    try {
      x = std::stoll(s, &pos, 0);
    } catch (...) {
      pos = 0;
    }
    if (pos != s.size() || s.empty()) fail(n, key, "expected an integer, got '" + s + "'");
    check_range(n, key, static_cast<double>(x), r);
    return x;
  }
  double to_double(const YAML::Node& n, const char* key, Range r) const {
    if (!n.IsScalar()) fail(n, key, "expected a number");
    const std::string s = n.Scalar();
    size_t pos = 0;
    double x = 0;
    try {
      x = std::stod(s, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos != s.size() || s.empty() || !std::isfinite(x)) fail(n, key, "expected a finite number, got '" + s + "'");
    check_range(n, key, x, r);
    return x;
  }
  void check_range(const YAML::Node& n, const char* key, double x, Range r) const {
    if (x < r.lo || x > r.hi)
      fail(n, key, fmt_num(x) + " is out of range [" + fmt_num(r.lo) + ", " + fmt_num(r.hi) + "]");
  }
  [[noreturn]] void fail(const YAML::Node& n, const char* key, const std::string& why) const {
    fail(n, "key '" + join_key(prefix_, key) + "': " + why);
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& why) const {
    std::string where = label_;
    const auto m = n.Mark();
    if (m.line >= 0 && !m.is_null()) where += ":" + std::to_string(m.line + 1);
    throw Error(describe("config", where, why));
  }

  YAML::Node node_;
  std::string label_, prefix_;
  std::set<std::string> used_;
};

class Writer : public ConfigVisitor {
 public:
  explicit Writer(YAML::Emitter& e) : e_(e) {}
  void field(const char* key, bool& v) override { e_ << YAML::Key << key << YAML::Value << v; }
  void field(const char* key, int64_t& v, Range) override { e_ << YAML::Key << key << YAML::Value << v; }
  void field(const char* key, double& v, Range) override {
    e_ << YAML::Key << key << YAML::Value << YAML::Precision(9) << v;
  }
  void field(const char* key, std::string& v, const std::vector<std::string>&) override {
    e_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  }
  void field(const char* key, std::vector<int64_t>& v, Range) override { list(key, v); }
  void field(const char* key, std::vector<double>& v, Range) override { list(key, v); }
  void field(const char* key, std::vector<std::string>& v) override { list(key, v); }

 protected:
  void section_impl(const char* key, const std::function<void(ConfigVisitor&)>& body) override {
    e_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    body(*this);
    e_ << YAML::EndMap;
  }

 private:
  template <class V>
  void list(const char* key, const V& v) {
    e_ << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : v) e_ << x;
    e_ << YAML::EndSeq;
  }
  YAML::Emitter& e_;
};

}  // namespace

ConfigDoc::ConfigDoc() : node_(std::make_unique<YAML::Node>()) {}
ConfigDoc::~ConfigDoc() = default;
ConfigDoc::ConfigDoc(const ConfigDoc& o) : label_(o.label_), node_(std::make_unique<YAML::Node>(YAML::Clone(*o.node_))) {}
ConfigDoc& ConfigDoc::operator=(const ConfigDoc& o) {
  label_ = o.label_;
  node_ = std::make_unique<YAML::Node>(YAML::Clone(*o.node_));
  return *this;
}
YAML::Node& ConfigDoc::node() { return *node_; }

ConfigDoc ConfigDoc::parse(const std::string& text, const std::string& label) {
  ConfigDoc d;
  d.label_ = label;
  try {
    *d.node_ = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string where = label;
    if (!e.mark.is_null()) where += ":" + std::to_string(e.mark.line + 1);
    throw Error(describe("config", where, e.msg));
  }
  return d;
}

ConfigDoc ConfigDoc::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(describe("config", path, "cannot open file"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(describe("config", path, "cannot read file (is it a directory?)"));
  return parse(ss.str(), path);
}

void ConfigDoc::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError(describe("--set", assignment, "expected key.path=value"));
  const std::string key = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw UsageError(describe("--set", assignment, "value is not valid YAML: " + e.msg));
  }
  if (!node_->IsDefined() || node_->IsNull()) *node_ = YAML::Node(YAML::NodeType::Map);
  // A scalar or list document has no keys to set (yaml-cpp would throw BadSubscript).
  if (!node_->IsMap()) throw Error(describe("config", label_, "the document must be a mapping to apply --set " + key));
  // Walk with a stack of nodes: yaml-cpp nodes are handles, so assigning a child keeps it in the tree.
  std::vector<std::string> parts;
  std::stringstream ks(key);
  for (std::string p; std::getline(ks, p, '.');) {
    if (p.empty()) throw UsageError(describe("--set", assignment, "empty key component"));
    parts.push_back(p);
  }
  YAML::Node cur = *node_;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node next = cur[parts[i]];
    if (!next || next.IsNull() || !next.IsMap()) {
      if (next && next.IsDefined() && !next.IsNull() && !next.IsMap())
        throw UsageError(describe("--set", assignment, "'" + parts[i] + "' is not a section"));
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
    }
    cur.reset(cur[parts[i]]);
  }
  cur[parts.back()] = parsed;
}

void ConfigDoc::bind_impl(const std::function<void(ConfigVisitor&)>& body) const {
  Reader r(*node_, label_, "");
  body(r);
  r.finish();
}

std::string to_yaml_impl(const std::function<void(ConfigVisitor&)>& body) {
  YAML::Emitter e;
  e << YAML::BeginMap;
  Writer w(e);
  body(w);
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::string config_hash(const std::string& canonical_yaml) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : canonical_yaml) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace v2m
