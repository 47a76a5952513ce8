// Codec training internals (LibTorch): config, EMA residual vector quantizer training
// state, and the trainer. Objectives as EnCodec (Défossez et al. 2022) without the
// adversarial / feature-matching terms: L1 in time + multi-scale log-mel loss + commitment
// loss; codebooks follow an exponential moving average of their assigned vectors (not the
// gradient), initialised by k-means on encoder outputs, with dead-code replacement.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/encodec.h"
#include "synth/codec_losses.h"
#include "synth/codec_train.h"
#include "synth/rng.h"
#include "v2m/config.h"

namespace v2m::synth {

struct CodecDataConfig {
  std::string manifest;            // a SynthV2M (or any) manifest.jsonl
  std::string train_split = "train";
  std::string eval_split = "test";
  int64_t max_eval_clips = 0;      // 0: all clips of the eval split
  void visit(ConfigVisitor& v) {
    v.field("manifest", manifest);
    v.field("train_split", train_split, {"train", "val", "test"});
    v.field("eval_split", eval_split, {"train", "val", "test"});
    v.field("max_eval_clips", max_eval_clips, {0, 1e9});
  }
};

struct CodecLossConfig {
  double l1 = 1.0;          // time-domain L1 weight
  double mel = 1.0;         // multi-scale log-mel weight
  double commitment = 1.0;  // commitment weight (EnCodec: 1)
  // Weight of -SI-SNR (dB, mean over the batch). 0 in EnCodec; SI-SNR is scale-invariant, so
  // quiet passages count as much as loud ones, where L1 all but ignores them.
  double si_snr = 0.0;
  int64_t mel_min_log2 = 6; // window sizes 2^min .. 2^max
  int64_t mel_max_log2 = 11;
  void visit(ConfigVisitor& v) {
    v.field("l1", l1, {0, 1e6});
    v.field("mel", mel, {0, 1e6});
    v.field("commitment", commitment, {0, 1e6});
    v.field("si_snr", si_snr, {0, 1e6});
    v.field("mel_min_log2", mel_min_log2, {4, 14});
    v.field("mel_max_log2", mel_max_log2, {4, 14});
  }
};

struct QuantizerTrainConfig {
  double ema_decay = 0.99;
  double epsilon = 1e-5;              // Laplace smoothing of cluster sizes
  double dead_code_threshold = 2.0;   // EMA cluster size below which a code is replaced
  int64_t kmeans_iters = 50;
  int64_t kmeans_batches = 8;         // batches of encoder outputs pooled for k-means init
  // Steps trained as a plain autoencoder (no quantizer) before the k-means init. 0 is
  // EnCodec's recipe; a short warm-up lets a freshly initialised encoder, whose outputs are
  // nearly constant (the last conv's bias dominates), spread its latents first, so k-means
  // finds real clusters instead of collapsing onto a handful of codes.
  int64_t warmup_steps = 0;
  void visit(ConfigVisitor& v) {
    v.field("ema_decay", ema_decay, {0, 1});
    v.field("epsilon", epsilon, {0, 1});
    v.field("dead_code_threshold", dead_code_threshold, {0, 1e6});
    v.field("kmeans_iters", kmeans_iters, {0, 10000});
    v.field("kmeans_batches", kmeans_batches, {1, 10000});
    v.field("warmup_steps", warmup_steps, {0, 1e9});
  }
};

struct CodecTrainConfig {
  CodecDataConfig data;
  nn::EncodecConfig codec;
  CodecLossConfig loss;
  QuantizerTrainConfig quantizer;
  std::string out_dir;
  // A trained codec (codec directory or model directory) to start from instead of a random
  // init; its architecture must equal `codec`. Used only when out_dir has no checkpoint.
  std::string init;
  // Train the decoder alone: encoder and codebooks stay exactly as `init` has them, so codes
  // of a token model trained on them keep their meaning. The training clips are encoded once.
  bool decoder_only = false;
  // Codebooks the decoder gets per step, drawn uniformly from this list (EnCodec's bandwidth
  // sampling); empty: all of them.
  std::vector<int64_t> train_codebooks;
  int64_t steps = 2000;
  int64_t batch = 8;
  double segment_s = 1.0;
  double lr = 3e-4;
  double beta1 = 0.5;  // EnCodec's Adam betas
  double beta2 = 0.9;
  int64_t seed = 0;
  int64_t threads = 1;
  int64_t log_every = 25;
  int64_t ckpt_every = 250;
  int64_t eval_every = 0;  // 0: evaluate at the end only
  int64_t keep_checkpoints = 2;
  void visit(ConfigVisitor& v) {
    v.section("data", data);
    v.section("codec", codec);
    v.section("loss", loss);
    v.section("quantizer", quantizer);
    v.field("out_dir", out_dir);
    v.field("init", init);
    v.field("decoder_only", decoder_only);
    v.field("train_codebooks", train_codebooks, {1, 1024});
    v.field("steps", steps, {0, 1e9});
    v.field("batch", batch, {1, 4096});
    v.field("segment_s", segment_s, {0.01, 60});
    v.field("lr", lr, {0, 1});
    v.field("beta1", beta1, {0, 1});
    v.field("beta2", beta2, {0, 1});
    v.field("seed", seed, {0, 9.0e15});
    v.field("threads", threads, {0, 1024});
    v.field("log_every", log_every, {1, 1e9});
    v.field("ckpt_every", ckpt_every, {1, 1e9});
    v.field("eval_every", eval_every, {0, 1e9});
    v.field("keep_checkpoints", keep_checkpoints, {1, 1000});
  }
  void validate(const std::string& source) const;
};

CodecTrainConfig load_codec_train_config(const std::string& path, const std::vector<std::string>& overrides = {});

// EMA state of one codebook (audiocraft's EuclideanCodebook buffers).
struct CodebookState {
  at::Tensor cluster_size;  // [codebook_size]
  at::Tensor embed_avg;     // [codebook_size, dim]
  bool inited = false;
};

// Residual VQ in training mode over an nn::Encodec's quantizer.
class RvqTrainer {
 public:
  RvqTrainer(nn::Encodec codec, const QuantizerTrainConfig& cfg);
  // z: [B, D, T] -> quantized [B, D, T] with straight-through gradient to z, through the
  // first nq codebooks (<= 0: all); *commit gets the sum over them of mse(q.detach(),
  // residual). EMA updates of those codebooks when `train`.
  at::Tensor forward(const at::Tensor& z, at::Tensor* commit, Rng& rng, bool train, int64_t nq = 0);
  // Codebooks taken from a trained codec: marked initialised, EMA state restarted at the
  // codewords with a usage of one assignment per batch each.
  void adopt_codebooks();
  // k-means initialisation of every codebook from pooled encoder outputs z [N, D] (flat).
  void kmeans_init(const at::Tensor& z_flat, Rng& rng);
  bool inited() const;
  // Fraction of codes used in the last forward, per layer.
  std::vector<double> usage() const { return usage_; }
  std::vector<CodebookState>& state() { return state_; }

 private:
  at::Tensor& embed(size_t k);
  void ema_update(size_t k, const at::Tensor& x, const at::Tensor& ind, Rng& rng);
  nn::Encodec codec_;
  QuantizerTrainConfig cfg_;
  std::vector<CodebookState> state_;
  std::vector<double> usage_;
};

// Random indices in [0, n) (with replacement when count > n... always with replacement).
at::Tensor random_indices(int64_t count, int64_t n, Rng& rng);

// Exports `codec` as a loadable nn::load_encodec directory: config.json (transformers'
// EncodecConfig keys) + model.safetensors (the module's own names) + codec.yaml (the
// nn::EncodecConfig section, for a V2M model config's `codec:`). Atomic per file.
void export_codec(nn::Encodec& codec, const std::string& dir);

// Encodes + decodes every clip of the manifest's split (max_clips > 0: the first ones)
// with `codec` in eval mode and averages SI-SNR and mel distance over clips. codebooks > 0
// decodes only that many of the residual codebooks (the bandwidth a decoder modelling
// fewer codebooks gets); 0: all. write_dir non-empty: each reconstruction is also written
// there as <id>.wav (16-bit, the codec's rate), which `v2m eval --generated` scores.
CodecEvalResult evaluate_codec(nn::Encodec& codec, const std::string& manifest, const std::string& split,
                               int64_t max_clips, const CodecLossConfig& loss, int64_t codebooks = 0,
                               const std::string& write_dir = {});

}  // namespace v2m::synth
