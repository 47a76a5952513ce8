#include "eval/panns.h"

#include <set>

#include "eval/filterbanks.h"
#include "eval/spectrogram.h"
#include "nn/state_dict.h"
#include "v2m/error.h"

namespace v2m::eval {

namespace {

constexpr int kFft = 1024, kHop = 320, kMels = 64;

const at::Tensor& mel_matrix() {
  static const at::Tensor m = [] {
    auto w = slaney_mel_filterbank(kPannsRate, kFft, kMels, 50.0, 14000.0);
    return at::from_blob(w.data(), {kMels, kFft / 2 + 1}, at::kDouble).to(at::kFloat);
  }();
  return m;
}

}  // namespace

at::Tensor panns_log_mel(const at::Tensor& wav) {
  SpectrogramOptions o;
  o.n_fft = kFft;
  o.hop = kHop;
  o.pad = PadMode::Reflect;
  o.power = 2.0;
  std::vector<at::Tensor> rows;
  for (int64_t b = 0; b < wav.size(0); ++b) {
    at::Tensor spec = spectrogram(wav[b].to(at::kFloat), o);  // [F, T]
    at::Tensor mel = at::matmul(spec.transpose(0, 1), mel_matrix().transpose(0, 1));  // [T, 64]
    rows.push_back(10.0 * at::log10(mel.clamp_min(1e-10)));
  }
  return at::stack(rows).unsqueeze(1);
}

PannsConvBlockImpl::PannsConvBlockImpl(int64_t in, int64_t out) {
  namespace tnn = torch::nn;
  conv1 = register_module("conv1", tnn::Conv2d(tnn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
  conv2 = register_module("conv2", tnn::Conv2d(tnn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
  bn1 = register_module("bn1", tnn::BatchNorm2d(out));
  bn2 = register_module("bn2", tnn::BatchNorm2d(out));
}

at::Tensor PannsConvBlockImpl::forward(const at::Tensor& x, int64_t pool) {
  at::Tensor h = at::relu(bn1->forward(conv1->forward(x)));
  h = at::relu(bn2->forward(conv2->forward(h)));
  return pool > 1 ? at::avg_pool2d(h, {pool, pool}) : h;
}

Cnn14Impl::Cnn14Impl(int64_t classes) {
  bn0 = register_module("bn0", torch::nn::BatchNorm2d(kMels));
  const int64_t ch[7] = {1, 64, 128, 256, 512, 1024, 2048};
  for (int i = 0; i < 6; ++i)
    blocks[i] = register_module("conv_block" + std::to_string(i + 1), PannsConvBlock(ch[i], ch[i + 1]));
  fc1 = register_module("fc1", torch::nn::Linear(2048, 2048));
  fc_audioset = register_module("fc_audioset", torch::nn::Linear(2048, classes));
}

at::Tensor Cnn14Impl::forward(const at::Tensor& wav) {
  at::Tensor x = panns_log_mel(wav);                       // [B, 1, T, 64]
  x = bn0->forward(x.transpose(1, 3)).transpose(1, 3);     // batch norm over mel bins
  for (int i = 0; i < 6; ++i) x = blocks[i]->forward(x, i < 5 ? 2 : 1);  // [B, 2048, T/32, 2]
  x = x.mean(3);                                           // [B, 2048, T']
  x = std::get<0>(x.max(2)) + x.mean(2);                   // [B, 2048]
  x = at::relu(fc1->forward(x));
  return fc_audioset->forward(x);
}

Cnn14 load_cnn14(const std::string& path) {
  Cnn14 model;
  nn::TensorMap t = nn::load_safetensors(path);
  for (auto it = t.begin(); it != t.end();) {
    const bool frontend = it->first.rfind("spectrogram_extractor.", 0) == 0 || it->first.rfind("logmel_extractor.", 0) == 0;
    it = frontend ? t.erase(it) : std::next(it);
  }
  auto used = nn::load_into(*model, t, "", path);
  std::set<std::string> u(used.begin(), used.end());
  for (const auto& [k, v] : t)
    if (!u.count(k)) throw Error(describe("cnn14 weights", path, "unexpected tensor '" + k + "'"));
  model->eval();
  return model;
}

}  // namespace v2m::eval
