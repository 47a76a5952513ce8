#include "nn/hf_json.h"
#include "nn/encodec.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/activation.h>

#include <cmath>
#include <fstream>
#include <set>

#include "nn/linear_kernel.h"
#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m::nn {

// ---------------------------------------------------------------------------------------------
// config

int64_t EncodecConfig::hop_length() const {
  int64_t h = 1;
  for (auto r : upsampling_ratios) h *= r;
  return h;
}

int64_t EncodecConfig::frame_rate() const {
  return static_cast<int64_t>(std::ceil(static_cast<double>(sampling_rate) / static_cast<double>(hop_length())));
}

int64_t EncodecConfig::codebooks_for_bandwidth(double bw) const {
  const double per_q = std::log2(static_cast<double>(codebook_size)) * static_cast<double>(frame_rate());
  const int64_t n = std::max<int64_t>(1, static_cast<int64_t>(std::floor(bw * 1000.0 / per_q)));
  return std::min(n, num_codebooks);
}

void EncodecConfig::visit(ConfigVisitor& v) {
  v.field("sampling_rate", sampling_rate, {1000, 384000});
  v.field("audio_channels", audio_channels, {1, 2});
  v.field("num_filters", num_filters, {1, 4096});
  v.field("num_residual_layers", num_residual_layers, {0, 16});
  v.field("upsampling_ratios", upsampling_ratios, {1, 64});
  v.field("norm_type", norm_type, {"weight_norm", "time_group_norm"});
  v.field("kernel_size", kernel_size, {1, 63});
  v.field("last_kernel_size", last_kernel_size, {1, 63});
  v.field("residual_kernel_size", residual_kernel_size, {1, 63});
  v.field("dilation_growth_rate", dilation_growth_rate, {1, 16});
  v.field("use_causal_conv", use_causal_conv);
  v.field("pad_mode", pad_mode, {"reflect", "constant", "replicate"});
  v.field("compress", compress, {1, 64});
  v.field("num_lstm_layers", num_lstm_layers, {1, 8});
  v.field("trim_right_ratio", trim_right_ratio, {0.0, 1.0});
  v.field("codebook_size", codebook_size, {2, 1 << 20});
  v.field("codebook_dim", codebook_dim, {1, 1 << 16});
  v.field("hidden_size", hidden_size, {1, 1 << 16});
  v.field("target_bandwidths", target_bandwidths, {0.0, 1000.0});
  v.field("use_conv_shortcut", use_conv_shortcut);
  v.field("normalize", normalize);
  v.field("chunk_length_s", chunk_length_s, {0.0, 3600.0});
  v.field("overlap", overlap, {0.0, 1.0});
  v.field("num_codebooks", num_codebooks, {1, 256});
}

void EncodecConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& why) { throw Error(describe("bad encodec config", source, why)); };
  if (upsampling_ratios.empty()) fail("upsampling_ratios is empty");
  for (auto r : upsampling_ratios)
    if (r < 1) fail("upsampling_ratios must be positive");
  if (norm_type != "weight_norm" && norm_type != "time_group_norm")
    fail("norm_type must be weight_norm or time_group_norm, got '" + norm_type + "'");
  if (pad_mode != "reflect" && pad_mode != "constant" && pad_mode != "replicate")
    fail("unsupported pad_mode '" + pad_mode + "'");
  if (audio_channels != 1 && audio_channels != 2) fail("audio_channels must be 1 or 2");
  if (num_lstm_layers < 1) fail("num_lstm_layers must be at least 1");
  if (codebook_dim != hidden_size)
    fail("codebook_dim (" + std::to_string(codebook_dim) + ") must equal hidden_size (" + std::to_string(hidden_size) +
         "): the quantizer compares encoder outputs with codewords");
  if (codebook_size < 2 || (codebook_size & (codebook_size - 1)))
    fail("codebook_size must be a power of 2, got " + std::to_string(codebook_size));
  if (!use_causal_conv && trim_right_ratio != 1.0)
    fail("trim_right_ratio != 1 only makes sense for causal convolutions");
  if (use_causal_conv && norm_type == "time_group_norm") fail("time_group_norm does not support causal convolutions");
  if (chunk_length_s > 0.0) fail("chunk_length_s is not supported (v2m codes one chunk; see decode_chunked)");
  const int64_t channels = num_filters << upsampling_ratios.size();
  if (channels / compress < 1 || num_filters / compress < 1) fail("compress leaves a residual branch with no channels");
}

namespace {

template <class T>
void read(const nlohmann::json& j, const char* key, T& out, const std::string& source) {
  read_hf(j, key, out, "bad encodec config", source);
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

nlohmann::json encodec_config_to_hf(const EncodecConfig& c) {
  return {{"model_type", "encodec"},
          {"architectures", {"EncodecModel"}},
          {"sampling_rate", c.sampling_rate},
          {"audio_channels", c.audio_channels},
          {"num_filters", c.num_filters},
          {"num_residual_layers", c.num_residual_layers},
          {"upsampling_ratios", c.upsampling_ratios},
          {"norm_type", c.norm_type},
          {"kernel_size", c.kernel_size},
          {"last_kernel_size", c.last_kernel_size},
          {"residual_kernel_size", c.residual_kernel_size},
          {"dilation_growth_rate", c.dilation_growth_rate},
          {"use_causal_conv", c.use_causal_conv},
          {"pad_mode", c.pad_mode},
          {"compress", c.compress},
          {"num_lstm_layers", c.num_lstm_layers},
          {"trim_right_ratio", c.trim_right_ratio},
          {"codebook_size", c.codebook_size},
          {"codebook_dim", c.codebook_dim},
          {"hidden_size", c.hidden_size},
          {"target_bandwidths", c.target_bandwidths},
          {"use_conv_shortcut", c.use_conv_shortcut},
          {"normalize", c.normalize},
          {"chunk_length_s", nullptr},
          {"overlap", nullptr}};
}

EncodecConfig encodec_config_from_hf(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw Error(describe("bad encodec config", source, "not a JSON object"));
  // Start from transformers' EncodecConfig defaults (24 kHz family) for absent keys; hub
  // configs carry every key, so this only matters for hand-written ones.
  EncodecConfig c;
  c.sampling_rate = 24000;
  c.num_filters = 32;
  c.upsampling_ratios = {8, 5, 4, 2};
  c.use_causal_conv = true;
  c.codebook_size = 1024;
  c.target_bandwidths = {1.5, 3.0, 6.0, 12.0, 24.0};
  c.use_conv_shortcut = true;
  c.codebook_dim = -1;
  read(j, "sampling_rate", c.sampling_rate, source);
  read(j, "audio_channels", c.audio_channels, source);
  read(j, "num_filters", c.num_filters, source);
  read(j, "num_residual_layers", c.num_residual_layers, source);
  read(j, "upsampling_ratios", c.upsampling_ratios, source);
  read(j, "norm_type", c.norm_type, source);
  read(j, "kernel_size", c.kernel_size, source);
  read(j, "last_kernel_size", c.last_kernel_size, source);
  read(j, "residual_kernel_size", c.residual_kernel_size, source);
  read(j, "dilation_growth_rate", c.dilation_growth_rate, source);
  read(j, "use_causal_conv", c.use_causal_conv, source);
  read(j, "pad_mode", c.pad_mode, source);
  read(j, "compress", c.compress, source);
  read(j, "num_lstm_layers", c.num_lstm_layers, source);
  read(j, "trim_right_ratio", c.trim_right_ratio, source);
  read(j, "codebook_size", c.codebook_size, source);
  read(j, "hidden_size", c.hidden_size, source);
  read(j, "codebook_dim", c.codebook_dim, source);
  if (c.codebook_dim < 0) c.codebook_dim = c.hidden_size;
  read(j, "target_bandwidths", c.target_bandwidths, source);
  read(j, "use_conv_shortcut", c.use_conv_shortcut, source);
  read(j, "normalize", c.normalize, source);
  read(j, "chunk_length_s", c.chunk_length_s, source);
  read(j, "overlap", c.overlap, source);
  if (c.target_bandwidths.empty()) throw Error(describe("bad encodec config", source, "target_bandwidths is empty"));
  for (auto r : c.upsampling_ratios)
    if (r < 1) throw Error(describe("bad encodec config", source, "upsampling_ratios must be positive"));
  // transformers' EncodecConfig.num_quantizers (written for 10-bit codebooks; 4 for 32 kHz).
  c.num_codebooks = static_cast<int64_t>(
      std::floor(1000.0 * c.target_bandwidths.back() / (static_cast<double>(c.frame_rate()) * 10.0)));
  if (c.num_codebooks < 1) throw Error(describe("bad encodec config", source, "target_bandwidths give no codebooks"));
  c.validate(source);
  return c;
}

TensorMap fold_weight_norm(const TensorMap& tensors, const std::string& source) {
  static const std::pair<std::string, std::string> kinds[] = {
      {".weight_g", ".weight_v"}, {".parametrizations.weight.original0", ".parametrizations.weight.original1"}};
  TensorMap out;
  for (const auto& [k, t] : tensors) {
    bool handled = false;
    for (const auto& [gs, vs] : kinds) {
      if (ends_with(k, gs) || ends_with(k, vs)) {
        const bool is_g = ends_with(k, gs);
        const std::string base = k.substr(0, k.size() - (is_g ? gs : vs).size());
        const std::string partner = base + (is_g ? vs : gs);
        auto it = tensors.find(partner);
        if (it == tensors.end())
          throw Error(describe("incomplete weight norm", source, "tensor '" + k + "' has no '" + partner + "'"));
        if (is_g) {
          const at::Tensor g = t.to(at::kFloat), v = it->second.to(at::kFloat);
          std::vector<int64_t> dims;
          for (int64_t d = 1; d < v.dim(); ++d) dims.push_back(d);
          // torch's _weight_norm(v, g, dim=0): g * v / norm_except_dim(v, 2, 0)
          const at::Tensor n = dims.empty() ? v.abs() : v.norm(2, dims, /*keepdim=*/true);
          if (g.numel() != v.size(0))
            throw Error(describe("bad weight norm", source, "tensor '" + k + "' " + c10::str(g.sizes()) +
                                                                " does not match '" + partner + "' " +
                                                                c10::str(v.sizes())));
          std::vector<int64_t> gshape(v.dim(), 1);
          gshape[0] = v.size(0);
          out[base + ".weight"] = g.reshape(gshape) * v / n;
        }
        handled = true;
        break;
      }
    }
    if (!handled) out.emplace(k, t);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// convolutions

namespace {

// transformers' EncodecConv1d._pad1d: reflect padding of an input shorter than the padding
// first zero-extends it on the right, then trims that extension off again.
at::Tensor pad1d(const at::Tensor& x, int64_t left, int64_t right, const std::string& mode) {
  if (left == 0 && right == 0) return x;
  if (mode == "constant") return at::constant_pad_nd(x, {left, right}, 0.0);
  if (mode == "replicate") return at::replication_pad1d(x, {left, right});
  const int64_t length = x.size(-1), max_pad = std::max(left, right);
  if (length > max_pad) return at::reflection_pad1d(x, {left, right});
  const int64_t extra = max_pad - length + 1;
  at::Tensor padded = at::reflection_pad1d(at::constant_pad_nd(x, {0, extra}, 0.0), {left, right});
  return padded.slice(-1, 0, padded.size(-1) - extra);
}

}  // namespace

EncodecConv1dImpl::EncodecConv1dImpl(const EncodecConfig& cfg, int64_t in, int64_t out, int64_t k, int64_t s,
                                     int64_t dilation)
    : causal(cfg.use_causal_conv),
      group_norm(cfg.norm_type == "time_group_norm"),
      pad_mode(cfg.pad_mode),
      stride(s),
      kernel((k - 1) * dilation + 1) {
  conv = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(in, out, k).stride(s).dilation(dilation)));
  if (group_norm) norm = register_module("norm", torch::nn::GroupNorm(1, out));
}

at::Tensor EncodecConv1dImpl::forward(const at::Tensor& x) {
  // _get_extra_padding_for_conv1d: pad on the right so the last window is complete.
  const int64_t length = x.size(-1), padding_total = kernel - stride;
  const double n_frames = static_cast<double>(length - kernel + padding_total) / static_cast<double>(stride) + 1.0;
  const int64_t ideal = (static_cast<int64_t>(std::ceil(n_frames)) - 1) * stride + kernel - padding_total;
  const int64_t extra = ideal - length;
  at::Tensor h;
  if (causal) {
    h = pad1d(x, padding_total, extra, pad_mode);
  } else {
    const int64_t right = padding_total / 2, left = padding_total - right;
    h = pad1d(x, left, right + extra, pad_mode);
  }
  h = conv(h);
  return group_norm ? norm(h) : h;
}

EncodecConvTranspose1dImpl::EncodecConvTranspose1dImpl(const EncodecConfig& cfg, int64_t in, int64_t out, int64_t k,
                                                       int64_t s)
    : causal(cfg.use_causal_conv),
      group_norm(cfg.norm_type == "time_group_norm"),
      trim_right_ratio(cfg.trim_right_ratio),
      stride(s),
      kernel(k) {
  conv = register_module("conv", torch::nn::ConvTranspose1d(torch::nn::ConvTranspose1dOptions(in, out, k).stride(s)));
  if (group_norm) norm = register_module("norm", torch::nn::GroupNorm(1, out));
}

at::Tensor conv_transpose1d_gemm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                 int64_t stride) {
  if (x.dim() != 3 || weight.dim() != 3 || x.size(1) != weight.size(0) || stride < 1)
    throw Error(describe("conv_transpose1d", "arguments",
                         "need x [B, Cin, T], weight [Cin, Cout, K] and stride >= 1, got " + c10::str(x.sizes()) +
                             ", " + c10::str(weight.sizes()) + ", stride " + std::to_string(stride)));
  const int64_t B = x.size(0), Cin = x.size(1), T = x.size(2), Cout = weight.size(1), K = weight.size(2);
  const int64_t n = (K + stride - 1) / stride;  // input frames that reach one output frame
  const at::Tensor w = n * stride == K ? weight : at::constant_pad_nd(weight, {0, n * stride - K}, 0.0);
  // z[b, t, co, j, m] = sum_ci x[b, ci, t] w[ci, co, j * stride + m]: one GEMM, its rows the
  // input frames, so the stride-sized runs the shifted sums below read are contiguous.
  const at::Tensor z = at::matmul(x.transpose(1, 2), w.reshape({Cin, Cout * n * stride}))
                           .view({B, T, Cout, n, stride})
                           .permute({0, 2, 3, 1, 4});  // [B, Cout, n, T, stride]
  // Output frame u (samples u * stride + m) gathers z[.., j, u - j, m] for j < n.
  at::Tensor y = at::empty({B, Cout, T + n - 1, stride}, x.options());
  const at::Tensor b = bias.defined() ? bias.view({1, Cout, 1, 1}) : at::zeros({1, Cout, 1, 1}, x.options());
  at::Tensor head = y.narrow(2, 0, T);
  if (at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || b.requires_grad()))
    head.copy_(z.select(2, 0)).add_(b);  // out= variants have no autograd
  else
    at::add_out(head, z.select(2, 0), b);
  if (n > 1) y.narrow(2, T, n - 1).copy_(b.expand({B, Cout, n - 1, stride}));
  for (int64_t j = 1; j < n; ++j) y.narrow(2, j, T).add_(z.select(2, j));
  return y.view({B, Cout, (T + n - 1) * stride}).narrow(2, 0, (T - 1) * stride + K);
}

at::Tensor EncodecConvTranspose1dImpl::forward(const at::Tensor& x) {
  // LibTorch 1.13 sends a bf16 CPU conv_transpose1d to the forward oneDNN convolution, which
  // rejects its weight; the GEMM form runs it (and through oneDNN's bf16 GEMM). For fp32,
  // LibTorch's own (GEMM + col2im) was faster: 300 against 376 ms over EnCodec 32 kHz's four
  // upsampling layers for 10 s. (`conv` has no padding, dilation 1 and one group.)
  at::Tensor h = x.is_cpu() && x.scalar_type() == at::kBFloat16
                     ? conv_transpose1d_gemm(x, conv->weight, conv->bias, stride)
                     : conv(x);
  if (group_norm) h = norm(h);
  // Only the fixed padding is trimmed (transformers' EncodecConvTranspose1d.forward).
  const int64_t padding_total = kernel - stride;
  const int64_t right = causal ? static_cast<int64_t>(std::ceil(static_cast<double>(padding_total) * trim_right_ratio))
                               : padding_total / 2;
  const int64_t left = padding_total - right;
  return h.slice(-1, left, h.size(-1) - right);
}

EncodecLSTMImpl::EncodecLSTMImpl(const EncodecConfig& cfg, int64_t dim) {
  lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(dim, dim).num_layers(cfg.num_lstm_layers)));
}

namespace {

// Inference-only LSTM (torch's gate order i, f, g, o; zero initial state): the input
// projections of all steps in one GEMM per layer, then per step only h W_hh^T, through the
// streaming matvec kernel (`linear_small`) for the batch sizes of decoding. LibTorch 1.13's
// CPU LSTM spent ~4 s per 10 s of 32 kHz audio on the decoder's 2 x 1024 LSTM, most of the
// codec's decode time, at batch 1. x: [T, B, C] -> [T, B, H].
at::Tensor lstm_inference(torch::nn::LSTMImpl& lstm, const at::Tensor& x) {
  at::Tensor h_seq = x.contiguous();
  const int64_t T = x.size(0), B = x.size(1);
  for (int64_t layer = 0; layer < lstm.options.num_layers(); ++layer) {
    const std::string l = std::to_string(layer);
    const auto params = lstm.named_parameters();
    const at::Tensor w_ih = params["weight_ih_l" + l], w_hh = params["weight_hh_l" + l].contiguous();
    const at::Tensor bias = params["bias_ih_l" + l] + params["bias_hh_l" + l];
    const int64_t H = w_hh.size(1);
    const at::Tensor gx = at::linear(h_seq.view({T * B, -1}), w_ih, bias).view({T, B, 4 * H});
    at::Tensor out = at::empty({T, B, H}, x.options());
    at::Tensor h = at::zeros({B, H}, x.options()), c = at::zeros({B, H}, x.options());
    for (int64_t t = 0; t < T; ++t) {
      const at::Tensor g = gx[t] + linear_small(h, w_hh);  // [B, 4H]
      const auto gates = g.chunk(4, 1);
      c = at::sigmoid(gates[1]) * c + at::sigmoid(gates[0]) * at::tanh(gates[2]);
      h = at::sigmoid(gates[3]) * at::tanh(c);
      out[t].copy_(h);
    }
    h_seq = out;
  }
  return h_seq;
}

}  // namespace

at::Tensor EncodecLSTMImpl::forward(const at::Tensor& x) {
  at::Tensor t = x.permute({2, 0, 1});  // [T, B, C]
  const bool inference = !at::GradMode::is_enabled() || !lstm->parameters()[0].requires_grad();
  const bool fast = inference && !x.requires_grad() && x.device().is_cpu() && x.scalar_type() == at::kFloat &&
                    !lstm->options.bidirectional() && lstm->options.bias() && lstm->options.proj_size() == 0 &&
                    lstm->parameters()[0].scalar_type() == at::kFloat;
  at::Tensor y = (fast ? lstm_inference(*lstm, t) : std::get<0>(lstm->forward(t))) + t;
  return y.permute({1, 2, 0});
}

EncodecResnetBlockImpl::EncodecResnetBlockImpl(const EncodecConfig& cfg, int64_t dim, int64_t dilation) {
  const int64_t hidden = dim / cfg.compress;
  block = register_module("block", torch::nn::ModuleList());
  block->push_back(torch::nn::ELU());
  block->push_back(EncodecConv1d(cfg, dim, hidden, cfg.residual_kernel_size, 1, dilation));
  block->push_back(torch::nn::ELU());
  block->push_back(EncodecConv1d(cfg, hidden, dim, 1));
  if (cfg.use_conv_shortcut) shortcut = register_module("shortcut", EncodecConv1d(cfg, dim, dim, 1));
}

namespace {

// One entry of a transformers ModuleList: ELU, conv, transposed conv, LSTM or residual block.
at::Tensor run_layer(const std::shared_ptr<torch::nn::Module>& m, const at::Tensor& x) {
  if (auto* c = m->as<EncodecConv1d>()) return c->forward(x);
  if (auto* r = m->as<EncodecResnetBlock>()) return r->forward(x);
  if (auto* t = m->as<EncodecConvTranspose1d>()) return t->forward(x);
  if (auto* l = m->as<EncodecLSTM>()) return l->forward(x);
  if (m->as<torch::nn::ELU>()) return at::elu(x);
  throw Error("encodec: unexpected layer type " + m->name());
}

}  // namespace

at::Tensor EncodecResnetBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  for (const auto& m : *block) h = run_layer(m, h);
  return (shortcut.is_empty() ? x : shortcut->forward(x)) + h;
}

EncodecSEANetImpl::EncodecSEANetImpl(const EncodecConfig& cfg, bool decoder) {
  layers = register_module("layers", torch::nn::ModuleList());
  const int64_t F = cfg.num_filters, n_ratios = static_cast<int64_t>(cfg.upsampling_ratios.size());
  auto residuals = [&](int64_t dim) {
    int64_t dilation = 1;
    for (int64_t j = 0; j < cfg.num_residual_layers; ++j, dilation *= cfg.dilation_growth_rate)
      layers->push_back(EncodecResnetBlock(cfg, dim, dilation));
  };
  if (!decoder) {  // transformers' EncodecEncoder
    layers->push_back(EncodecConv1d(cfg, cfg.audio_channels, F, cfg.kernel_size));
    int64_t scale = 1;
    for (auto it = cfg.upsampling_ratios.rbegin(); it != cfg.upsampling_ratios.rend(); ++it) {
      residuals(scale * F);
      layers->push_back(torch::nn::ELU());
      layers->push_back(EncodecConv1d(cfg, scale * F, scale * F * 2, *it * 2, *it));
      scale *= 2;
    }
    layers->push_back(EncodecLSTM(cfg, scale * F));
    layers->push_back(torch::nn::ELU());
    layers->push_back(EncodecConv1d(cfg, scale * F, cfg.hidden_size, cfg.last_kernel_size));
  } else {  // transformers' EncodecDecoder
    int64_t scale = int64_t{1} << n_ratios;
    layers->push_back(EncodecConv1d(cfg, cfg.hidden_size, scale * F, cfg.kernel_size));
    layers->push_back(EncodecLSTM(cfg, scale * F));
    for (auto r : cfg.upsampling_ratios) {
      layers->push_back(torch::nn::ELU());
      layers->push_back(EncodecConvTranspose1d(cfg, scale * F, scale * F / 2, r * 2, r));
      residuals(scale * F / 2);
      scale /= 2;
    }
    layers->push_back(torch::nn::ELU());
    layers->push_back(EncodecConv1d(cfg, F, cfg.audio_channels, cfg.last_kernel_size));
  }
}

at::Tensor EncodecSEANetImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  for (const auto& m : *layers) h = run_layer(m, h);
  return h;
}

// ---------------------------------------------------------------------------------------------
// quantizer

EncodecCodebookImpl::EncodecCodebookImpl(const EncodecConfig& cfg) {
  // transformers stores zeros until loaded; random codewords make an untrained model usable.
  embed = register_buffer("embed", at::randn({cfg.codebook_size, cfg.codebook_dim}));
}

EncodecVectorQuantizationImpl::EncodecVectorQuantizationImpl(const EncodecConfig& cfg) {
  codebook = register_module("codebook", EncodecCodebook(cfg));
}

EncodecResidualVectorQuantizerImpl::EncodecResidualVectorQuantizerImpl(const EncodecConfig& cfg)
    : codebook_size(cfg.codebook_size) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t k = 0; k < cfg.num_codebooks; ++k) layers->push_back(EncodecVectorQuantization(cfg));
}

at::Tensor EncodecResidualVectorQuantizerImpl::encode(const at::Tensor& x, int64_t n) {
  const int64_t B = x.size(0), D = x.size(1), T = x.size(2);
  n = std::min<int64_t>(n, static_cast<int64_t>(layers->size()));
  at::Tensor residual = x.permute({0, 2, 1}).reshape({B * T, D});
  std::vector<at::Tensor> codes;
  for (int64_t k = 0; k < n; ++k) {
    const at::Tensor& embed = layers[k]->as<EncodecVectorQuantization>()->codebook->embed;
    // EncodecEuclideanCodebook.quantize: argmax of -(|x|^2 - 2 x e^T + |e|^2), same op order.
    at::Tensor dist = -(residual.pow(2).sum(1, true) - 2 * at::matmul(residual, embed.t()) +
                        embed.pow(2).sum(1).unsqueeze(0));
    at::Tensor ind = std::get<1>(dist.max(-1));
    residual = residual - at::embedding(embed, ind);
    codes.push_back(ind.view({B, T}));
  }
  return at::stack(codes, 1);
}

at::Tensor EncodecResidualVectorQuantizerImpl::decode(const at::Tensor& codes) {
  const int64_t K = codes.size(1);
  if (K > static_cast<int64_t>(layers->size()))
    throw Error(describe("encodec decode", "codes", std::to_string(K) + " codebooks but the quantizer has " +
                                                        std::to_string(layers->size())));
  if (codes.numel() > 0) {
    const int64_t lo = codes.min().item<int64_t>(), hi = codes.max().item<int64_t>();
    if (lo < 0 || hi >= codebook_size)
      throw Error(describe("encodec decode", "codes", "ids must lie in [0, " + std::to_string(codebook_size) +
                                                          "), got [" + std::to_string(lo) + ", " + std::to_string(hi) +
                                                          "]"));
  }
  at::Tensor out;
  for (int64_t k = 0; k < K; ++k) {
    at::Tensor q = at::embedding(layers[k]->as<EncodecVectorQuantization>()->codebook->embed, codes.select(1, k));
    out = out.defined() ? out + q : q;  // [B, T, D]
  }
  return out.permute({0, 2, 1});
}

// ---------------------------------------------------------------------------------------------
// model

EncodecImpl::EncodecImpl(const EncodecConfig& c) : cfg(c) {
  cfg.validate("encodec config");
  encoder = register_module("encoder", EncodecSEANet(cfg, false));
  decoder = register_module("decoder", EncodecSEANet(cfg, true));
  quantizer = register_module("quantizer", EncodecResidualVectorQuantizer(cfg));
}

at::Tensor EncodecImpl::encode(const at::Tensor& audio, double bandwidth_kbps, at::Tensor* scale) {
  if (audio.dim() != 3 || audio.size(1) != cfg.audio_channels || audio.size(2) < 1)
    throw Error(describe("encodec encode", "audio", "expected [B, " + std::to_string(cfg.audio_channels) +
                                                        ", N>0], got " + c10::str(audio.sizes())));
  at::Tensor x = audio.to(quantizer->layers[0]->as<EncodecVectorQuantization>()->codebook->embed.scalar_type());
  if (cfg.normalize) {
    // transformers' _encode_frame: scale by the RMS of the mono mix.
    at::Tensor s = x.mean(1, true).pow(2).mean(-1, true).sqrt() + 1e-8;
    x = x / s;
    if (scale) *scale = s;
  } else if (scale) {
    *scale = at::Tensor();
  }
  const int64_t n = bandwidth_kbps > 0 ? cfg.codebooks_for_bandwidth(bandwidth_kbps) : cfg.num_codebooks;
  return quantizer->encode(encoder->forward(x), n);
}

at::Tensor EncodecImpl::decode(const at::Tensor& codes, const at::Tensor& scale) {
  if (codes.dim() != 3 || codes.size(1) < 1)
    throw Error(describe("encodec decode", "codes", "expected [B, K, T], got " + c10::str(codes.sizes())));
  at::Tensor audio = decoder->forward(quantizer->decode(codes.to(at::kLong)));
  if (scale.defined()) audio = audio * scale.view({-1, 1, 1});
  return audio;
}

at::Tensor EncodecImpl::decode_chunked(const at::Tensor& codes, int64_t chunk_frames, int64_t overlap_frames) {
  if (chunk_frames < 1 || overlap_frames < 0 || overlap_frames > chunk_frames)
    throw Error(describe("encodec decode_chunked", "arguments",
                         "need 0 <= overlap_frames <= chunk_frames, got chunk " + std::to_string(chunk_frames) +
                             ", overlap " + std::to_string(overlap_frames)));
  if (codes.dim() != 3)
    throw Error(describe("encodec decode", "codes", "expected [B, K, T], got " + c10::str(codes.sizes())));
  const int64_t T = codes.size(2), hop = cfg.hop_length(), ov = overlap_frames;
  if (T <= chunk_frames + ov) return decode(codes);
  const int64_t h1 = ov / 2, h2 = ov - h1;  // crossfade [e - h1, e + h2) around each boundary e
  at::Tensor out;
  for (int64_t s = 0; s < T;) {
    int64_t e = std::min(T, s + chunk_frames);
    if (T - e < std::max<int64_t>(ov, 1)) e = T;  // no tail chunk shorter than the crossfade
    const int64_t keep_s = s == 0 ? 0 : s - h1, keep_e = e == T ? T : e + h2;
    const int64_t win_s = std::max<int64_t>(0, keep_s - ov), win_e = std::min(T, keep_e + ov);
    at::Tensor a = decode(codes.slice(2, win_s, win_e));
    a = a.slice(2, (keep_s - win_s) * hop, (keep_e - win_s) * hop);
    if (!out.defined()) out = at::zeros({a.size(0), a.size(1), T * hop}, a.options());
    const int64_t L = ov * hop;
    if (L > 0 && (s > 0 || e < T)) {
      // Linear ramps whose sum is 1 across each crossfade: (i + 0.5) / L up, the rest down.
      at::Tensor up = (at::arange(L, a.options()) + 0.5) / static_cast<double>(L);
      a = a.clone();
      if (s > 0) a.slice(2, 0, L).mul_(up);
      if (e < T) a.slice(2, a.size(2) - L, a.size(2)).mul_(1.0 - up);
    }
    out.slice(2, keep_s * hop, keep_e * hop).add_(a);
    s = e;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// loading

Encodec load_encodec(const std::string& dir) {
  const std::string cfg_path = dir + "/config.json";
  const std::string w_path = dir + "/model.safetensors";
  EncodecConfig cfg = encodec_config_from_hf(read_json_file(cfg_path), cfg_path);
  require_regular_file(w_path, "cannot load encodec weights");
  Encodec m(cfg);
  TensorMap tensors = fold_weight_norm(load_safetensors(w_path), w_path);
  auto used = load_into(*m, tensors, "", w_path);
  const std::set<std::string> used_set(used.begin(), used.end());
  for (const auto& [k, t] : tensors) {
    const bool training_state = ends_with(k, ".codebook.inited") || ends_with(k, ".codebook.cluster_size") ||
                                ends_with(k, ".codebook.embed_avg");
    if (!used_set.count(k) && !training_state)
      throw Error(describe("encodec weights do not match the config", w_path,
                           "tensor '" + k + "' " + c10::str(t.sizes()) + " is not part of the model described by " +
                               cfg_path));
  }
  m->eval();
  return m;
}

}  // namespace v2m::nn
