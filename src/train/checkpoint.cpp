#include "train/checkpoint.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m::train {

namespace {

namespace fs = std::filesystem;

bool is_dir(const std::string& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

void mkdirs(const std::string& p) {
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) throw Error(describe("cannot create directory", p, ec.message()));
}

void remove_tree(const std::string& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

// Entry names of `p`, sorted (empty when it does not exist).
std::vector<std::string> list_dir(const std::string& p) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void fsync_dir(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string read_pointer(const std::string& path) {
  std::ifstream f(path);
  std::string name;
  if (!f || !std::getline(f, name)) return "";
  while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
  return name;
}

void write_pointer(const std::string& path, const std::string& name) {
  const std::string s = name + "\n";
  atomic_write_bytes(path, s.data(), s.size());
}

// Fault injection for the kill tests: V2M_FAULT_CHECKPOINT_DELAY_MS stretches the window
// between the files of a checkpoint so a test can kill the process in the middle of it.
void fault_delay() {
  if (const char* v = std::getenv("V2M_FAULT_CHECKPOINT_DELAY_MS"); v && *v)
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoll(v)));
}

}  // namespace

nlohmann::json TrainerState::to_json() const {
  return {{"step", step},
          {"epoch", epoch},
          {"samples", samples},
          {"seed", seed},
          {"config_hash", config_hash},
          {"best_val", std::isfinite(best_val) ? nlohmann::json(best_val) : nlohmann::json(nullptr)},
          {"best_step", best_step},
          {"last_loss", last_loss},
          {"world_size", world_size},
          {"rng", {{"scheme", "counter"}, {"seed", seed}}}};
}

TrainerState TrainerState::from_json(const nlohmann::json& j, const std::string& source) {
  TrainerState s;
  try {
    s.step = j.at("step").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.samples = j.at("samples").get<int64_t>();
    s.seed = j.at("seed").get<int64_t>();
    s.config_hash = j.at("config_hash").get<std::string>();
    s.best_val = j.at("best_val").is_null() ? std::numeric_limits<double>::infinity() : j.at("best_val").get<double>();
    s.best_step = j.at("best_step").get<int64_t>();
    s.last_loss = j.value("last_loss", 0.0);
    s.world_size = j.value("world_size", int64_t{1});
  } catch (const std::exception& e) {
    throw Error(describe("bad trainer state", source, e.what()));
  }
  if (s.step < 0) throw Error(describe("bad trainer state", source, "negative step"));
  return s;
}

std::string checkpoint_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "step-%08lld", static_cast<long long>(step));
  return b;
}

void remove_stale_temporaries(const std::string& root) {
  for (const auto& n : list_dir(root))
    if (n.rfind(".tmp-", 0) == 0) {
      spdlog::warn("checkpoint: removing leftover of an interrupted write: {}/{}", root, n);
      remove_tree(root + "/" + n);
    }
}

std::string save_checkpoint(const std::string& root, model::V2MModel& model, const nn::TensorMap& optimizer,
                            const TrainerState& state, int64_t keep_last, bool is_best) {
  mkdirs(root);
  const std::string name = checkpoint_name(state.step);
  const std::string final_dir = root + "/" + name;
  const std::string tmp = root + "/.tmp-" + name + "-" + std::to_string(::getpid());
  remove_tree(tmp);
  try {
    mkdirs(tmp);
    model::save_model(model, tmp, at::kFloat, {{"step", std::to_string(state.step)}});
    fault_delay();
    nn::save_safetensors(tmp + "/optimizer.safetensors", optimizer);
    fault_delay();
    const std::string js = state.to_json().dump(2) + "\n";
    atomic_write_bytes(tmp + "/trainer_state.json", js.data(), js.size());
    fsync_dir(tmp);
    if (is_dir(final_dir)) remove_tree(final_dir);  // re-saving the same step (e.g. best + periodic)
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0)
      throw Error(describe("cannot rename checkpoint", tmp, std::strerror(errno)));
    fsync_dir(root);
  } catch (const std::exception& e) {
    remove_tree(tmp);
    const std::string prev = read_pointer(root + "/latest");
    throw Error(describe("checkpoint write failed", final_dir,
                         std::string(e.what()) + (prev.empty() ? "" : "; previous checkpoint " + prev + " is intact")));
  }
  write_pointer(root + "/latest", name);
  if (is_best) write_pointer(root + "/best", name);
  // Prune: keep the newest keep_last step-* directories and whatever `best` names.
  const std::string best = read_pointer(root + "/best");
  std::vector<std::string> steps;
  for (const auto& n : list_dir(root))
    if (n.rfind("step-", 0) == 0 && is_dir(root + "/" + n)) steps.push_back(n);
  if (static_cast<int64_t>(steps.size()) > keep_last)
    for (size_t i = 0; i + keep_last < steps.size(); ++i)
      if (steps[i] != best && steps[i] != name) remove_tree(root + "/" + steps[i]);
  return final_dir;
}

std::string latest_checkpoint(const std::string& root) {
  const std::string name = read_pointer(root + "/latest");
  if (name.empty()) return "";
  const std::string dir = root + "/" + name;
  if (!is_dir(dir)) throw Error(describe("checkpoint", root + "/latest", "names '" + name + "', which does not exist"));
  return dir;
}

LoadedCheckpoint load_checkpoint(const std::string& dir, model::V2MModel& model) {
  LoadedCheckpoint c;
  c.dir = dir;
  const std::string sp = dir + "/trainer_state.json";
  require_regular_file(sp, "cannot resume");
  std::ifstream f(sp);
  auto j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) throw Error(describe("cannot resume", sp, "not valid JSON"));
  c.state = TrainerState::from_json(j, sp);
  const std::string wp = dir + "/model.safetensors";
  require_regular_file(wp, "cannot resume");
  nn::TensorMap w = nn::load_safetensors(wp);
  nn::load_into(*model, w, "", wp);
  const std::string op = dir + "/optimizer.safetensors";
  require_regular_file(op, "cannot resume");
  c.optimizer = nn::load_safetensors(op);
  return c;
}

}  // namespace v2m::train
