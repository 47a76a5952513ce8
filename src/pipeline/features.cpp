#include "pipeline/features.h"

#include <torch/torch.h>

#include <chrono>

#include "nn/clip_vision.h"
#include "v2m/error.h"
#include "v2m/media.h"

namespace v2m::pipeline {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

VideoFeatures extract_features(model::V2MModel& model, const std::string& video, double start, double duration,
                               const at::Device& device) {
  const auto& cfg = model->cfg;
  VideoFeatures f;
  at::InferenceMode guard;

  // CLIP stream: frames at clip_fps, short side resized to the CLIP input and center
  // cropped by the decoder (swscale), then CLIP's normalisation. CLIP runs in small
  // batches as frames arrive so a long video never holds all frames in memory.
  media::VideoDecodeOptions vo;
  vo.fps = cfg.features.clip_fps;
  vo.start = start;
  vo.duration = duration;
  vo.short_side = static_cast<int>(cfg.clip.image_size);
  vo.center_crop = true;
  std::vector<at::Tensor> batch, embeds;
  std::vector<double> times;
  double clip_s = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor px = at::stack(batch).to(device);
    embeds.push_back((cfg.features.clip_pooled ? model->clip->pooled(px) : model->clip->forward(px)).to(at::kCPU));
    batch.clear();
    clip_s += seconds_since(t0);
  };
  const auto t_decode = std::chrono::steady_clock::now();
  media::decode_video_frames(video, vo, [&](const cv::Mat& rgb, double t) {
    auto t0 = std::chrono::steady_clock::now();
    batch.push_back(nn::clip_preprocess(rgb.data, rgb.rows, rgb.cols, static_cast<int>(cfg.clip.image_size)));
    clip_s += seconds_since(t0);
    times.push_back(t - start);
    if (batch.size() == 16) flush();
  });
  flush();
  f.clip_s = clip_s;
  f.decode_s = seconds_since(t_decode) - clip_s;
  if (times.empty()) throw Error(describe("cannot decode video", video, "no frames in the requested range"));
  f.clip = at::cat(embeds, 0);
  f.clip_t = at::tensor(times, at::kDouble).to(at::kFloat);
  // The music covers the frames' span plus one frame period.
  f.duration = times.back() + 1.0 / cfg.features.clip_fps;

  if (cfg.fusion.motion) {
    auto t0 = std::chrono::steady_clock::now();
    auto m = media::extract_motion(video, cfg.features.flow_fps, static_cast<int>(cfg.features.flow_short_side),
                                   cfg.features.flow_preset, start, duration, static_cast<int>(cfg.features.motion_grid),
                                   static_cast<int>(cfg.features.motion_bins));
    f.flow_s = seconds_since(t0);
    if (m.count > 0) {
      f.motion = at::from_blob(m.data.data(), {m.count, m.dim}, at::kFloat).clone();
      std::vector<double> mt(m.timestamps);
      for (auto& t : mt) t -= start;
      f.motion_t = at::tensor(mt, at::kDouble).to(at::kFloat);
    } else {
      // A single-frame video has no frame pairs: one zero-motion token at t = 0.
      f.motion = at::zeros({1, cfg.motion.in_dim});
      f.motion_t = at::zeros({1});
    }
  }
  return f;
}

}  // namespace v2m::pipeline
