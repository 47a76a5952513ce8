#include "data/manifest.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_set>

#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m::data {

namespace {

std::string dir_of(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

// Rejects absolute paths and any ".." component unless allowed; returns why, or "".
std::string check_confined(const std::string& p, bool allow_absolute) {
  if (p.empty()) return "empty path";
  if (allow_absolute) return "";
  if (p[0] == '/') return "absolute path '" + p + "' (set data.allow_absolute_paths to allow)";
  std::stringstream ss(p);
  std::string part;
  while (std::getline(ss, part, '/'))
    if (part == "..") return "path '" + p + "' leaves the dataset root";
  return "";
}

std::string resolve(const std::string& root, const std::string& p) {
  if (!p.empty() && p[0] == '/') return p;
  return root + "/" + p;
}

// Symlinks inside the dataset root could still point outside it: the path with every link
// followed (as far as it exists) must stay under the root with its links followed. "" if so.
std::string check_real_path(const std::string& real_root, const std::string& p, const std::string& rel) {
  std::error_code ec;
  const auto real = std::filesystem::weakly_canonical(p, ec);
  if (ec) return "";  // unresolvable (e.g. permissions): check_file or the decoder reports it
  const std::string r = real.string();
  if (r.size() > real_root.size() && r.compare(0, real_root.size(), real_root) == 0 &&
      (real_root.back() == '/' || r[real_root.size()] == '/'))
    return "";
  return "path '" + rel + "' leaves the dataset root through a symlink (to " + r +
         "; set data.allow_absolute_paths to allow)";
}

std::string check_file(const std::string& p) {
  struct stat st{};
  if (::stat(p.c_str(), &st) != 0) return "no such file: " + p;
  if (!S_ISREG(st.st_mode)) return "not a regular file: " + p;
  if (st.st_size == 0) return "empty file: " + p;
  return "";
}

// Fills `c` from one parsed line; returns why it is bad, or "".
std::string parse_entry(const nlohmann::json& j, ClipEntry& c) {
  if (!j.is_object()) return "not a JSON object";
  for (auto it = j.begin(); it != j.end(); ++it) {
    static const std::unordered_set<std::string> known = {"id", "video", "audio", "start",
                                                          "duration", "split", "labels"};
    if (!known.count(it.key())) return "unknown key '" + it.key() + "'";
  }
  auto str = [&](const char* k, std::string& out, bool required) -> std::string {
    auto it = j.find(k);
    if (it == j.end()) return required ? std::string("missing \"") + k + "\"" : "";
    if (!it->is_string()) return std::string("\"") + k + "\" must be a string";
    out = it->get<std::string>();
    if (required && out.empty()) return std::string("\"") + k + "\" is empty";
    return "";
  };
  auto num = [&](const char* k, double& out) -> std::string {
    auto it = j.find(k);
    if (it == j.end()) return "";
    if (!it->is_number()) return std::string("\"") + k + "\" must be a number";
    out = it->get<double>();
    if (!std::isfinite(out)) return std::string("\"") + k + "\" is not finite";
    return "";
  };
  for (auto e : {str("id", c.id, true), str("video", c.video, true), str("audio", c.audio, false),
                 str("split", c.split, true), num("start", c.start), num("duration", c.duration)})
    if (!e.empty()) return e;
  if (c.start < 0) return "\"start\" is negative";
  if (c.duration <= 0 || c.duration > 24 * 3600) return "\"duration\" must be in (0, 86400] s";
  const auto& names = split_names();
  if (std::find(names.begin(), names.end(), c.split) == names.end())
    return "unknown split '" + c.split + "' (train, val or test)";
  if (auto it = j.find("labels"); it != j.end()) {
    if (!it->is_object()) return "\"labels\" must be an object";
    c.labels = *it;
  }
  return "";
}

}  // namespace

const std::vector<std::string>& split_names() {
  static const std::vector<std::string> n = {"train", "val", "test"};
  return n;
}

std::vector<ClipEntry> Manifest::split(const std::string& name) const {
  const auto& names = split_names();
  if (std::find(names.begin(), names.end(), name) == names.end())
    throw Error(describe("manifest", path, "unknown split '" + name + "' (train, val or test)"));
  std::vector<ClipEntry> out;
  for (const auto& c : clips)
    if (c.split == name) out.push_back(c);
  return out;
}

Manifest parse_manifest(const std::string& text, const std::string& label, const ManifestOptions& opts) {
  Manifest m;
  m.path = label;
  m.root = opts.root.empty() ? dir_of(label) : opts.root;
  std::vector<std::string> problems;
  std::unordered_set<std::string> ids;
  std::string real_root;
  if (!opts.allow_absolute_paths) {
    std::error_code ec;
    real_root = std::filesystem::weakly_canonical(m.root, ec).string();  // m.root is never empty (dir_of gives ".")
    if (ec) real_root.clear();
  }
  std::istringstream in(text);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto fail = [&](const std::string& why) {
      problems.push_back("line " + std::to_string(lineno) + ": " + why);
    };
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      fail("not valid JSON");
      continue;
    }
    ClipEntry c;
    c.line = lineno;
    if (auto why = parse_entry(j, c); !why.empty()) {
      fail(why);
      continue;
    }
    if (!ids.insert(c.id).second) {
      fail("duplicate id '" + c.id + "'");
      continue;
    }
    std::string why = check_confined(c.video, opts.allow_absolute_paths);
    if (why.empty() && !c.audio.empty()) why = check_confined(c.audio, opts.allow_absolute_paths);
    if (!why.empty()) {
      fail(why);
      continue;
    }
    c.video_path = resolve(m.root, c.video);
    c.audio_path = c.audio.empty() ? c.video_path : resolve(m.root, c.audio);
    if (!real_root.empty()) {
      why = check_real_path(real_root, c.video_path, c.video);
      if (why.empty() && !c.audio.empty()) why = check_real_path(real_root, c.audio_path, c.audio);
      if (!why.empty()) {
        fail(why);
        continue;
      }
    }
    if (opts.check_files) {
      why = check_file(c.video_path);
      if (why.empty() && !c.audio.empty()) why = check_file(c.audio_path);
      if (!why.empty()) {
        fail(why);
        continue;
      }
    }
    m.clips.push_back(std::move(c));
  }
  for (const auto& p : problems) spdlog::error("manifest {}: {}", label, p);
  if (!problems.empty())
    throw Error(describe("manifest", label,
                         std::to_string(problems.size()) + " problem" + (problems.size() > 1 ? "s" : "") +
                             "; first: " + problems.front()));
  if (m.clips.empty()) throw Error(describe("manifest", label, "no clips"));
  return m;
}

Manifest read_manifest(const std::string& path, const ManifestOptions& opts) {
  require_regular_file(path, "manifest");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(describe("manifest", path, "cannot open"));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_manifest(ss.str(), path, opts);
}

void write_manifest(const std::string& path, const std::vector<ClipEntry>& clips) {
  std::string out;
  for (const auto& c : clips) {
    nlohmann::ordered_json j = {{"id", c.id}, {"video", c.video}};
    if (!c.audio.empty()) j["audio"] = c.audio;
    j["start"] = c.start;
    j["duration"] = c.duration;
    j["split"] = c.split;
    if (!c.labels.empty()) j["labels"] = c.labels;
    out += j.dump() + "\n";
  }
  atomic_write_bytes(path, out.data(), out.size());
}

std::vector<std::string> assign_splits(size_t n, const std::vector<double>& ratios, uint64_t seed) {
  if (ratios.size() != 3) throw Error("split ratios: need 3 values (train, val, test)");
  double sum = 0;
  for (double r : ratios) {
    if (!(r >= 0)) throw Error("split ratios: must be non-negative");
    sum += r;
  }
  if (sum <= 0) throw Error("split ratios: sum to zero");
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  // Fisher-Yates with a fixed generator: std::shuffle's algorithm is implementation-defined.
  std::mt19937_64 rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  const size_t n_train = static_cast<size_t>(std::llround(n * ratios[0] / sum));
  const size_t n_val = std::min(n - std::min(n, n_train), static_cast<size_t>(std::llround(n * ratios[1] / sum)));
  std::vector<std::string> split(n);
  for (size_t k = 0; k < n; ++k) {
    const size_t i = order[k];
    split[i] = k < n_train ? "train" : (k < n_train + n_val ? "val" : "test");
  }
  return split;
}

}  // namespace v2m::data
