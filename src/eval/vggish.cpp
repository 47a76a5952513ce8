#include "eval/vggish.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <set>

#include "eval/filterbanks.h"
#include "eval/spectrogram.h"
#include "nn/state_dict.h"
#include "v2m/error.h"

namespace v2m::eval {

namespace {

constexpr int kWin = 400, kHop = 160, kFft = 512, kMels = 64, kExample = 96;

const at::Tensor& mel_matrix() {
  static const at::Tensor m = [] {
    auto w = vggish_mel_matrix(kVggishRate, kFft / 2 + 1, kMels, 125.0, 7500.0);
    return at::from_blob(w.data(), {kMels, kFft / 2 + 1}, at::kDouble).clone();
  }();
  return m;
}

}  // namespace

at::Tensor vggish_examples(const media::Audio& audio) {
  media::Audio m = to_mono(audio, kVggishRate);
  at::Tensor x = to_tensor(m).to(at::kDouble);
  if (x.size(0) < kWin) return at::zeros({0, 1, kExample, kMels});
  // Frames start at sample 0 (no centring); the 400-sample window is zero-padded at the end
  // to 512 points, as numpy.fft.rfft(frame, 512) does.
  at::Tensor frames = x.unfold(0, kWin, kHop) * at::hann_window(kWin, /*periodic=*/true, x.options());
  at::Tensor mag = at::fft_rfft(frames, kFft, -1).abs();  // [T, 257]
  at::Tensor log_mel = at::log(at::matmul(mag, mel_matrix().transpose(0, 1)) + 0.01);  // [T, 64]
  if (log_mel.size(0) < kExample) return at::zeros({0, 1, kExample, kMels});
  at::Tensor ex = log_mel.unfold(0, kExample, kExample);  // [N, 64, 96]
  return ex.transpose(1, 2).unsqueeze(1).to(at::kFloat).contiguous();
}

VggishImpl::VggishImpl() {
  namespace tnn = torch::nn;
  features = register_module("features", tnn::Sequential());
  int64_t in = 1;
  for (int64_t v : {64, -1, 128, -1, 256, 256, -1, 512, 512, -1}) {
    if (v < 0) {
      features->push_back(tnn::MaxPool2d(tnn::MaxPool2dOptions(2).stride(2)));
    } else {
      features->push_back(tnn::Conv2d(tnn::Conv2dOptions(in, v, 3).padding(1)));
      features->push_back(tnn::ReLU());
      in = v;
    }
  }
  embeddings = register_module("embeddings", tnn::Sequential(tnn::Linear(512 * 4 * 6, 4096), tnn::ReLU(),
                                                              tnn::Linear(4096, 4096), tnn::ReLU(),
                                                              tnn::Linear(4096, kVggishDim)));
}

at::Tensor VggishImpl::forward(const at::Tensor& x) {
  at::Tensor h = features->forward(x);           // [N, 512, 6, 4]
  h = h.permute({0, 2, 3, 1}).reshape({h.size(0), -1});  // channels last, as the TF weights expect
  return embeddings->forward(h);
}

Vggish load_vggish(const std::string& path) {
  Vggish model;
  nn::TensorMap t = nn::load_safetensors(path);
  auto used = nn::load_into(*model, t, "", path);
  std::set<std::string> u(used.begin(), used.end());
  for (const auto& [k, v] : t)
    if (!u.count(k)) throw Error(describe("vggish weights", path, "unexpected tensor '" + k + "'"));
  model->eval();
  return model;
}

at::Tensor vggish_embed(Vggish& model, const media::Audio& audio) {
  at::InferenceMode guard;
  at::Tensor ex = vggish_examples(audio);
  if (ex.size(0) == 0) return at::zeros({0, kVggishDim});
  return model->forward(ex);
}

}  // namespace v2m::eval
