// SynthV2M video: OpenCV-drawn scenes whose look is tied to the score (design §3.7):
//   objects move at a speed proportional to the tempo and pulse (grow and brighten) on
//   every beat; a scene cut (new background colour and layout) falls on every bar line;
//   the palette is warm (reds/oranges/yellows) for major and cool (cyans/blues/violets) for
//   minor; brightness follows loudness; the shape follows the instrument family.
#pragma once

#include <opencv2/core.hpp>

#include "synth/score.h"

namespace v2m::synth {

// Hue ranges in degrees (HSV): warm for major, cool for minor.
constexpr double kWarmHueLo = 0, kWarmHueHi = 50, kCoolHueLo = 185, kCoolHueHi = 260;

// Paints the frame at `t` seconds into `rgb` (CV_8UC3 RGB, any size >= 16x16).
void paint_scene(const Score& score, double t, cv::Mat& rgb);

// Index of the scene shown at `t` (number of cuts at or before t).
int scene_index(const Score& score, double t);

}  // namespace v2m::synth
