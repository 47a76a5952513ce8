// ModelConfig: the whole V2M model, one section per part (configs/model/*.yaml map 1:1
// onto these structs). Pretrained parts keep their Hugging Face config field names.
#pragma once

#include <string>

#include "nn/clip_vision.h"
#include "nn/encodec.h"
#include "nn/fusion.h"
#include "nn/musicgen_decoder.h"
#include "v2m/config.h"

namespace v2m::model {

// How the video is turned into the two condition streams.
struct FeatureConfig {
  double clip_fps = 2.0;           // CLIP frames per second of video
  bool clip_pooled = false;        // true: 768-d pooled output instead of 512-d projected embeds
  double flow_fps = 8.0;           // optical-flow pairs per second
  int64_t flow_short_side = 128;   // gray frames for DIS flow
  std::string flow_preset = "medium";
  int64_t motion_grid = 4;         // descriptor: grid x grid cells ...
  int64_t motion_bins = 8;         // ... x orientation bins (+ 7 global values)
  void visit(ConfigVisitor& v) {
    v.field("clip_fps", clip_fps, {0.05, 30});
    v.field("clip_pooled", clip_pooled);
    v.field("flow_fps", flow_fps, {0.5, 60});
    v.field("flow_short_side", flow_short_side, {16, 1080});
    v.field("flow_preset", flow_preset, {"ultrafast", "fast", "medium"});
    v.field("motion_grid", motion_grid, {1, 16});
    v.field("motion_bins", motion_bins, {2, 36});
  }
};

struct ModelConfig {
  std::string name = "v2m";
  double window_s = 30.0;  // trained condition/audio window
  double stride_s = 10.0;  // slide for longer videos (audiocraft's extend_stride)
  FeatureConfig features;
  nn::ClipVisionConfig clip;
  nn::MotionEncoderConfig motion;
  nn::FusionConfig fusion;
  nn::MusicgenDecoderConfig decoder;
  nn::EncodecConfig codec;
  void visit(ConfigVisitor& v) {
    v.field("name", name);
    v.field("window_s", window_s, {0.5, 600});
    v.field("stride_s", stride_s, {0.1, 600});
    v.section("features", features);
    v.section("clip", clip);
    v.section("motion", motion);
    v.section("fusion", fusion);
    v.section("decoder", decoder);
    v.section("codec", codec);
  }
  // Cross-section checks (descriptor width vs motion.in_dim, stride <= window, ...).
  // Throws v2m::Error naming `source` and the keys that disagree.
  void validate(const std::string& source) const;
  int64_t clip_dim() const { return features.clip_pooled ? clip.hidden_size : clip.projection_dim; }
};

ModelConfig load_model_config(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace v2m::model
