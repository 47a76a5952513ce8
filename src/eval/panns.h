// PANNs CNN14 (Kong et al. 2020, qiuqiangkong/audioset_tagging_cnn, Cnn14_mAP=0.431.pth),
// the AudioSet tagger behind KLD, in LibTorch with the checkpoint's tensor names:
//   bn0.{weight,bias,running_mean,running_var,num_batches_tracked}
//   conv_block{1..6}.conv{1,2}.weight, conv_block{1..6}.bn{1,2}.*   (64-128-256-512-1024-2048)
//   fc1.{weight,bias} [2048, 2048], fc_audioset.{weight,bias} [527, 2048]
// The checkpoint's fixed frontend tensors (spectrogram_extractor.*, logmel_extractor.melW)
// are recomputed here and dropped by scripts/convert_panns.py.
//
// Frontend (torchlibrosa Spectrogram + LogmelFilterBank as configured for CNN14): mono
// 32 kHz, n_fft = win = 1024, hop 320, periodic Hann, reflect-centred, power 2; librosa
// Slaney mel filter bank, 64 bands 50-14000 Hz; 10 log10(max(mel, 1e-10)) (ref 1, no top_db).
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <string>

#include "v2m/media.h"

namespace v2m::eval {

constexpr int kPannsRate = 32000;
constexpr int kPannsClasses = 527;

// wav: [B, N] at 32 kHz -> [B, 1, T, 64] log-mel (T = 1 + N / 320)
at::Tensor panns_log_mel(const at::Tensor& wav);

struct PannsConvBlockImpl : torch::nn::Module {
  PannsConvBlockImpl(int64_t in, int64_t out);
  // x: [B, in, T, F] -> [B, out, T / p, F / p]   (avg pool p x p; p = 1 keeps the size)
  at::Tensor forward(const at::Tensor& x, int64_t pool);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};
TORCH_MODULE(PannsConvBlock);

struct Cnn14Impl : torch::nn::Module {
  explicit Cnn14Impl(int64_t classes = kPannsClasses);
  // wav: [B, N] at 32 kHz -> logits [B, classes] (pre-sigmoid clipwise output)
  at::Tensor forward(const at::Tensor& wav);
  torch::nn::BatchNorm2d bn0{nullptr};
  PannsConvBlock blocks[6] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  torch::nn::Linear fc1{nullptr}, fc_audioset{nullptr};
};
TORCH_MODULE(Cnn14);

// Loads weights strictly by name (extra tensors other than the frontend's are errors).
Cnn14 load_cnn14(const std::string& path);

}  // namespace v2m::eval
