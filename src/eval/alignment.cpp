#include "eval/alignment.h"

#include <cmath>
#include <limits>

#include "v2m/error.h"

namespace v2m::eval {

SynthLabels parse_synth_labels(const nlohmann::json& j, const std::string& where) {
  SynthLabels l;
  if (!j.is_object()) return l;
  auto bad = [&](const char* key, const char* want) {
    return Error(describe("labels", where, std::string("'") + key + "' must be " + want));
  };
  if (j.contains("bpm")) {
    if (!j["bpm"].is_number() || !(j["bpm"].get<double>() > 0)) throw bad("bpm", "a positive number");
    l.bpm = j["bpm"].get<double>();
  }
  if (j.contains("mode")) {
    if (!j["mode"].is_string()) throw bad("mode", "\"major\" or \"minor\"");
    const auto m = j["mode"].get<std::string>();
    if (m != "major" && m != "minor") throw bad("mode", "\"major\" or \"minor\"");
    l.major = m == "major";
  }
  if (j.contains("key_pc")) {
    if (!j["key_pc"].is_number_integer() || j["key_pc"].get<int>() < 0 || j["key_pc"].get<int>() > 11)
      throw bad("key_pc", "an integer 0..11");
    l.key_pc = j["key_pc"].get<int>();
  }
  if (j.contains("cuts")) {
    if (!j["cuts"].is_array()) throw bad("cuts", "an array of seconds");
    for (const auto& c : j["cuts"]) {
      if (!c.is_number()) throw bad("cuts", "an array of seconds");
      l.cuts.push_back(c.get<double>());
    }
  }
  return l;
}

KeyEstimate estimate_key(const at::Tensor& chroma) {
  // Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
  static const double kMajor[12] = {6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88};
  static const double kMinor[12] = {6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17};
  at::Tensor c = chroma.to(at::kDouble).contiguous();
  if (c.numel() != 12) throw Error("estimate_key: chroma must have 12 values");
  const double* x = c.data_ptr<double>();
  auto pearson = [&](const double* prof, int tonic) {
    double mx = 0, mp = 0;
    for (int i = 0; i < 12; ++i) {
      mx += x[i] / 12;
      mp += prof[i] / 12;
    }
    double sxy = 0, sxx = 0, syy = 0;
    for (int pc = 0; pc < 12; ++pc) {
      const double a = x[pc] - mx, b = prof[(pc - tonic + 12) % 12] - mp;
      sxy += a * b;
      sxx += a * a;
      syy += b * b;
    }
    return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : 0.0;
  };
  KeyEstimate best;
  best.correlation = -2;
  for (int t = 0; t < 12; ++t)
    for (bool major : {true, false}) {
      const double r = pearson(major ? kMajor : kMinor, t);
      if (r > best.correlation) best = {t, major, r};
    }
  return best;
}

double tempo_error(double estimated_bpm, double label_bpm) { return std::fabs(estimated_bpm - label_bpm) / label_bpm; }

double cut_offset(const std::vector<double>& cuts, const std::vector<double>& onsets) {
  if (cuts.empty() || onsets.empty()) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (double c : cuts) {
    double best = std::numeric_limits<double>::infinity();
    for (double o : onsets) best = std::min(best, std::fabs(o - c));
    sum += best;
  }
  return sum / static_cast<double>(cuts.size());
}

}  // namespace v2m::eval
