#include "synth/codec_trainer.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <algorithm>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <utility>

#include "data/manifest.h"
#include "model/v2m_model.h"
#include "nn/state_dict.h"
#include "v2m/error.h"
#include "v2m/fs.h"
#include "v2m/media.h"
#include "v2m/progress.h"
#include "v2m/runtime.h"

namespace v2m::synth {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// config

void CodecTrainConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& why) { throw Error(describe("bad codec training config", source, why)); };
  codec.validate(source);
  if (data.manifest.empty()) fail("data.manifest is empty");
  if (out_dir.empty()) fail("out_dir is empty");
  if (loss.mel_min_log2 > loss.mel_max_log2) fail("loss.mel_min_log2 > loss.mel_max_log2");
  const int64_t n = static_cast<int64_t>(std::llround(segment_s * static_cast<double>(codec.sampling_rate)));
  if (n < 2 * codec.hop_length()) fail("segment_s must cover at least two codec frames");
  if ((int64_t{1} << loss.mel_max_log2) > n) fail("the largest mel window (2^mel_max_log2) is longer than a segment");
  if (codec.audio_channels != 1) fail("codec.audio_channels must be 1 (SynthV2M audio is mono)");
  if (decoder_only && init.empty()) fail("decoder_only needs init (the trained codec whose decoder to train)");
  for (int64_t k : train_codebooks)
    if (k > codec.num_codebooks)
      fail("train_codebooks has " + std::to_string(k) + " but the codec has " + std::to_string(codec.num_codebooks));
}

CodecTrainConfig load_codec_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  auto cfg = load_config<CodecTrainConfig>(path, overrides);
  cfg.validate(path);
  return cfg;
}

// ---------------------------------------------------------------------------------------------
// quantizer training

at::Tensor random_indices(int64_t count, int64_t n, Rng& rng) {
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (auto& i : idx) i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n));
  return at::tensor(idx, at::kLong);
}

namespace {

at::Tensor nearest(const at::Tensor& x, const at::Tensor& embed) {
  const at::Tensor d = x.pow(2).sum(1, true) - 2 * at::matmul(x, embed.t()) + embed.pow(2).sum(1).unsqueeze(0);
  return d.argmin(-1);
}

// Lloyd's k-means from a random sample of the data (audiocraft's core_vq.kmeans): empty
// clusters keep their previous mean. Returns means [K, D] and counts [K].
std::pair<at::Tensor, at::Tensor> kmeans(const at::Tensor& x, int64_t K, int64_t iters, Rng& rng) {
  at::Tensor means = x.index_select(0, random_indices(K, x.size(0), rng)).clone();
  at::Tensor bins = at::zeros({K}, x.options());
  for (int64_t it = 0; it <= iters; ++it) {
    const at::Tensor assign = nearest(x, means);
    bins = at::bincount(assign, {}, K).to(x.scalar_type());
    if (it == iters) break;
    const at::Tensor sums = at::zeros_like(means).index_add_(0, assign, x);
    const at::Tensor fresh = sums / bins.clamp_min(1).unsqueeze(1);
    means = at::where((bins == 0).unsqueeze(1), means, fresh);
  }
  return {means, bins};
}

}  // namespace

RvqTrainer::RvqTrainer(nn::Encodec codec, const QuantizerTrainConfig& cfg) : codec_(std::move(codec)), cfg_(cfg) {
  const auto& c = codec_->cfg;
  for (size_t k = 0; k < codec_->quantizer->layers->size(); ++k)
    state_.push_back({at::zeros({c.codebook_size}), at::zeros({c.codebook_size, c.codebook_dim}), false});
  usage_.assign(state_.size(), 0.0);
}

at::Tensor& RvqTrainer::embed(size_t k) {
  return codec_->quantizer->layers[k]->as<nn::EncodecVectorQuantization>()->codebook->embed;
}

bool RvqTrainer::inited() const {
  for (const auto& s : state_)
    if (!s.inited) return false;
  return true;
}

void RvqTrainer::kmeans_init(const at::Tensor& z_flat, Rng& rng) {
  at::NoGradGuard ng;
  at::Tensor residual = z_flat.detach().clone();
  const double pool_batches = static_cast<double>(std::max<int64_t>(1, cfg_.kmeans_batches));
  for (size_t k = 0; k < state_.size(); ++k) {
    auto [means, bins] = kmeans(residual, embed(k).size(0), cfg_.kmeans_iters, rng);
    embed(k).copy_(means);
    // EMA buffers in "per training batch" units, consistent with embed = embed_avg / cluster_size.
    state_[k].cluster_size = bins / pool_batches;
    state_[k].embed_avg = means * state_[k].cluster_size.unsqueeze(1);
    state_[k].inited = true;
    residual = residual - at::embedding(embed(k), nearest(residual, embed(k)));
  }
}

void RvqTrainer::ema_update(size_t k, const at::Tensor& x, const at::Tensor& ind, Rng& rng) {
  CodebookState& s = state_[k];
  at::Tensor& e = embed(k);
  const int64_t size = e.size(0);
  // Dead codes (EMA usage below the threshold) restart at random vectors of the batch
  // (audiocraft's expire_codes_). Unlike audiocraft, the EMA buffers are reset too, so the
  // replacement survives the EMA renormalisation below.
  if (cfg_.dead_code_threshold > 0) {
    const at::Tensor dead = (s.cluster_size < cfg_.dead_code_threshold).nonzero().squeeze(1);
    if (dead.numel() > 0) {
      const at::Tensor samples = x.index_select(0, random_indices(dead.numel(), x.size(0), rng));
      e.index_copy_(0, dead, samples);
      s.cluster_size.index_fill_(0, dead, cfg_.dead_code_threshold);
      s.embed_avg.index_copy_(0, dead, samples * cfg_.dead_code_threshold);
    }
  }
  const at::Tensor counts = at::bincount(ind, {}, size).to(x.scalar_type());
  const at::Tensor sums = at::zeros_like(s.embed_avg).index_add_(0, ind, x);
  const double d = cfg_.ema_decay;
  s.cluster_size.mul_(d).add_(counts, 1.0 - d);
  s.embed_avg.mul_(d).add_(sums, 1.0 - d);
  // Laplace smoothing keeps rarely used codes from dividing by ~0.
  const at::Tensor n = s.cluster_size.sum();
  const at::Tensor smoothed = (s.cluster_size + cfg_.epsilon) / (n + static_cast<double>(size) * cfg_.epsilon) * n;
  e.copy_(s.embed_avg / smoothed.unsqueeze(1));
}

void RvqTrainer::adopt_codebooks() {
  at::NoGradGuard ng;
  for (size_t k = 0; k < state_.size(); ++k) {
    state_[k].cluster_size = at::ones({embed(k).size(0)});
    state_[k].embed_avg = embed(k).clone();
    state_[k].inited = true;
  }
}

at::Tensor RvqTrainer::forward(const at::Tensor& z, at::Tensor* commit, Rng& rng, bool train, int64_t nq) {
  const int64_t B = z.size(0), D = z.size(1), T = z.size(2);
  const at::Tensor x = z.permute({0, 2, 1}).reshape({B * T, D});
  at::Tensor residual = x, quant = at::zeros_like(x.detach()), loss = at::zeros({}, x.options());
  const size_t layers = nq > 0 ? std::min(state_.size(), static_cast<size_t>(nq)) : state_.size();
  for (size_t k = 0; k < layers; ++k) {
    at::Tensor ind, q;
    {
      at::NoGradGuard ng;
      ind = nearest(residual.detach(), embed(k));
      q = at::embedding(embed(k), ind).clone();  // the codebook before this step's update
      usage_[k] = static_cast<double>((at::bincount(ind, {}, embed(k).size(0)) > 0).sum().item<int64_t>()) /
                  static_cast<double>(embed(k).size(0));
    }
    // Commitment: pull the encoder output (through the residual) towards its codeword.
    loss = loss + at::mse_loss(residual, q);
    if (train) {
      at::NoGradGuard ng;
      ema_update(k, residual.detach(), ind, rng);
    }
    residual = residual - q;
    quant = quant + q;
  }
  if (commit) *commit = loss;
  // Straight-through estimator over the whole RVQ (audiocraft's fix for encodec issue #25).
  const at::Tensor st = x + (quant - x).detach();
  return st.view({B, T, D}).permute({0, 2, 1});
}

// ---------------------------------------------------------------------------------------------
// export / eval

void export_codec(nn::Encodec& codec, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(describe("cannot create codec directory", dir, ec.message()));
  const nn::EncodecConfig& c = codec->cfg;
  // num_codebooks round-trips through transformers' num_quantizers =
  // floor(1000 * bw / (frame_rate * 10)): bw = (K + 0.25) * frame_rate / 100.
  const double bw = (static_cast<double>(c.num_codebooks) + 0.25) * static_cast<double>(c.frame_rate()) / 100.0;
  nlohmann::json j = nn::encodec_config_to_hf(c);
  j["target_bandwidths"] = {bw};
  const std::string text = j.dump(2) + "\n";
  atomic_write_bytes(dir + "/config.json", text.data(), text.size());
  nn::TensorMap m;
  nn::collect_state(*codec, "", &m);
  nn::save_safetensors(dir + "/model.safetensors", m, {{"format", "pt"}});
  nn::EncodecConfig copy = c;
  const std::string yaml = to_yaml(copy);
  atomic_write_bytes(dir + "/codec.yaml", yaml.data(), yaml.size());
}

CodecEvalResult evaluate_codec(nn::Encodec& codec, const std::string& manifest, const std::string& split,
                               int64_t max_clips, const CodecLossConfig& loss, int64_t codebooks,
                               const std::string& write_dir) {
  at::NoGradGuard ng;
  const int64_t all = codec->cfg.num_codebooks;
  if (codebooks < 0 || codebooks > all)
    throw Error(describe("cannot evaluate codec", "codebooks", "asked for " + std::to_string(codebooks) +
                                                                    ", the codec has " + std::to_string(all)));
  const int64_t nq = codebooks > 0 ? codebooks : all;
  const bool was_training = codec->is_training();
  codec->eval();
  const auto m = data::read_manifest(manifest);
  auto clips = m.split(split);
  if (max_clips > 0 && static_cast<int64_t>(clips.size()) > max_clips) clips.resize(static_cast<size_t>(max_clips));
  if (clips.empty()) throw Error(describe("cannot evaluate codec", manifest, "no clips in split '" + split + "'"));
  const int sr = static_cast<int>(codec->cfg.sampling_rate);
  const auto scales = mel_scales(static_cast<int>(loss.mel_min_log2), static_cast<int>(loss.mel_max_log2));
  CodecEvalResult r;
  r.split = split;
  r.codebooks = nq;
  if (!write_dir.empty()) {
    std::error_code ec;
    fs::create_directories(write_dir, ec);
    if (ec) throw Error(describe("cannot create output directory", write_dir, ec.message()));
  }
  for (const auto& c : clips) {
    const media::Audio a = media::decode_audio(c.audio_path, sr, 1, c.start, c.duration);
    const int64_t n = a.frames();
    if (n < (int64_t{1} << loss.mel_max_log2)) continue;
    const at::Tensor x = at::from_blob(const_cast<float*>(a.samples.data()), {1, 1, n}, at::kFloat).clone();
    const at::Tensor y = codec->decode(codec->encode(x).slice(1, 0, nq)).slice(2, 0, n);
    if (!write_dir.empty()) {
      media::Audio out;
      out.sample_rate = sr, out.channels = 1;
      const at::Tensor yc = y.reshape({-1}).contiguous();
      out.samples.assign(yc.data_ptr<float>(), yc.data_ptr<float>() + yc.numel());
      atomic_write(write_dir + "/" + c.id + ".wav", [&](const std::string& tmp) { media::write_wav(tmp, out); });
    }
    r.si_snr_db += si_snr(y.view({-1}), x.view({-1})).item<double>();
    r.mel_distance += mel_distance(y, x, scales, sr).item<double>();
    r.seconds += static_cast<double>(n) / sr;
    ++r.clips;
  }
  if (r.clips == 0) throw Error(describe("cannot evaluate codec", manifest, "every clip is shorter than the largest mel window"));
  r.si_snr_db /= r.clips;
  r.mel_distance /= r.clips;
  if (was_training) codec->train();
  return r;
}

// ---------------------------------------------------------------------------------------------
// trainer

namespace {

struct Adam {
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::vector<at::Tensor> m, v;
  int64_t t = 0;
  void init(torch::nn::Module& module) {
    for (const auto& p : module.named_parameters(true)) {
      params.emplace_back(p.key(), p.value());
      m.push_back(at::zeros_like(p.value()));
      v.push_back(at::zeros_like(p.value()));
    }
  }
  void zero_grad() {
    for (auto& [n, p] : params)
      if (p.grad().defined()) p.mutable_grad().zero_();
  }
  // Adam (Kingma & Ba 2015) with bias correction, no weight decay.
  void step(double lr, double b1, double b2) {
    at::NoGradGuard ng;
    ++t;
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(t)), bc2 = 1.0 - std::pow(b2, static_cast<double>(t));
    for (size_t i = 0; i < params.size(); ++i) {
      at::Tensor& p = params[i].second;
      if (!p.grad().defined()) continue;
      const at::Tensor& g = p.grad();
      m[i].mul_(b1).add_(g, 1.0 - b1);
      v[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
      p.addcdiv_(m[i], (v[i] / bc2).sqrt_().add_(1e-8), -lr / bc1);
    }
  }
};

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// He (Kaiming) normal init of the encoder's convolutions, zero biases. LibTorch's default
// (kaiming_uniform with a = sqrt(5)) shrinks the variance ~3x per conv, so a fresh encoder's
// output is its last bias plus a tiny signal: one Adam step then moves every latent past the
// k-means clusters and the codebooks collapse onto a handful of codes. Fan-in of a transposed
// conv is in * kernel / stride (the taps that reach one output sample). The decoder keeps
// LibTorch's init: its small initial output keeps the first losses and gradients moderate.
void he_init(torch::nn::Module& root) {
  at::NoGradGuard ng;
  for (const auto& m : root.modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv1dImpl>()) {
      const double fan = static_cast<double>(c->weight.size(1) * c->weight.size(2));
      c->weight.normal_(0.0, std::sqrt(2.0 / fan));
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* t = m->as<torch::nn::ConvTranspose1dImpl>()) {
      const double stride = static_cast<double>(t->options.stride()->at(0));
      const double fan = static_cast<double>(t->weight.size(0) * t->weight.size(2)) / stride;
      t->weight.normal_(0.0, std::sqrt(2.0 / fan));
      if (t->bias.defined()) t->bias.zero_();
    }
  }
}

struct Trainer {
  CodecTrainConfig cfg;
  std::string source;
  nn::Encodec codec{nullptr};
  std::unique_ptr<RvqTrainer> rvq;
  Adam adam;
  Rng rng{0};
  int64_t step = 0;
  std::vector<std::vector<float>> clips;
  std::vector<at::Tensor> clip_codes;  // decoder_only: each clip's codes [1, K, T], encoded once
  std::string ckpt_root;
  std::string codec_hash;

  explicit Trainer(const CodecTrainConfig& c, const std::string& src) : cfg(c), source(src) {
    at::manual_seed(static_cast<uint64_t>(cfg.seed));
    codec = nn::Encodec(cfg.codec);
    he_init(*codec->encoder);
    codec->train();
    rvq = std::make_unique<RvqTrainer>(codec, cfg.quantizer);
    if (cfg.decoder_only)
      adam.init(*codec->decoder);
    else
      adam.init(*codec);
    rng = Rng(mix_seed(static_cast<uint64_t>(cfg.seed), 0xC0DEC));
    ckpt_root = cfg.out_dir + "/checkpoints";
    nn::EncodecConfig copy = cfg.codec;
    // A decoder-only run keeps optimizer state of the decoder alone: not resumable as a full run.
    codec_hash = config_hash(to_yaml(copy) + (cfg.decoder_only ? "decoder_only\n" : ""));
  }

  // The weights of cfg.init (a fresh run only): same architecture, every tensor.
  void init_from_trained() {
    nn::Encodec trained = model::load_codec_matching(cfg.init, cfg.codec, source);
    nn::TensorMap w;
    nn::collect_state(*trained, "", &w);
    for (auto& [k, t] : w) t = t.to(at::kFloat);
    nn::load_into(*codec, w, "", cfg.init);
    rvq->adopt_codebooks();
    spdlog::info("train-codec: starting from the codec of {}{}", cfg.init, cfg.decoder_only ? " (decoder only)" : "");
  }

  // decoder_only: encode every training clip once with the frozen encoder and codebooks.
  void encode_clips() {
    at::NoGradGuard ng;
    codec->eval();
    Progress bar("train-codec: encoding", static_cast<double>(clips.size()), "clips");
    for (const auto& c : clips) {
      const at::Tensor x = at::from_blob(const_cast<float*>(c.data()), {1, 1, static_cast<int64_t>(c.size())}, at::kFloat);
      clip_codes.push_back(codec->encode(x));
      bar.advance();
    }
    bar.finish();
    codec->decoder->train();
    spdlog::info("train-codec: encoded {} training clips with the frozen encoder", clip_codes.size());
  }

  // Codebooks for this step: one of cfg.train_codebooks, or all.
  int64_t draw_codebooks() {
    if (cfg.train_codebooks.empty()) return cfg.codec.num_codebooks;
    return cfg.train_codebooks[static_cast<size_t>(rng.below(static_cast<int>(cfg.train_codebooks.size())))];
  }

  // decoder_only: random frame-aligned segments -> (codes [B, K, F], audio [B, 1, F * hop]).
  std::pair<at::Tensor, at::Tensor> code_batch() {
    const int64_t hop = cfg.codec.hop_length(), frames = segment_samples() / hop, n = frames * hop;
    at::Tensor x = at::empty({cfg.batch, 1, n});
    std::vector<at::Tensor> codes;
    float* out = x.data_ptr<float>();
    for (int64_t b = 0; b < cfg.batch; ++b) {
      const size_t i = static_cast<size_t>(rng.below(static_cast<int>(clips.size())));
      const auto& c = clips[i];
      const int64_t last = std::min(clip_codes[i].size(2), static_cast<int64_t>(c.size()) / hop) - frames;
      const int64_t f = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(last + 1));
      std::copy(c.begin() + f * hop, c.begin() + f * hop + n, out + b * n);
      codes.push_back(clip_codes[i].slice(2, f, f + frames));
    }
    return {at::cat(codes, 0), x};
  }

  void load_data() {
    const auto m = data::read_manifest(cfg.data.manifest);
    const auto split = m.split(cfg.data.train_split);
    const int sr = static_cast<int>(cfg.codec.sampling_rate);
    const int64_t seg = segment_samples();
    for (const auto& c : split) {
      media::Audio a = media::decode_audio(c.audio_path, sr, 1, c.start, c.duration);
      if (a.frames() < seg) {
        spdlog::warn("train-codec: {}: {:.2f} s is shorter than a segment; skipped", c.audio_path,
                     static_cast<double>(a.frames()) / sr);
        continue;
      }
      clips.push_back(std::move(a.samples));
    }
    if (clips.empty())
      throw Error(describe("cannot train codec", cfg.data.manifest,
                           "no usable clips in split '" + cfg.data.train_split + "'"));
    spdlog::info("train-codec: {} training clips from {}", clips.size(), cfg.data.manifest);
  }

  int64_t segment_samples() const {
    const int64_t hop = cfg.codec.hop_length();
    const int64_t n = static_cast<int64_t>(std::llround(cfg.segment_s * static_cast<double>(cfg.codec.sampling_rate)));
    return n / hop * hop;
  }

  at::Tensor batch() {
    const int64_t n = segment_samples();
    at::Tensor x = at::empty({cfg.batch, 1, n});
    float* out = x.data_ptr<float>();
    for (int64_t b = 0; b < cfg.batch; ++b) {
      const auto& c = clips[static_cast<size_t>(rng.below(static_cast<int>(clips.size())))];
      const int64_t off = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(c.size() - n + 1));
      std::copy(c.begin() + off, c.begin() + off + n, out + b * n);
    }
    return x;
  }

  void init_codebooks() {
    at::NoGradGuard ng;
    std::vector<at::Tensor> pool;
    for (int64_t i = 0; i < cfg.quantizer.kmeans_batches; ++i) {
      const at::Tensor z = codec->encoder->forward(batch());
      pool.push_back(z.permute({0, 2, 1}).reshape({-1, z.size(1)}));
    }
    rvq->kmeans_init(at::cat(pool, 0), rng);
    spdlog::info("train-codec: codebooks initialised by k-means on {} encoder frames", at::cat(pool, 0).size(0));
  }

  void save_checkpoint(const nlohmann::json& metrics) {
    std::error_code ec;
    fs::create_directories(ckpt_root, ec);
    if (ec) throw Error(describe("cannot create checkpoint directory", ckpt_root, ec.message()));
    const std::string name = step_dir_name(step), final_dir = ckpt_root + "/" + name;
    const std::string tmp = ckpt_root + "/.tmp_" + name;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) throw Error(describe("cannot create checkpoint directory", tmp, ec.message()));
    nn::TensorMap model;
    nn::collect_state(*codec, "", &model);
    auto& st = rvq->state();
    for (size_t k = 0; k < st.size(); ++k) {
      const std::string p = "quantizer.layers." + std::to_string(k) + ".codebook.";
      model[p + "cluster_size"] = st[k].cluster_size;
      model[p + "embed_avg"] = st[k].embed_avg;
      model[p + "inited"] = at::full({1}, st[k].inited ? 1.0f : 0.0f);
    }
    nn::save_safetensors(tmp + "/model.safetensors", model, {{"format", "pt"}});
    nn::TensorMap opt;
    for (size_t i = 0; i < adam.params.size(); ++i) {
      opt["exp_avg." + adam.params[i].first] = adam.m[i];
      opt["exp_avg_sq." + adam.params[i].first] = adam.v[i];
    }
    nn::save_safetensors(tmp + "/optimizer.safetensors", opt);
    nlohmann::json state = {{"step", step},         {"adam_step", adam.t}, {"rng", std::to_string(rng.state())},
                            {"codec_hash", codec_hash}, {"metrics", metrics}};
    const std::string text = state.dump(2) + "\n";
    atomic_write_bytes(tmp + "/trainer_state.json", text.data(), text.size());
    fs::remove_all(final_dir, ec);
    fs::rename(tmp, final_dir, ec);
    if (ec) throw Error(describe("cannot write checkpoint", final_dir, ec.message()));
    atomic_write_bytes(ckpt_root + "/latest", name.data(), name.size());
    // Keep the newest keep_checkpoints step_* directories.
    std::vector<std::string> dirs;
    for (const auto& e : fs::directory_iterator(ckpt_root))
      if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0) dirs.push_back(e.path().string());
    std::sort(dirs.begin(), dirs.end());
    for (size_t i = 0; i + static_cast<size_t>(cfg.keep_checkpoints) < dirs.size(); ++i) fs::remove_all(dirs[i], ec);
  }

  bool load_latest() {
    const std::string latest = ckpt_root + "/latest";
    if (!fs::exists(latest)) return false;
    const std::string dir = ckpt_root + "/" + read_text(latest);
    const std::string state_path = dir + "/trainer_state.json";
    nlohmann::json state;
    try {
      std::ifstream f(state_path);
      if (!f) throw Error(describe("cannot resume", state_path, "no such file"));
      state = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw Error(describe("cannot resume", state_path, e.what()));
    }
    if (state.value("codec_hash", "") != codec_hash)
      throw Error(describe("cannot resume", dir, "the checkpoint was trained with a different codec architecture "
                                                 "(pass --fresh or another out_dir)"));
    const std::string mpath = dir + "/model.safetensors";
    const nn::TensorMap model = nn::load_safetensors(mpath);
    nn::load_into(*codec, model, "", mpath);
    auto& st = rvq->state();
    for (size_t k = 0; k < st.size(); ++k) {
      const std::string p = "quantizer.layers." + std::to_string(k) + ".codebook.";
      for (const char* key : {"cluster_size", "embed_avg", "inited"})
        if (!model.count(p + key)) throw Error(describe("cannot resume", mpath, "missing tensor '" + p + key + "'"));
      st[k].cluster_size = model.at(p + "cluster_size").to(at::kFloat).clone();
      st[k].embed_avg = model.at(p + "embed_avg").to(at::kFloat).clone();
      st[k].inited = model.at(p + "inited").item<float>() > 0.5f;
    }
    const std::string opath = dir + "/optimizer.safetensors";
    const nn::TensorMap opt = nn::load_safetensors(opath);
    for (size_t i = 0; i < adam.params.size(); ++i) {
      const std::string& n = adam.params[i].first;
      auto a = opt.find("exp_avg." + n), b = opt.find("exp_avg_sq." + n);
      if (a == opt.end() || b == opt.end()) throw Error(describe("cannot resume", opath, "missing state of '" + n + "'"));
      adam.m[i] = a->second.to(at::kFloat).clone();
      adam.v[i] = b->second.to(at::kFloat).clone();
    }
    step = state.at("step").get<int64_t>();
    adam.t = state.at("adam_step").get<int64_t>();
    rng.set_state(std::stoull(state.at("rng").get<std::string>()));
    spdlog::info("train-codec: resumed from {} (step {})", dir, step);
    return true;
  }

  void append_metrics(const nlohmann::json& j) {
    std::ofstream f(cfg.out_dir + "/metrics.jsonl", std::ios::app);
    f << j.dump() << "\n";
  }
};

nlohmann::json eval_json(const CodecEvalResult& r) {
  return {{"split", r.split}, {"clips", r.clips}, {"codebooks", r.codebooks}, {"seconds", r.seconds}, {"si_snr_db", r.si_snr_db},
          {"mel_distance", r.mel_distance}, {"step", r.step}};
}

}  // namespace

CodecEvalResult run_train_codec(const CodecRunOptions& o) {
  CodecTrainConfig cfg = load_codec_train_config(o.config_path, o.overrides);
  if (o.steps > 0) cfg.steps = o.steps;
  if (cfg.threads > 0) set_threads(static_cast<int>(cfg.threads));
  std::error_code ec;
  fs::create_directories(cfg.out_dir, ec);
  if (ec) throw Error(describe("cannot create output directory", cfg.out_dir, ec.message()));
  Trainer tr(cfg, o.config_path);
  const bool resumed = !o.fresh && tr.load_latest();
  if (!resumed && !cfg.init.empty() && !o.eval_only) tr.init_from_trained();
  const std::string export_dir = cfg.out_dir + "/codec";

  if (o.eval_only) {
    nn::Encodec codec = tr.codec;
    int64_t at_step = tr.step;
    if (!o.codec.empty()) {
      codec = model::load_codec_from(o.codec);
      at_step = 0;
    } else if (!resumed) {
      if (!fs::exists(export_dir + "/model.safetensors"))
        throw Error(describe("nothing to evaluate", cfg.out_dir, "no checkpoint and no exported codec/ (train first)"));
      codec = nn::load_encodec(export_dir);
      at_step = 0;
    }
    CodecEvalResult r =
        evaluate_codec(codec, cfg.data.manifest, cfg.data.eval_split, cfg.data.max_eval_clips, cfg.loss, o.codebooks,
                       o.write_dir);
    r.step = at_step;
    return r;
  }

  tr.load_data();
  if (cfg.decoder_only) tr.encode_clips();
  const int64_t warmup = cfg.quantizer.warmup_steps;
  const auto scales = mel_scales(static_cast<int>(cfg.loss.mel_min_log2), static_cast<int>(cfg.loss.mel_max_log2));
  const int64_t sr = cfg.codec.sampling_rate;
  double acc_loss = 0, acc_l1 = 0, acc_mel = 0, acc_commit = 0, acc_snr = 0;
  int64_t acc_n = 0;
  nlohmann::json last = nlohmann::json::object();
  auto t0 = std::chrono::steady_clock::now();
  int64_t steps_this_run = 0;
  if (resumed && tr.step >= cfg.steps) spdlog::info("train-codec: already at step {} >= {}", tr.step, cfg.steps);
  while (tr.step < cfg.steps) {
    at::Tensor x, qz, commit = at::zeros({});
    if (cfg.decoder_only) {
      at::Tensor codes;
      std::tie(codes, x) = tr.code_batch();
      at::NoGradGuard ng;
      qz = tr.codec->quantizer->decode(codes.slice(1, 0, tr.draw_codebooks()));
    } else {
      if (tr.step >= warmup && !tr.rvq->inited()) tr.init_codebooks();
      x = tr.batch();
      const at::Tensor z = tr.codec->encoder->forward(x);
      qz = tr.step < warmup ? z : tr.rvq->forward(z, &commit, tr.rng, /*train=*/true, tr.draw_codebooks());
    }
    const at::Tensor y = tr.codec->decoder->forward(qz).slice(2, 0, x.size(2));
    const at::Tensor l1 = (y - x).abs().mean();
    const at::Tensor mel = multi_scale_mel_loss(y, x, scales, sr);
    at::Tensor loss = cfg.loss.l1 * l1 + cfg.loss.mel * mel + cfg.loss.commitment * commit;
    if (cfg.loss.si_snr > 0)
      loss = loss - cfg.loss.si_snr * si_snr(y.view({x.size(0), -1}), x.view({x.size(0), -1})).mean().to(at::kFloat);
    tr.adam.zero_grad();
    loss.backward();
    tr.adam.step(cfg.lr, cfg.beta1, cfg.beta2);
    ++tr.step;
    ++steps_this_run;
    const double lv = loss.item<double>();
    if (!std::isfinite(lv)) throw Error(describe("codec training diverged", cfg.out_dir, "loss is " + std::to_string(lv) + " at step " + std::to_string(tr.step)));
    acc_loss += lv, acc_l1 += l1.item<double>(), acc_mel += mel.item<double>(), acc_commit += commit.item<double>();
    acc_snr += si_snr(y.detach().view({x.size(0), -1}), x.view({x.size(0), -1})).mean().item<double>();
    ++acc_n;
    if (tr.step % cfg.log_every == 0 || tr.step == cfg.steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      // decoder_only: the codebooks are frozen and not searched, so there is no usage to report.
      const auto usage = cfg.decoder_only ? std::vector<double>{} : tr.rvq->usage();
      last = {{"step", tr.step},
              {"loss", acc_loss / acc_n},
              {"l1", acc_l1 / acc_n},
              {"mel", acc_mel / acc_n},
              {"commit", acc_commit / acc_n},
              {"si_snr_db", acc_snr / acc_n},
              {"codebook_usage", usage},
              {"steps_per_s", steps_this_run / std::max(secs, 1e-9)}};
      tr.append_metrics(last);
      std::string used = usage.empty() ? "(frozen)" : "";
      for (double u : usage) used += (used.empty() ? "" : "/") + std::to_string(std::lround(u * cfg.codec.codebook_size));
      spdlog::info("train-codec: step {} loss {:.4f} (l1 {:.4f} mel {:.4f} commit {:.4f}) batch SI-SNR {:.2f} dB, codes used {}",
                   tr.step, acc_loss / acc_n, acc_l1 / acc_n, acc_mel / acc_n, acc_commit / acc_n, acc_snr / acc_n, used);
      acc_loss = acc_l1 = acc_mel = acc_commit = acc_snr = 0;
      acc_n = 0;
    }
    if (cfg.eval_every > 0 && tr.step % cfg.eval_every == 0) {
      CodecEvalResult r = evaluate_codec(tr.codec, cfg.data.manifest, cfg.data.eval_split, cfg.data.max_eval_clips, cfg.loss);
      r.step = tr.step;
      nlohmann::json ej = eval_json(r);
      ej["eval"] = true;
      tr.append_metrics(ej);
      spdlog::info("train-codec: step {} eval on {} {} clips: SI-SNR {:.2f} dB, mel distance {:.4f}", tr.step, r.clips,
                   r.split, r.si_snr_db, r.mel_distance);
    }
    if (tr.step % cfg.ckpt_every == 0 || tr.step == cfg.steps) tr.save_checkpoint(last);
    if (o.on_step) o.on_step(tr.step, cfg.steps);
  }
  export_codec(tr.codec, export_dir);
  CodecEvalResult r = evaluate_codec(tr.codec, cfg.data.manifest, cfg.data.eval_split, cfg.data.max_eval_clips, cfg.loss);
  r.step = tr.step;
  const std::string text = eval_json(r).dump(2) + "\n";
  atomic_write_bytes(cfg.out_dir + "/eval.json", text.data(), text.size());
  return r;
}

}  // namespace v2m::synth
