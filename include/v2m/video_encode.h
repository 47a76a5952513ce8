// v2m::media::encode_video — writes an .mp4/.mov/.mkv from frames painted on demand (H.264
// via libx264 when this FFmpeg has it, else MPEG-4 part 2; yuv420p), optionally with an
// AAC soundtrack muxed in, interleaved by time. LibTorch-free like the rest of media/.
#pragma once

#include <opencv2/core.hpp>

#include <functional>
#include <string>

#include "v2m/media.h"

namespace v2m::media {

struct VideoEncodeOptions {
  int width = 128;
  int height = 128;
  double fps = 16;
  int frames = 0;                // number of frames to paint (> 0)
  std::string codec = "auto";    // auto: libx264 if available, else mpeg4; or a libavcodec encoder name
  int crf = 20;                  // libx264 quality (lower = better); mpeg4 maps it to a qscale
  int gop = 32;                  // keyframe interval in frames
  int64_t audio_bit_rate = 128000;
};

// Paints frame `index` (shown at index / fps seconds) into `rgb` (CV_8UC3 RGB, width x height,
// allocated by the encoder; contents of the previous frame on entry).
using FramePainter = std::function<void(int index, cv::Mat& rgb)>;

// The encoder `auto` picks: "libx264" or "mpeg4".
std::string default_video_encoder();

// Writes `path` atomically (temp + rename). `audio` (may be null or empty) becomes an AAC
// stream starting at time 0, trimmed to the video's length (frames / fps); rates AAC cannot
// store are resampled to 48 kHz. Throws v2m::Error "cannot encode video: <path>: <why>".
void encode_video(const std::string& path, const VideoEncodeOptions& opts, const FramePainter& paint,
                  const Audio* audio = nullptr);

}  // namespace v2m::media
