// EnCodec (transformers' EncodecModel): SEANet encoder/decoder + residual vector quantizer,
// with the same module tree and parameter names, so a hub checkpoint loads by name:
//
//   encoder.layers.{i}.conv.{weight,bias}               EncodecConv1d (i: conv positions)
//   encoder.layers.{i}.norm.{weight,bias}               only with norm_type time_group_norm
//   encoder.layers.{i}.block.{1,3}.conv.{weight,bias}   EncodecResnetBlock (ELUs at 0 and 2)
//   encoder.layers.{i}.shortcut.conv.{weight,bias}      only with use_conv_shortcut
//   encoder.layers.{i}.lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{n}
//   decoder.layers.{i}.conv.{weight,bias}               EncodecConv1d / EncodecConvTranspose1d
//   quantizer.layers.{k}.codebook.embed                 [codebook_size, codebook_dim]
//
// Weight norm is folded at load time (fold_weight_norm): checkpoints store `conv.weight_g` /
// `conv.weight_v` (torch.nn.utils.weight_norm) or `conv.parametrizations.weight.original0/1`
// (parametrizations.weight_norm); both become `conv.weight` = g * v / ||v||. The codebook
// buffers `inited`, `cluster_size` and `embed_avg` (training state) are accepted and ignored.
// Layer indices count the parameter-free ELUs too, exactly as transformers' ModuleLists.
#pragma once

#include <ATen/ATen.h>
#include <nlohmann/json_fwd.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/rnn.h>

#include <cstdint>
#include <string>
#include <vector>

#include "nn/state_dict.h"
#include "v2m/config.h"

namespace v2m::nn {

// Field names are transformers' EncodecConfig; defaults are facebook/encodec_32khz (the codec
// of MusicGen: 32 kHz mono, hop 640 -> 50 Hz, 4 codebooks x 2048, non-causal, no normalize).
struct EncodecConfig {
  int64_t sampling_rate = 32000;
  int64_t audio_channels = 1;
  int64_t num_filters = 64;
  int64_t num_residual_layers = 1;
  std::vector<int64_t> upsampling_ratios = {8, 5, 4, 4};
  std::string norm_type = "weight_norm";  // weight_norm | time_group_norm
  int64_t kernel_size = 7;
  int64_t last_kernel_size = 7;
  int64_t residual_kernel_size = 3;
  int64_t dilation_growth_rate = 2;
  bool use_causal_conv = false;
  std::string pad_mode = "reflect";  // reflect | constant | replicate
  int64_t compress = 2;
  int64_t num_lstm_layers = 2;
  double trim_right_ratio = 1.0;
  int64_t codebook_size = 2048;
  int64_t codebook_dim = 128;  // must equal hidden_size (transformers' default)
  int64_t hidden_size = 128;
  std::vector<double> target_bandwidths = {2.2};
  bool use_conv_shortcut = false;
  bool normalize = false;
  double chunk_length_s = 0.0;  // 0: null (one chunk); other values are not supported
  double overlap = 0.0;         // 0: null
  // Codebooks (quantizer layers) of the model; transformers derives this from
  // target_bandwidths.back() (num_quantizers). v2m makes it explicit: it sizes the quantizer
  // and is the number of codebooks encode() produces by default.
  int64_t num_codebooks = 4;

  int64_t hop_length() const;  // prod(upsampling_ratios): samples per code frame
  int64_t frame_rate() const;  // transformers: ceil(sampling_rate / hop)
  // transformers' get_num_quantizers_for_bandwidth: max(1, floor(bw * 1000 / (log2(size) * fr))),
  // capped at num_codebooks.
  int64_t codebooks_for_bandwidth(double bandwidth_kbps) const;
  void visit(ConfigVisitor& v);
  // Throws v2m::Error naming `source` for inconsistent values.
  void validate(const std::string& source) const;
};

// From a transformers EncodecConfig dict (config.json of an EncodecModel, or the
// "audio_encoder" section of a MusicgenConfig). Absent keys keep transformers' defaults;
// num_codebooks = transformers' num_quantizers = int(1000 * bw[-1] // (frame_rate * 10)).
EncodecConfig encodec_config_from_hf(const nlohmann::json& cfg, const std::string& source = "config.json");
// The inverse: transformers' EncodecConfig JSON (config.json) for `c`.
nlohmann::json encodec_config_to_hf(const EncodecConfig& c);

// Replaces weight-norm pairs by the folded weight: `X.weight_g` + `X.weight_v` and
// `X.parametrizations.weight.original0` (g) + `.original1` (v) -> `X.weight` = g * v / ||v||,
// the norm over every dim but 0 (float32). Other tensors pass through. A g without its v (or
// the reverse) throws v2m::Error naming the tensor.
TensorMap fold_weight_norm(const TensorMap& tensors, const std::string& source = "weights");

// EncodecConv1d: HF's padding rules (extra right padding so the last window is complete,
// non-causal split padding_total // 2 right / rest left, reflect padding of short inputs).
struct EncodecConv1dImpl : torch::nn::Module {
  EncodecConv1dImpl(const EncodecConfig& cfg, int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                    int64_t dilation = 1);
  // x: [B, Cin, L] -> [B, Cout, ceil(L / stride)]
  at::Tensor forward(const at::Tensor& x);
  bool causal, group_norm;
  std::string pad_mode;
  int64_t stride, kernel;  // kernel: effective (dilated) size
  torch::nn::Conv1d conv{nullptr};
  torch::nn::GroupNorm norm{nullptr};
};
TORCH_MODULE(EncodecConv1d);

// ConvTranspose1d (no padding, dilation 1, one group) as one GEMM plus ceil(K / stride) shifted
// adds: x [B, Cin, T], weight [Cin, Cout, K], bias [Cout] or undefined -> [B, Cout, (T-1)*stride + K].
// Differentiable (plain aten ops). What EncodecConvTranspose1d runs on CPU.
at::Tensor conv_transpose1d_gemm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t stride);

struct EncodecConvTranspose1dImpl : torch::nn::Module {
  EncodecConvTranspose1dImpl(const EncodecConfig& cfg, int64_t in, int64_t out, int64_t kernel, int64_t stride);
  // x: [B, Cin, L] -> [B, Cout, L * stride]  (kernel - stride trimmed as transformers)
  at::Tensor forward(const at::Tensor& x);
  bool causal, group_norm;
  double trim_right_ratio;
  int64_t stride, kernel;
  torch::nn::ConvTranspose1d conv{nullptr};
  torch::nn::GroupNorm norm{nullptr};
};
TORCH_MODULE(EncodecConvTranspose1d);

struct EncodecLSTMImpl : torch::nn::Module {
  EncodecLSTMImpl(const EncodecConfig& cfg, int64_t dim);
  // x: [B, C, T] -> [B, C, T]  (lstm(x) + x over time)
  at::Tensor forward(const at::Tensor& x);
  torch::nn::LSTM lstm{nullptr};
};
TORCH_MODULE(EncodecLSTM);

struct EncodecResnetBlockImpl : torch::nn::Module {
  EncodecResnetBlockImpl(const EncodecConfig& cfg, int64_t dim, int64_t dilation);
  // x: [B, C, T] -> [B, C, T]
  at::Tensor forward(const at::Tensor& x);
  torch::nn::ModuleList block;       // ELU, conv(k, dilation), ELU, conv(1)
  EncodecConv1d shortcut{nullptr};   // use_conv_shortcut only (else identity)
};
TORCH_MODULE(EncodecResnetBlock);

// SEANet encoder (downsampling) or decoder (upsampling): one ModuleList named `layers`.
struct EncodecSEANetImpl : torch::nn::Module {
  EncodecSEANetImpl(const EncodecConfig& cfg, bool decoder);
  // encoder: audio [B, C, N] -> [B, hidden, ceil(N / hop)]; decoder: [B, hidden, T] -> [B, C, T * hop]
  at::Tensor forward(const at::Tensor& x);
  torch::nn::ModuleList layers;
};
TORCH_MODULE(EncodecSEANet);

struct EncodecCodebookImpl : torch::nn::Module {
  explicit EncodecCodebookImpl(const EncodecConfig& cfg);
  at::Tensor embed;  // buffer [codebook_size, codebook_dim]
};
TORCH_MODULE(EncodecCodebook);

struct EncodecVectorQuantizationImpl : torch::nn::Module {
  explicit EncodecVectorQuantizationImpl(const EncodecConfig& cfg);
  EncodecCodebook codebook{nullptr};
};
TORCH_MODULE(EncodecVectorQuantization);

struct EncodecResidualVectorQuantizerImpl : torch::nn::Module {
  explicit EncodecResidualVectorQuantizerImpl(const EncodecConfig& cfg);
  // x: [B, D, T] -> codes [B, K, T] int64 (nearest codeword of the running residual, K <= layers)
  at::Tensor encode(const at::Tensor& x, int64_t num_codebooks);
  // codes: [B, K, T] -> [B, D, T] (sum of the K codewords); throws v2m::Error for ids out of range
  at::Tensor decode(const at::Tensor& codes);
  int64_t codebook_size;
  torch::nn::ModuleList layers;
};
TORCH_MODULE(EncodecResidualVectorQuantizer);

struct EncodecImpl : torch::nn::Module {
  explicit EncodecImpl(const EncodecConfig& cfg);

  // audio: [B, C, N] -> codes [B, K, ceil(N / hop)] int64. bandwidth_kbps <= 0: all
  // num_codebooks (transformers' default is target_bandwidths[0]: the same 4 for 32 kHz).
  // With cfg.normalize, the per-item scale [B, 1, 1] is written to *scale (decode multiplies by it).
  at::Tensor encode(const at::Tensor& audio, double bandwidth_kbps = 0.0, at::Tensor* scale = nullptr);
  // codes: [B, K, T] -> audio [B, C, T * hop]  (one pass; memory grows with T)
  at::Tensor decode(const at::Tensor& codes, const at::Tensor& scale = {});
  // codes: [B, K, T] -> audio [B, C, T * hop] with memory bounded by chunk_frames: chunks of
  // chunk_frames frames are decoded with overlap_frames of extra codes on each side as
  // context (the decoder's convolutions and LSTM see real neighbours), the context is cut
  // and neighbouring chunks are linearly crossfaded over overlap_frames frames centred on
  // the boundary. Equals decode() for T <= chunk_frames + overlap_frames. 500/50 frames
  // = 10 s chunks, 1 s overlap at 50 Hz.
  at::Tensor decode_chunked(const at::Tensor& codes, int64_t chunk_frames = 500, int64_t overlap_frames = 50);

  EncodecConfig cfg;
  EncodecSEANet encoder{nullptr}, decoder{nullptr};
  EncodecResidualVectorQuantizer quantizer{nullptr};
};
TORCH_MODULE(Encodec);
using EncodecModel = Encodec;

// Loads `dir`/config.json + `dir`/model.safetensors of an EncodecModel (weight norm folded,
// codebook training buffers ignored). Strict: a missing tensor or a shape mismatch throws
// v2m::Error naming the tensor and both shapes; any other tensor the config does not account
// for is an error too. The module is returned in eval mode.
Encodec load_encodec(const std::string& dir);

}  // namespace v2m::nn
