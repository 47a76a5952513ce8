#include "train/trainer.h"

#include <ATen/autocast_mode.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <csignal>
#include <fstream>
#include <random>
#include <sstream>

#include "model/v2m_model.h"
#include "nn/delay_pattern.h"
#include "nn/state_dict.h"
#include "train/checkpoint.h"
#include "train/feature_cache.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/progress.h"

namespace v2m::train {

namespace {

std::atomic<int> g_stop{0};

// splitmix64: decorrelated 64-bit values from counters (seed, epoch, sample, purpose).
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t mix(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0) { return mix(mix(mix(mix(a) ^ b) ^ c) ^ d); }

// The training order of one epoch: Fisher-Yates over clip indices with a seeded engine.
std::vector<int64_t> epoch_order(int64_t n, int64_t seed, int64_t epoch) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(mix(seed, epoch, 0x0dd5));
  for (int64_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

struct Sample {
  const CachedClip* clip;
  int64_t offset;  // first code frame of the crop
  bool keep_condition;
};

struct Batch {
  at::Tensor clip, clip_t, clip_mask, motion, motion_t, motion_mask;  // [b, T*, ...]
  at::Tensor codes;  // [b, K, T], pad id where the clip had no frame
  at::Tensor keep;   // [b] float, 0 = condition dropped
};

// Tokens with time in [t0, t1), re-timed to t0, padded to a common length with mask 0.
void gather_stream(const std::vector<at::Tensor>& xs, const std::vector<at::Tensor>& ts,
                   const std::vector<std::pair<double, double>>& range, int64_t dim, at::Tensor* x_out,
                   at::Tensor* t_out, at::Tensor* m_out) {
  const int64_t b = static_cast<int64_t>(xs.size());
  std::vector<at::Tensor> sel_x(b), sel_t(b);
  int64_t maxlen = 1;
  for (int64_t i = 0; i < b; ++i) {
    at::Tensor keep = (ts[i] >= range[i].first).logical_and(ts[i] < range[i].second);
    at::Tensor idx = keep.nonzero().view({-1});
    sel_x[i] = xs[i].index_select(0, idx);
    sel_t[i] = ts[i].index_select(0, idx) - range[i].first;
    maxlen = std::max<int64_t>(maxlen, idx.numel());
  }
  *x_out = at::zeros({b, maxlen, dim});
  *t_out = at::zeros({b, maxlen});
  *m_out = at::zeros({b, maxlen}, at::kLong);
  for (int64_t i = 0; i < b; ++i) {
    const int64_t n = sel_x[i].size(0);
    if (!n) continue;
    x_out->select(0, i).slice(0, 0, n).copy_(sel_x[i]);
    t_out->select(0, i).slice(0, 0, n).copy_(sel_t[i]);
    m_out->select(0, i).slice(0, 0, n).fill_(1);
  }
}

// K: the decoder's codebooks, the first K of the cached codec codes.
Batch collate(const std::vector<Sample>& samples, int64_t K, int64_t frames, double frame_rate, int64_t pad,
              int64_t clip_dim, int64_t motion_dim, bool with_motion) {
  const int64_t b = static_cast<int64_t>(samples.size());
  Batch out;
  out.codes = at::full({b, K, frames}, pad, at::kLong);
  out.keep = at::zeros({b});
  std::vector<at::Tensor> cx, ct, mx, mt;
  std::vector<std::pair<double, double>> range;
  for (int64_t i = 0; i < b; ++i) {
    const auto& s = samples[i];
    const at::Tensor& codes = s.clip->codes;
    const int64_t n = std::min<int64_t>(frames, codes.size(1) - s.offset);
    out.codes.select(0, i).slice(1, 0, n).copy_(codes.slice(0, 0, K).slice(1, s.offset, s.offset + n));
    out.keep[i] = s.keep_condition ? 1.0 : 0.0;
    range.emplace_back(s.offset / frame_rate, (s.offset + frames) / frame_rate);
    cx.push_back(s.clip->clip);
    ct.push_back(s.clip->clip_t);
    if (with_motion) {
      mx.push_back(s.clip->motion);
      mt.push_back(s.clip->motion_t);
    }
  }
  gather_stream(cx, ct, range, clip_dim, &out.clip, &out.clip_t, &out.clip_mask);
  if (with_motion) {
    gather_stream(mx, mt, range, motion_dim, &out.motion, &out.motion_t, &out.motion_mask);
  } else {  // the fusion ignores motion; keep shapes well-formed
    out.motion = at::zeros({b, 1, motion_dim});
    out.motion_t = at::zeros({b, 1});
    out.motion_mask = at::zeros({b, 1}, at::kLong);
  }
  return out;
}

struct LossOut {
  at::Tensor per_sample;    // [b] mean CE over valid tokens and codebooks
  at::Tensor per_codebook;  // [b, K]
};

// Cross-entropy of the decoder over the delay pattern's valid positions (audiocraft's
// LMModel.compute_predictions + the solver's per-codebook CE).
LossOut forward_loss(model::V2MModelImpl& m, const Batch& batch, const at::Device& dev) {
  auto to = [&](const at::Tensor& t) { return t.to(dev); };
  auto cond = m.fusion->forward(to(batch.clip), to(batch.clip_t), to(batch.clip_mask), to(batch.motion),
                                to(batch.motion_t), to(batch.motion_mask));
  at::Tensor keep = to(batch.keep);
  // Dropped conditions become exactly the null condition generation uses for CFG:
  // zero states with an all-zero attention mask.
  at::Tensor memory = cond.memory * keep.view({-1, 1, 1}).to(cond.memory.scalar_type());
  at::Tensor mask = cond.mask * keep.view({-1, 1}).to(cond.mask.scalar_type());
  const auto& dc = m.cfg.decoder;
  auto seq = nn::delay_pattern_for_training(to(batch.codes), dc.bos_token_id, dc.pad_token_id);
  at::Tensor frame_cond;
  if (cond.frame.defined())  // time-aligned condition, dropped with the rest
    frame_cond = nn::resample_to_frames(cond.frame, cond.times, cond.mask, seq.input.size(2), m.frame_rate()) *
                 keep.view({-1, 1, 1}).to(cond.frame.scalar_type());
  at::Tensor logits = m.decoder->forward(seq.input, memory, mask, nullptr, frame_cond);  // [b, K, S, V]
  const int64_t V = logits.size(-1);
  at::Tensor valid = seq.mask.unsqueeze(0).logical_and(seq.target != dc.pad_token_id);  // [b, K, S]
  at::Tensor target = seq.target.clamp_max(V - 1);
  at::Tensor ce = at::cross_entropy_loss(logits.reshape({-1, V}).to(at::kFloat), target.reshape({-1}), {},
                                         at::Reduction::None)
                      .view(valid.sizes());
  at::Tensor vf = valid.to(at::kFloat);
  LossOut out;
  out.per_codebook = (ce * vf).sum(-1) / vf.sum(-1).clamp_min(1.0);
  out.per_sample = out.per_codebook.mean(1);
  return out;
}

// AdamW (Loshchilov & Hutter) with decoupled weight decay on matrices only (biases, norms
// and 1-d parameters are not decayed), as torch.optim.AdamW with per-group decay.
struct AdamW {
  std::vector<std::string> names;
  std::vector<at::Tensor> params, exp_avg, exp_avg_sq;
  double beta1, beta2, eps = 1e-8, weight_decay;

  void step(double lr, int64_t t) {
    at::NoGradGuard ng;
    const double bc1 = 1 - std::pow(beta1, static_cast<double>(t));
    const double bc2 = 1 - std::pow(beta2, static_cast<double>(t));
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i];
      if (!p.grad().defined()) continue;
      const at::Tensor g = p.grad();
      if (weight_decay > 0 && p.dim() >= 2) p.mul_(1 - lr * weight_decay);
      exp_avg[i].mul_(beta1).add_(g, 1 - beta1);
      exp_avg_sq[i].mul_(beta2).addcmul_(g, g, 1 - beta2);
      at::Tensor denom = (exp_avg_sq[i] / bc2).sqrt_().add_(eps);
      p.addcdiv_(exp_avg[i], denom, -lr / bc1);
    }
  }
  nn::TensorMap state() const {
    nn::TensorMap m;
    for (size_t i = 0; i < params.size(); ++i) {
      m[names[i] + ".exp_avg"] = exp_avg[i].detach().to(at::kCPU);
      m[names[i] + ".exp_avg_sq"] = exp_avg_sq[i].detach().to(at::kCPU);
    }
    return m;
  }
  void load(const nn::TensorMap& m, const std::string& source) {
    for (size_t i = 0; i < params.size(); ++i)
      for (auto [suffix, dst] : {std::pair<const char*, at::Tensor*>{".exp_avg", &exp_avg[i]}, {".exp_avg_sq", &exp_avg_sq[i]}}) {
        auto it = m.find(names[i] + suffix);
        if (it == m.end())
          throw Error(describe("cannot resume", source, "optimizer state has no '" + names[i] + suffix +
                                                            "' (were different parameters trained?)"));
        if (it->second.sizes() != dst->sizes())
          throw Error(describe("cannot resume", source, "optimizer state '" + names[i] + suffix + "' has the wrong shape"));
        dst->copy_(it->second);
      }
  }
};

// Linear warmup to lr, then cosine decay to min_lr_ratio * lr at the last step.
double lr_at(const data::TrainConfig& t, int64_t step) {
  if (t.warmup_steps > 0 && step < t.warmup_steps) return t.lr * static_cast<double>(step + 1) / t.warmup_steps;
  const double span = std::max<int64_t>(1, t.steps - t.warmup_steps);
  const double p = std::min(1.0, static_cast<double>(step - t.warmup_steps) / span);
  const double lo = t.lr * t.min_lr_ratio;
  return lo + 0.5 * (t.lr - lo) * (1 + std::cos(M_PI * p));
}

// metrics.jsonl, truncated to the resumed step so a resumed run's log reads as one run.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, int64_t resume_step, bool enabled) : path_(path), enabled_(enabled) {
    if (!enabled_) return;
    std::string kept;
    if (std::ifstream in(path); in) {
      std::string line;
      while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("step", int64_t{0}) <= resume_step) kept += line + "\n";
      }
    }
    atomic_write_bytes(path, kept.data(), kept.size());
    out_.open(path, std::ios::app);
  }
  void write(const nlohmann::json& j) {
    if (!enabled_) return;
    out_ << j.dump() << "\n";
    out_.flush();
  }

 private:
  std::string path_;
  bool enabled_;
  std::ofstream out_;
};

std::string config_hash_of(model::ModelConfig cfg) { return config_hash(to_yaml(cfg)); }

}  // namespace

void request_stop(int sig) { g_stop.store(sig == 0 ? SIGTERM : sig); }
int stop_signal() { return g_stop.load(); }

std::string resolve_device(const std::string& d) {
  if (d == "auto") return torch::cuda::is_available() ? "cuda" : "cpu";
  if (d == "cuda" && !torch::cuda::is_available())
    throw Error("train.device is cuda but this LibTorch has no CUDA or no GPU is visible");
  return d;
}

TrainResult train(const data::RunConfig& cfg, const TrainOptions& opts, Dist& dist) {
  const auto& tc = cfg.train;
  const at::Device dev(resolve_device(tc.device) == "cuda" ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU));
  const int W = dist.world_size();
  if (tc.batch_size % (static_cast<int64_t>(W) * tc.grad_accum) != 0)
    throw Error(describe("config", cfg.source,
                         "train.batch_size (" + std::to_string(tc.batch_size) + ") must be a multiple of world size x grad_accum (" +
                             std::to_string(W) + " x " + std::to_string(tc.grad_accum) + ")"));
  const int64_t micro = tc.batch_size / (W * tc.grad_accum);

  // Model: pretrained parts from `init`, else the architecture yaml (random init, seed 0).
  model::V2MModel model = load_run_model(cfg);
  const auto& mc = model->cfg;
  const std::string chash = config_hash_of(mc);
  const bool with_motion = mc.fusion.motion;
  const double fr = model->frame_rate();
  const int64_t frames = std::max<int64_t>(1, static_cast<int64_t>(std::floor(mc.window_s * fr)));

  // Data: the cache written by `v2m prep` for this exact feature setup.
  data::ManifestOptions mo;
  mo.root = cfg.data.root;
  mo.allow_absolute_paths = cfg.data.allow_absolute_paths;
  mo.check_files = false;  // training reads only the cache
  const data::Manifest manifest = data::read_manifest(cfg.data.manifest, mo);
  const std::string cdir = cache_dir(cfg, mc);
  FeatureCache train_set = FeatureCache::open(cdir, manifest.clips, cfg.data.shard_size, with_motion, "train");
  FeatureCache val_set = FeatureCache::open(cdir, manifest.clips, cfg.data.shard_size, with_motion, "val");
  if (train_set.size() == 0) throw Error(describe("training data", cfg.data.manifest, "no usable clips in the train split"));
  if (dist.is_main() && !train_set.failed().empty())
    spdlog::warn("training: {} clips skipped because prep could not process them (see `v2m prep` output)",
                 train_set.failed().size());
  for (size_t i = 0; i < train_set.size(); ++i)
    if (train_set[i].codes.size(0) < mc.decoder.num_codebooks || train_set[i].clip.size(1) != mc.clip_dim())
      throw Error(describe("feature cache", cdir, "clip '" + train_set[i].id + "' does not match the model's shapes"));

  // Trainable parameters, in name order (the same on every rank: bucket order matters).
  model->to(dev);
  for (auto& p : model->clip->parameters()) p.set_requires_grad(false);
  for (auto& p : model->codec->parameters()) p.set_requires_grad(false);
  if (tc.freeze_decoder)
    for (auto& p : model->decoder->parameters()) p.set_requires_grad(false);
  AdamW opt;
  opt.beta1 = tc.beta1;
  opt.beta2 = tc.beta2;
  opt.weight_decay = tc.weight_decay;
  for (const auto& item : model->named_parameters(true)) {
    if (!item.value().requires_grad()) continue;
    opt.names.push_back(item.key());
    opt.params.push_back(item.value());
    opt.exp_avg.push_back(at::zeros_like(item.value()));
    opt.exp_avg_sq.push_back(at::zeros_like(item.value()));
  }
  if (opt.params.empty()) throw Error(describe("config", cfg.source, "nothing to train (every part is frozen)"));

  // Resume.
  const std::string ckpt_root = cfg.out_dir + "/checkpoints";
  TrainerState st;
  st.seed = tc.seed;
  st.config_hash = chash;
  st.world_size = W;
  std::string resume_dir = opts.resume_from;
  if (resume_dir.empty() && opts.resume) resume_dir = latest_checkpoint(ckpt_root);
  if (!resume_dir.empty()) {
    // Refuse before touching the model: a changed architecture cannot continue.
    std::ifstream f(resume_dir + "/trainer_state.json");
    auto j = nlohmann::json::parse(f, nullptr, false);
    if (!j.is_discarded() && j.value("config_hash", std::string()) != chash)
      throw Error(describe("cannot resume", resume_dir,
                           "the model config changed since this checkpoint (hash " + j.value("config_hash", std::string("?")) +
                               " vs " + chash + "); use a new out_dir or --no-resume"));
    LoadedCheckpoint lc = load_checkpoint(resume_dir, model);
    opt.load(lc.optimizer, resume_dir + "/optimizer.safetensors");
    st = lc.state;
    if (st.seed != tc.seed)
      spdlog::warn("resume: train.seed changed from {} to {}; keeping the checkpoint's {}", st.seed, tc.seed, st.seed);
    st.world_size = W;
    if (dist.is_main()) spdlog::info("resuming from {} (step {})", resume_dir, st.step);
  } else {
    dist.broadcast(opt.params);  // identical start on every rank
    if (mc.fusion.input_norm) {
      // Every rank reads the same train split, so the statistics agree without a broadcast.
      std::vector<at::Tensor> cx, mx;
      for (size_t i = 0; i < train_set.size(); ++i) {
        cx.push_back(train_set[i].clip);
        if (with_motion) mx.push_back(train_set[i].motion);
      }
      const at::Tensor clip_frames = at::cat(cx, 0).to(at::kFloat);
      const at::Tensor motion_frames = with_motion ? at::cat(mx, 0).to(at::kFloat) : at::Tensor();
      model->fusion->set_input_stats(clip_frames, motion_frames);  // copied into the buffers in place
      if (dist.is_main())
        spdlog::info("fusion.input_norm: statistics of {} CLIP and {} motion frames", clip_frames.size(0),
                     with_motion ? motion_frames.size(0) : 0);
    }
  }
  if (dist.is_main()) {
    std::error_code ec;
    std::filesystem::create_directories(cfg.out_dir, ec);
    if (ec) throw Error(describe("cannot create directory", cfg.out_dir, ec.message()));
    remove_stale_temporaries(ckpt_root);
    const std::string y = to_yaml(const_cast<data::RunConfig&>(cfg));
    atomic_write_bytes(cfg.out_dir + "/run_config.yaml", y.data(), y.size());
  }
  MetricsLog log(cfg.out_dir + "/metrics.jsonl", st.step, dist.is_main());

  const int64_t N = static_cast<int64_t>(train_set.size());
  const int64_t K = mc.decoder.num_codebooks;
  const int64_t pad = mc.decoder.pad_token_id;
  const int64_t clip_dim = mc.clip_dim();
  const int64_t motion_dim = mc.motion.in_dim;
  auto sample_at = [&](int64_t g, std::vector<int64_t>& order, int64_t& order_epoch) -> Sample {
    const int64_t epoch = g / N;
    if (epoch != order_epoch) {
      order = epoch_order(N, st.seed, epoch);
      order_epoch = epoch;
    }
    const CachedClip* c = &train_set[static_cast<size_t>(order[g % N])];
    const int64_t span = c->codes.size(1) - frames;
    const uint64_t r = mix(st.seed, static_cast<uint64_t>(g), 0xc409);
    Sample s{c, span > 0 ? static_cast<int64_t>(r % static_cast<uint64_t>(span + 1)) : 0, true};
    const double u = static_cast<double>(mix(st.seed, static_cast<uint64_t>(g), 0xd409) >> 11) * 0x1.0p-53;
    s.keep_condition = u >= tc.cond_dropout;
    return s;
  };
  std::vector<int64_t> order;
  int64_t order_epoch = -1;

  // Validation loss with each clip's own condition, and with the condition of the next clip
  // in the batch (the music unchanged): their difference is what the model takes from the
  // video. NaN where there is no val split (shuffled: no batch of two).
  struct ValLoss {
    double loss, shuffled;
  };
  auto validate = [&]() -> ValLoss {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (val_set.size() == 0) return {nan, nan};
    model->eval();
    at::NoGradGuard ng;
    double sum = 0, count = 0, sum_shuf = 0, count_shuf = 0;
    const int64_t nb = std::min<int64_t>(tc.val_batches, (static_cast<int64_t>(val_set.size()) + micro - 1) / micro);
    for (int64_t bi = dist.rank(); bi < nb; bi += W) {
      std::vector<Sample> ss;
      for (int64_t i = bi * micro; i < std::min<int64_t>((bi + 1) * micro, val_set.size()); ++i)
        ss.push_back({&val_set[static_cast<size_t>(i)], 0, true});
      Batch b = collate(ss, K, frames, fr, pad, clip_dim, motion_dim, with_motion);
      LossOut l = forward_loss(*model, b, dev);
      sum += l.per_sample.sum().item<double>();
      count += static_cast<double>(ss.size());
      if (ss.size() < 2) continue;
      std::rotate(ss.begin(), ss.begin() + 1, ss.end());
      Batch shuf = collate(ss, K, frames, fr, pad, clip_dim, motion_dim, with_motion);
      shuf.codes = b.codes;
      sum_shuf += forward_loss(*model, shuf, dev).per_sample.sum().item<double>();
      count_shuf += static_cast<double>(ss.size());
    }
    at::Tensor s = at::tensor({sum, count, sum_shuf, count_shuf}, at::kDouble);
    dist.all_reduce_sum({s});
    model->train();
    model->clip->eval();
    model->codec->eval();
    auto ratio = [&](int i) {
      return s[i + 1].item<double>() > 0 ? s[i].item<double>() / s[i + 1].item<double>() : nan;
    };
    return {ratio(0), ratio(2)};
  };

  const int64_t last_step = opts.max_steps_this_run > 0 ? std::min(tc.steps, st.step + opts.max_steps_this_run) : tc.steps;
  TrainResult res;
  res.step = st.step;
  if (st.step >= tc.steps) {
    if (dist.is_main()) spdlog::info("training already complete ({} of {} steps)", st.step, tc.steps);
    res.checkpoint = resume_dir;
    res.last_loss = st.last_loss;
    res.best_val = st.best_val;
    return res;
  }
  if (dist.is_main())
    spdlog::info("training {} ({} trainable params) on {} clips, {} val; global batch {} = {} ranks x {} accum x {}; "
                 "window {} frames; cache {}",
                 mc.name, [&] { int64_t n = 0; for (auto& p : opt.params) n += p.numel(); return n; }(), N,
                 val_set.size(), tc.batch_size, W, tc.grad_accum, micro, frames, cdir);

  model->train();
  model->clip->eval();
  model->codec->eval();
  std::unique_ptr<Progress> bar;
  if (dist.is_main()) bar = std::make_unique<Progress>("train", static_cast<double>(last_step - st.step), "steps");
  auto t_last = std::chrono::steady_clock::now();
  int64_t samples_since = 0;
  const bool autocast = dev.is_cuda() && tc.bf16;
  std::string last_ckpt;

  auto checkpoint = [&](bool is_best) {
    if (!dist.is_main()) return;
    last_ckpt = save_checkpoint(ckpt_root, model, opt.state(), st, tc.keep_last, is_best);
    spdlog::info("checkpoint {}{}", last_ckpt, is_best ? " (best)" : "");
  };

  while (st.step < last_step) {
    const double lr = lr_at(tc, st.step);
    for (auto& p : opt.params)
      if (p.grad().defined()) p.grad().zero_();
    // Dropout masks inside the fusion: seeded per step and rank, so resume is exact.
    torch::manual_seed(mix(st.seed, static_cast<uint64_t>(st.step), static_cast<uint64_t>(dist.rank()), 0x5eed));
    at::Tensor stats = at::zeros({K + 2}, at::kDouble);  // per-codebook CE sums, sample count, stop flag
    for (int64_t a = 0; a < tc.grad_accum; ++a) {
      std::vector<Sample> ss;
      const int64_t base = st.step * tc.batch_size + dist.rank() * (tc.batch_size / W) + a * micro;
      for (int64_t j = 0; j < micro; ++j) ss.push_back(sample_at(base + j, order, order_epoch));
      Batch b = collate(ss, K, frames, fr, pad, clip_dim, motion_dim, with_motion);
      if (autocast) {
        at::autocast::set_enabled(true);
        at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      }
      LossOut l = forward_loss(*model, b, dev);
      if (autocast) {
        at::autocast::clear_cache();
        at::autocast::set_enabled(false);
      }
      // Sum of per-sample means / global batch: summing over micro-batches and ranks gives
      // exactly the global mean, whatever the split.
      (l.per_sample.sum() / static_cast<double>(tc.batch_size)).backward();
      stats.slice(0, 0, K) += l.per_codebook.detach().sum(0).to(at::kCPU, at::kDouble);
      stats[K] += static_cast<double>(micro);
    }
    stats[K + 1] = g_stop.load() ? 1.0 : 0.0;
    std::vector<at::Tensor> grads;
    for (auto& p : opt.params)
      if (p.grad().defined()) grads.push_back(p.grad());
    dist.all_reduce_sum(grads);
    dist.all_reduce_sum({stats});

    const at::Tensor per_cb = stats.slice(0, 0, K) / stats[K];
    const double loss = per_cb.mean().item<double>();
    if (!std::isfinite(loss))
      throw Error("training diverged: loss is " + std::string(std::isnan(loss) ? "NaN" : "Inf") + " at step " +
                  std::to_string(st.step + 1) + " (last checkpoint: " +
                  (last_ckpt.empty() ? (resume_dir.empty() ? std::string("none") : resume_dir) : last_ckpt) +
                  "); lower train.lr or check the data");
    double gnorm = 0;
    {
      at::NoGradGuard ng;
      // One reduction and one host sync for the global norm, not one per parameter.
      std::vector<at::Tensor> norms;
      for (auto& g : grads) norms.push_back(g.norm(2).to(at::kDouble));
      gnorm = norms.empty() ? 0.0 : at::stack(norms).norm(2).item<double>();
      if (spdlog::should_log(spdlog::level::debug)) {  // which parameters dominate the norm
        std::vector<std::pair<double, std::string>> top;
        for (size_t i = 0; i < opt.params.size(); ++i)
          if (opt.params[i].grad().defined()) top.emplace_back(opt.params[i].grad().norm().item<double>(), opt.names[i]);
        std::sort(top.rbegin(), top.rend());
        for (size_t i = 0; i < std::min<size_t>(3, top.size()); ++i)
          spdlog::debug("step {} grad norm {:.4g} {}", st.step + 1, top[i].first, top[i].second);
      }
      if (tc.grad_clip > 0 && gnorm > tc.grad_clip)
        for (auto& g : grads) g.mul_(tc.grad_clip / (gnorm + 1e-6));
    }
    opt.step(lr, st.step + 1);
    ++st.step;
    st.samples += tc.batch_size;
    st.epoch = st.step * tc.batch_size / N;
    st.last_loss = loss;
    samples_since += tc.batch_size;
    if (bar) bar->advance();

    if (dist.is_main() && (st.step % tc.log_every == 0 || st.step == last_step)) {
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_last).count();
      nlohmann::json j = {{"step", st.step},     {"epoch", st.epoch}, {"loss", loss}, {"lr", lr},
                          {"grad_norm", gnorm},  {"samples_per_s", dt > 0 ? samples_since / dt : 0.0}};
      std::vector<double> cb(K);
      for (int64_t k = 0; k < K; ++k) cb[k] = per_cb[k].item<double>();
      j["loss_per_codebook"] = cb;
      log.write(j);
      spdlog::info("step {}/{} loss {:.4f} lr {:.3g} grad_norm {:.3f} {:.2f} samples/s", st.step, tc.steps, loss, lr,
                   gnorm, dt > 0 ? samples_since / dt : 0.0);
      t_last = std::chrono::steady_clock::now();
      samples_since = 0;
    }
    bool wrote = false;
    if (tc.val_every > 0 && st.step % tc.val_every == 0) {
      const ValLoss vl = validate();
      const double v = vl.loss;
      if (std::isfinite(v)) {
        const bool best = v < st.best_val;
        if (best) {
          st.best_val = v;
          st.best_step = st.step;
        }
        nlohmann::json j = {{"step", st.step}, {"val_loss", v}};
        if (std::isfinite(vl.shuffled)) j["val_loss_shuffled"] = vl.shuffled;
        log.write(j);
        if (dist.is_main())
          spdlog::info("step {} val_loss {:.4f}{}; with another clip's condition {:.4f} (gain {:+.4f})", st.step, v,
                       best ? " (best)" : "", vl.shuffled, vl.shuffled - v);
        if (best) {
          checkpoint(true);
          wrote = true;
        }
      }
    }
    const bool stopping = stats[K + 1].item<double>() > 0;
    if (!wrote && (st.step % tc.ckpt_every == 0 || st.step == last_step || stopping)) checkpoint(false);
    if (stopping) {
      if (dist.is_main()) spdlog::warn("stopped by signal at step {}; checkpoint written", st.step);
      res.interrupted = true;
      break;
    }
  }
  if (bar) bar->finish();
  dist.barrier();
  res.step = st.step;
  res.last_loss = st.last_loss;
  res.best_val = st.best_val;
  res.checkpoint = last_ckpt;
  return res;
}

}  // namespace v2m::train
