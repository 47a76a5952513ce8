// Test-media makers: every test encodes its own small clips with libav (nothing checked in),
// with content whose expected decode is known: a moving square, flat gray levels per frame,
// sine tones. Shared by the media, pipeline and cli test groups.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "v2m/media.h"

namespace v2m::testutil {

// Paints frame `index` (presented at `t` seconds) into `rgb` (CV_8UC3, the clip's size).
using Painter = std::function<void(int index, double t, cv::Mat& rgb)>;

struct ClipSpec {
  int width = 64;
  int height = 48;
  int frames = 25;             // 0: no video stream (audio-only file)
  double fps = 25;             // constant frame rate, unless `pts` is set
  std::vector<double> pts;     // VFR: each frame's presentation time in seconds (overrides frames/fps);
                               // the last frame lasts as long as the interval before it
  std::string codec = "auto";  // "auto" = video_encoder(); or "libx264", "mpeg4", "ffv1", "mjpeg"
  std::string pix_fmt;         // empty: the codec's usual (yuv420p, yuvj420p for mjpeg)
  int rotation = 0;            // clockwise display rotation, stored as a display matrix (.mp4/.mov)
  Painter paint;               // empty: paint_square
  bool garbage_packets = false;  // mpeg4 stream of random bytes: has a video stream, decodes to nothing

  int audio_rate = 0;          // 0: no audio stream
  int audio_channels = 1;
  double tone_hz = 440;        // sine tone in every channel
  double tone_amp = 0.5;
  double audio_seconds = -1;   // < 0: the video's length (1 s for audio-only files)
  std::string audio_codec = "auto";  // auto: aac in .mp4/.mov, pcm_s16le elsewhere
};

// Decode options that return every source frame as is (fps 0), at the source size.
inline media::VideoDecodeOptions every_frame() {
  media::VideoDecodeOptions o;
  o.fps = 0;
  return o;
}

// Writes the clip to `path`; the container follows the extension (.mp4, .mkv, .mov, .wav).
void make_clip(const std::string& path, const ClipSpec& spec);

// Writes `audio` as a pcm_s16le .wav / .mkv, or AAC .mp4/.m4a, through libav (not v2m's writer).
void make_audio_file(const std::string& path, const media::Audio& audio);

// libx264 when this libavcodec has it, else mpeg4.
std::string video_encoder();
bool has_encoder(const std::string& name);

// Default painter: background level 16, a white square of side 12 whose top-left corner is
// at square_at(index) (moves +2 px in x and +1 px in y per frame, wrapping inside a margin).
struct Square {
  int x, y, size;
};
Square square_at(int index, int width, int height);
void paint_square(int index, double t, cv::Mat& rgb);

// Flat frame at gray_level(index): frames are told apart by their mean brightness.
int gray_level(int index);
void paint_gray_level(int index, double t, cv::Mat& rgb);

// Frame index whose gray level is nearest to `mean` (inverse of gray_level).
int index_from_gray(double mean);

// sin(2 pi hz t) * amp in every channel, planar.
media::Audio sine(int sample_rate, int channels, double seconds, double hz, double amp);

// Frequency from upward zero crossings (linear interpolation between samples).
double zero_crossing_hz(const float* x, int64_t n, int sample_rate);
double rms(const float* x, int64_t n);

}  // namespace v2m::testutil
