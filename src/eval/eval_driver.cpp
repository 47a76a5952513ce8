#include "eval/eval_driver.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "data/manifest.h"
#include "data/run_config.h"
#include "eval/alignment.h"
#include "eval/av_align.h"
#include "eval/chroma.h"
#include "eval/fad.h"
#include "eval/kld.h"
#include "eval/onsets.h"
#include "eval/panns.h"
#include "eval/vggish.h"
#include "model/v2m_model.h"
#include "synth/score.h"  // key_name (inline: no synth library)
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"
#include "v2m/progress.h"
#include "v2m/v2m.h"

namespace v2m::eval {

namespace {

const char* kNotComputed = "not computed";

bool exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}
bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void mkdirs(const std::string& dir) {
  std::string cur;
  std::stringstream ss(dir);
  std::string part;
  if (!dir.empty() && dir[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part + "/";
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error(describe("cannot create directory", cur, std::strerror(errno)));
  }
  if (!is_dir(dir)) throw Error(describe("cannot create directory", dir, "not a directory"));
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string fmt(double v, int prec = 4) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

std::string fmt_params(int64_t n) {
  const double m = n / 1e6;
  if (m >= 100) return fmt(m, 0) + "M";
  if (m >= 1) return fmt(m, 1) + "M";
  return fmt(m, 3) + "M";
}

// One metric's outcome across the split.
struct Outcome {
  bool requested = false;
  std::string reason;  // non-empty: not computed, and why
  double sum = 0;
  int64_t weight = 0;  // frames / segments / clips the sum is over
  std::optional<double> value;
};

struct ClipRow {
  std::string id;
  std::map<std::string, std::string> cells;  // column -> text
};

void write_file(const std::string& path, const std::string& text) { atomic_write_bytes(path, text.data(), text.size()); }

std::optional<int64_t> training_samples(const std::string& model_dir) {
  const std::string p = model_dir + "/trainer_state.json";
  if (!exists(p)) return std::nullopt;
  std::ifstream in(p);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(describe("trainer state", p, "not valid JSON"));
  if (j.contains("samples") && j["samples"].is_number_integer()) return j["samples"].get<int64_t>();
  return std::nullopt;
}

media::Audio load_generated(const std::string& path) {
  media::Audio a = media::read_wav(path);
  if (a.frames() == 0) throw Error(describe("generated audio", path, "is empty"));
  return a;
}

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"fad", "kld", "chroma", "av_align"};
  return names;
}

std::string resolve_model_dir(const std::string& model, const std::string& checkpoint, const std::string& run_out_dir) {
  if (!model.empty() && !checkpoint.empty()) throw UsageError("give --model or --checkpoint, not both");
  const std::string dir = !model.empty() ? model : checkpoint;
  if (!dir.empty()) {
    if (!exists(dir)) throw Error(describe("model", dir, "no such file or directory"));
    return dir;
  }
  const std::string latest = run_out_dir + "/checkpoints/latest";
  if (!exists(latest))
    throw Error(describe("no model to evaluate", latest,
                         "no such file (train first, or pass --model DIR / --checkpoint DIR / --generated DIR)"));
  std::ifstream in(latest);
  std::string name;
  std::getline(in, name);
  name = trim(name);
  if (name.empty()) throw Error(describe("checkpoint pointer", latest, "is empty"));
  const std::string ckpt = run_out_dir + "/checkpoints/" + name;
  if (!is_dir(ckpt)) throw Error(describe("checkpoint", ckpt, "named by " + latest + " does not exist"));
  return ckpt;
}

EvalReport run_eval(const EvalOptions& opts) {
  data::RunConfig cfg = data::load_run_config(opts.config, opts.overrides);
  std::vector<std::string> metrics = opts.metrics.empty() ? cfg.eval.metrics : opts.metrics;
  std::set<std::string> want;
  for (const auto& m : metrics) {
    bool known = false;
    for (const auto& k : metric_names()) known = known || k == m;
    if (!known) throw UsageError("unknown metric '" + m + "' (known: fad, kld, chroma, av_align)");
    want.insert(m);
  }
  const int64_t limit = opts.limit >= 0 ? opts.limit : cfg.eval.limit;

  data::ManifestOptions mo;
  mo.root = cfg.data.root;
  mo.allow_absolute_paths = cfg.data.allow_absolute_paths;
  data::Manifest manifest = data::read_manifest(cfg.data.manifest, mo);
  std::vector<data::ClipEntry> clips = manifest.split(opts.split);
  if (limit > 0 && static_cast<int64_t>(clips.size()) > limit) clips.resize(static_cast<size_t>(limit));
  if (clips.empty())
    throw Error(describe("eval", cfg.data.manifest, "split '" + opts.split + "' has no clips"));
  if (opts.shuffle_video && !opts.generated.empty()) throw UsageError("--shuffle-video generates music; it cannot be combined with --generated");
  if (opts.shuffle_video && clips.size() < 2)
    throw Error(describe("eval", cfg.data.manifest, "--shuffle-video needs at least 2 clips in split '" + opts.split + "'"));

  EvalReport rep;
  rep.out_dir = !opts.out_dir.empty() ? opts.out_dir
                : !cfg.eval.out_dir.empty() ? cfg.eval.out_dir
                                            : cfg.out_dir + "/eval-" + opts.split + (opts.shuffle_video ? "-shuffled" : "");
  mkdirs(rep.out_dir);

  // ---- model: only needed to generate, but named in the table whenever it is known.
  std::string model_dir;
  if (opts.generated.empty() || !opts.model.empty() || !opts.checkpoint.empty())
    model_dir = resolve_model_dir(opts.model, opts.checkpoint, cfg.out_dir);
  std::optional<int64_t> params, samples;
  if (!model_dir.empty()) {
    params = model::load_model(model_dir)->parameter_counts()["total"];
    if (is_dir(model_dir)) samples = training_samples(model_dir);
  }

  // ---- generated audio: one <id>.wav per clip, reused when already there (resumable).
  std::vector<std::string> gen_paths;
  if (!opts.generated.empty()) {
    for (const auto& c : clips) {
      const std::string p = opts.generated + "/" + c.id + ".wav";
      if (!exists(p)) throw Error(describe("generated audio", p, "no such file (expected <id>.wav for every clip)"));
      gen_paths.push_back(p);
    }
  } else {
    const std::string gdir = rep.out_dir + "/generated";
    mkdirs(gdir);
    std::unique_ptr<Generator> gen;
    std::vector<size_t> todo;
    for (size_t i = 0; i < clips.size(); ++i) {
      const std::string p = gdir + "/" + clips[i].id + ".wav";
      gen_paths.push_back(p);
      if (!exists(p)) todo.push_back(i);
    }
    if (todo.size() < clips.size()) spdlog::info("reusing {} generated clips in {}", clips.size() - todo.size(), gdir);
    if (!todo.empty()) {
      spdlog::info("loading model {}", model_dir);
      gen = Generator::load(model_dir, cfg.eval.device);
      Progress bar("generate", static_cast<double>(todo.size()), "clips");
      for (size_t i : todo) {
        // The condition comes from the clip's own video, or (shuffled baseline) the next one's.
        const data::ClipEntry& cond = opts.shuffle_video ? clips[(i + 1) % clips.size()] : clips[i];
        GenerateParams p = default_generate_params();
        p.start = cond.start;
        p.duration = clips[i].duration;
        p.seed = static_cast<uint64_t>(cfg.eval.seed);
        p.cfg_scale = cfg.eval.cfg_scale;
        auto outs = gen->generate(cond.video_path, p);
        media::Audio a;
        a.sample_rate = outs[0].sample_rate;
        a.channels = outs[0].channels;
        a.samples = std::move(outs[0].samples);
        media::write_wav(gen_paths[i], a, media::WavFormat::Float32);
        bar.advance();
      }
      bar.finish();
    }
  }

  // ---- metric set-up; missing weights switch that metric off with the reason.
  std::map<std::string, Outcome> out;
  for (const char* k : {"fad", "kld_pq", "kld_qp", "chroma", "av_align", "tempo_error", "mode_accuracy", "key_accuracy",
                        "beat_to_cut_s"})
    out[k] = Outcome{};
  out["fad"].requested = want.count("fad") > 0;
  out["kld_pq"].requested = out["kld_qp"].requested = want.count("kld") > 0;
  out["chroma"].requested = want.count("chroma") > 0;
  out["av_align"].requested = want.count("av_align") > 0;

  Vggish vggish{nullptr};
  Cnn14 tagger{nullptr};
  if (out["fad"].requested) {
    if (!exists(cfg.eval.vggish)) {
      out["fad"].reason = "VGGish weights " + cfg.eval.vggish +
                          " not found; make them with: python3 scripts/convert_vggish.py vggish-10086976.pth -o " +
                          cfg.eval.vggish;
    } else {
      vggish = load_vggish(cfg.eval.vggish);
    }
  }
  if (out["kld_pq"].requested) {
    if (!exists(cfg.eval.tagger)) {
      out["kld_pq"].reason = "PANNs CNN14 weights " + cfg.eval.tagger +
                             " not found; make them with: python3 scripts/convert_panns.py Cnn14_mAP=0.431.pth -o " +
                             cfg.eval.tagger;
    } else {
      tagger = load_cnn14(cfg.eval.tagger);
    }
    out["kld_qp"].reason = out["kld_pq"].reason;
  }
  for (const auto& [k, o] : out)
    if (!o.reason.empty() && (k != "kld_qp")) spdlog::warn("{}: {}", k == "kld_pq" ? "KLD" : "FAD", o.reason);

  ChromaExtractor chroma_ex;
  std::vector<at::Tensor> emb_ref, emb_gen;
  int64_t labelled = 0;
  std::vector<ClipRow> rows;
  Progress bar("metrics", static_cast<double>(clips.size()), "clips");
  for (size_t i = 0; i < clips.size(); ++i) {
    const auto& c = clips[i];
    ClipRow row;
    row.id = c.id;
    media::Audio ref = media::decode_audio(c.audio_path, 0, 0, c.start, c.duration);
    media::Audio gen = load_generated(gen_paths[i]);

    if (out["chroma"].requested) {
      ChromaCosine cc = chroma_cosine(chroma_ex, ref, gen);
      out["chroma"].sum += cc.cosine_sum;
      out["chroma"].weight += cc.frames;
      row.cells["chroma"] = fmt(cc.value());
    }
    if (out["fad"].requested) {
      if (vggish) {
        emb_ref.push_back(vggish_embed(vggish, ref));
        emb_gen.push_back(vggish_embed(vggish, gen));
      }
    }
    if (out["kld_pq"].requested) {
      if (tagger) {
        KldSums k = kld_clip(tagger, ref, gen);
        out["kld_pq"].sum += k.pq_sum;
        out["kld_qp"].sum += k.qp_sum;
        out["kld_pq"].weight += k.segments;
        out["kld_qp"].weight += k.segments;
        row.cells["kld_pq"] = k.segments ? fmt(k.pq()) : "";
        row.cells["kld_qp"] = k.segments ? fmt(k.qp()) : "";
      } else {
        row.cells["kld_pq"] = row.cells["kld_qp"] = kNotComputed;
      }
    }
    std::optional<OnsetEnvelope> env;
    std::optional<std::vector<double>> onsets;
    auto gen_onsets = [&]() -> const std::vector<double>& {
      if (!env) env = onset_strength(gen);
      if (!onsets) onsets = onset_times(*env);
      return *onsets;
    };
    if (out["av_align"].requested) {
      FlowTrajectory tr = flow_trajectory(c.video_path, c.start, c.duration, static_cast<int>(cfg.eval.av_short_side));
      AvAlign a = av_align_score(trajectory_peaks(tr.magnitude, tr.fps), gen_onsets(), tr.fps);
      row.cells["audio_peaks"] = std::to_string(a.audio_peaks);
      row.cells["video_peaks"] = std::to_string(a.video_peaks);
      if (std::isfinite(a.score)) {
        out["av_align"].sum += a.score;
        out["av_align"].weight += 1;
        row.cells["av_align"] = fmt(a.score);
      } else {
        row.cells["av_align"] = "";  // no peaks on either side: undefined, left out of the mean
      }
    }
    // SynthV2M ground truth, when the manifest carries it.
    SynthLabels lab = parse_synth_labels(c.labels, cfg.data.manifest + ":" + std::to_string(c.line));
    if (lab.bpm || lab.major || !lab.cuts.empty()) ++labelled;
    if (lab.bpm) {
      if (!env) env = onset_strength(gen);
      const double est = estimate_tempo(*env);
      const double err = tempo_error(est, *lab.bpm);
      out["tempo_error"].sum += err;
      out["tempo_error"].weight += 1;
      row.cells["tempo_est"] = fmt(est, 2);
      row.cells["tempo_error"] = fmt(err);
    }
    if (lab.major) {
      KeyEstimate k = estimate_key(mean_chroma(chroma_ex, gen));
      const bool ok = k.major == *lab.major;
      out["mode_accuracy"].sum += ok ? 1.0 : 0.0;
      out["mode_accuracy"].weight += 1;
      row.cells["mode_est"] = k.major ? "major" : "minor";
      row.cells["mode_correct"] = ok ? "1" : "0";
      if (lab.key_pc) {  // the key itself: tonic and mode both right
        const bool key_ok = ok && k.tonic == *lab.key_pc;
        out["key_accuracy"].sum += key_ok ? 1.0 : 0.0;
        out["key_accuracy"].weight += 1;
        row.cells["key_est"] = synth::key_name(k.tonic);
        row.cells["key_correct"] = key_ok ? "1" : "0";
      }
    }
    if (!lab.cuts.empty()) {
      const double off = cut_offset(lab.cuts, gen_onsets());
      if (std::isfinite(off)) {
        out["beat_to_cut_s"].sum += off;
        out["beat_to_cut_s"].weight += 1;
        row.cells["beat_to_cut_s"] = fmt(off);
      } else {
        row.cells["beat_to_cut_s"] = "";
      }
    }
    rows.push_back(std::move(row));
    bar.advance();
  }
  bar.finish();
  for (const char* k : {"tempo_error", "mode_accuracy", "key_accuracy", "beat_to_cut_s"}) out[k].requested = labelled > 0;

  // ---- aggregate
  for (auto& [k, o] : out) {
    if (!o.requested || !o.reason.empty() || k == "fad") continue;
    if (o.weight > 0) o.value = o.sum / static_cast<double>(o.weight);
    else if (k == "av_align") o.reason = "no onset or motion peaks in any clip";
    else if (k == "beat_to_cut_s") o.reason = "no onsets in the generated audio of the clips with cuts";
    else if (k == "kld_pq" || k == "kld_qp") o.reason = "no clip longer than 0.15 s";
    else o.reason = "no clip carries the label";
  }
  if (out["fad"].requested && out["fad"].reason.empty()) {
    at::Tensor r = at::cat(emb_ref), g = at::cat(emb_gen);
    if (r.size(0) < 2 || g.size(0) < 2) {
      out["fad"].reason = "fewer than 2 VGGish examples (0.96 s each) in the reference or generated set";
    } else {
      out["fad"].value = frechet_distance(fit_gaussian(r), fit_gaussian(g));
      out["fad"].weight = g.size(0);
    }
  }

  // ---- results.json
  static const std::map<std::string, std::string> kDirection = {
      {"fad", "lower"},        {"kld_pq", "lower"},        {"kld_qp", "lower"},       {"chroma", "higher"},
      {"av_align", "higher"},  {"tempo_error", "lower"},   {"mode_accuracy", "higher"}, {"key_accuracy", "higher"},
      {"beat_to_cut_s", "lower"}};
  nlohmann::json j;
  j["config"] = opts.config;
  j["split"] = opts.split;
  j["condition"] = opts.shuffle_video ? "shuffled video (clip i+1's video for clip i)" : "matched video";
  j["clips"] = clips.size();
  j["model"] = {{"name", cfg.name}, {"dir", model_dir.empty() ? nlohmann::json() : nlohmann::json(model_dir)},
                {"params", params ? nlohmann::json(*params) : nlohmann::json()},
                {"training_samples", samples ? nlohmann::json(*samples) : nlohmann::json()}};
  j["generated"] = opts.generated.empty() ? rep.out_dir + "/generated" : opts.generated;
  nlohmann::json jm = nlohmann::json::object();
  for (const auto& [k, o] : out) {
    if (!o.requested) continue;
    nlohmann::json e;
    e["direction"] = kDirection.at(k) + " is better";
    if (o.value) {
      e["value"] = *o.value;
      e["status"] = "ok";
    } else {
      e["value"] = kNotComputed;
      e["status"] = kNotComputed;
      e["reason"] = o.reason;
    }
    jm[k] = e;
  }
  if (out["fad"].value) {
    jm["fad"]["reference_examples"] = at::cat(emb_ref).size(0);
    jm["fad"]["generated_examples"] = at::cat(emb_gen).size(0);
  }
  j["metrics"] = jm;
  rep.results = j;

  // ---- per_clip.csv
  std::vector<std::string> cols;
  if (out["chroma"].requested) cols.push_back("chroma");
  if (out["kld_pq"].requested) {
    cols.push_back("kld_pq");
    cols.push_back("kld_qp");
  }
  if (out["av_align"].requested) {
    cols.push_back("av_align");
    cols.push_back("audio_peaks");
    cols.push_back("video_peaks");
  }
  if (labelled > 0)
    for (const char* k : {"tempo_est", "tempo_error", "mode_est", "mode_correct", "key_est", "key_correct", "beat_to_cut_s"})
      cols.push_back(k);
  std::string csv = "id";
  for (const auto& c : cols) csv += "," + c;
  if (out["fad"].requested) csv += ",fad";
  csv += "\n";
  for (const auto& r : rows) {
    csv += r.id;
    for (const auto& c : cols) {
      auto it = r.cells.find(c);
      csv += "," + (it == r.cells.end() ? std::string() : it->second);
    }
    // FAD is a set-level distance: no per-clip value exists.
    if (out["fad"].requested) csv += out["fad"].value ? ",set-level" : std::string(",") + kNotComputed;
    csv += "\n";
  }

  // ---- table.md (poster Table 1)
  auto cell = [&](const std::string& k, int prec) -> std::string {
    const Outcome& o = out[k];
    if (!o.requested) return "-";
    return o.value ? fmt(*o.value, prec) : kNotComputed;
  };
  const std::string row_name = cfg.name + (opts.shuffle_video ? " (shuffled video)" : "");
  std::string t;
  t += "| Model | Params | Training Samples | FAD ↓ | KLD(P‖Q) ↓ | KLD(Q‖P) ↓ | Chroma ↑ | AV-Align ↑ |\n";
  t += "|---|---|---|---|---|---|---|---|\n";
  t += "| " + row_name + " | " + (params ? fmt_params(*params) : "-") + " | " +
       (samples ? std::to_string(*samples) : "-") + " | " + cell("fad", 3) + " | " + cell("kld_pq", 3) + " | " +
       cell("kld_qp", 3) + " | " + cell("chroma", 3) + " | " + cell("av_align", 3) + " |\n";
  if (labelled > 0) {
    t += "\nSynthV2M ground-truth alignment (" + std::to_string(labelled) + " labelled clips):\n\n";
    t += "| Model | Tempo error ↓ | Mode accuracy ↑ | Key accuracy ↑ | Beat-to-cut (s) ↓ |\n|---|---|---|---|---|\n";
    t += "| " + row_name + " | " + cell("tempo_error", 3) + " | " + cell("mode_accuracy", 3) + " | " +
         cell("key_accuracy", 3) + " | " + cell("beat_to_cut_s", 3) + " |\n";
  }
  static const std::map<std::string, std::string> kLabel = {
      {"fad", "FAD"},         {"kld_pq", "KLD"},       {"kld_qp", "KLD(Q||P)"},         {"chroma", "Chroma"},
      {"av_align", "AV-Align"}, {"tempo_error", "Tempo error"}, {"mode_accuracy", "Mode accuracy"}, {"key_accuracy", "Key accuracy"},
      {"beat_to_cut_s", "Beat-to-cut"}};
  std::string notes;
  for (const auto& [k, o] : out)
    if (o.requested && !o.value && !(k == "kld_qp" && o.reason == out["kld_pq"].reason))
      notes += "- " + kLabel.at(k) + ": " + kNotComputed + " (" + o.reason + ")\n";
  if (!notes.empty()) t += "\n" + notes;
  rep.table = t;

  write_file(rep.out_dir + "/per_clip.csv", csv);
  write_file(rep.out_dir + "/table.md", t);
  write_file(rep.out_dir + "/results.json", j.dump(2) + "\n");
  return rep;
}

}  // namespace v2m::eval
