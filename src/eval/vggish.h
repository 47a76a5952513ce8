// VGGish (Hershey et al. 2017) as the FAD embedding model, in LibTorch, with the tensor
// names of the public PyTorch port (harritaylor/torchvggish, vggish-10086976.pth):
//   features.{0,3,6,8,11,13}.{weight,bias}   3x3 convs 1-64-128-256-256-512-512
//   embeddings.{0,2,4}.{weight,bias}          fc 12288-4096-4096-128
// scripts/convert_vggish.py turns that .pth into the safetensors file read here.
//
// Frontend (vggish_input.waveform_to_examples / mel_features.log_mel_spectrogram): mono,
// 16 kHz; frames of 400 samples (25 ms) every 160 (10 ms), periodic Hann, |rfft| with
// n = 512; 64 mel bands 125-7500 Hz (HTK mel, DC bin zeroed); log(mel + 0.01); examples of
// 96 frames (0.96 s) without overlap -> [N, 1, 96, 64].
//
// The embedding is the 128-d output of the last linear layer before its ReLU (the
// TensorFlow release's fc2 is linear; torchvggish appends a ReLU that the FAD tools drop),
// without the PCA/quantisation post-processor.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include <string>

#include "v2m/media.h"

namespace v2m::eval {

constexpr int kVggishRate = 16000;
constexpr int kVggishDim = 128;

// Any mono/multi-channel audio -> [N, 1, 96, 64] log-mel examples (N may be 0 for < 0.975 s).
at::Tensor vggish_examples(const media::Audio& audio);

struct VggishImpl : torch::nn::Module {
  VggishImpl();
  // x: [N, 1, 96, 64] -> [N, 128]
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Sequential features{nullptr}, embeddings{nullptr};
};
TORCH_MODULE(Vggish);

// Loads weights strictly by name (a missing/extra/mis-shaped tensor names itself).
Vggish load_vggish(const std::string& path);

// audio -> [N, 128] embeddings (N = number of 0.96 s examples).
at::Tensor vggish_embed(Vggish& model, const media::Audio& audio);

}  // namespace v2m::eval
