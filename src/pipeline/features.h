// Video -> condition streams: CLIP tokens and motion descriptors with their timestamps.
// The one place where media buffers become tensors (media/ stays LibTorch-free).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "model/v2m_model.h"

namespace v2m::pipeline {

struct VideoFeatures {
  at::Tensor clip;      // [Tc, Dc]
  at::Tensor clip_t;    // [Tc] seconds
  at::Tensor motion;    // [Tm, Dm]
  at::Tensor motion_t;  // [Tm] seconds
  double duration = 0;  // seconds of video covered
  double decode_s = 0, clip_s = 0, flow_s = 0;  // stage times
};

// Extracts both streams for [start, start + duration) of the video (duration <= 0: to end).
// Motion is skipped when the model's fusion does not use it.
VideoFeatures extract_features(model::V2MModel& model, const std::string& video, double start, double duration,
                               const at::Device& device);

}  // namespace v2m::pipeline
