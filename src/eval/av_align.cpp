#include "eval/av_align.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include "v2m/error.h"
#include "v2m/media.h"

namespace v2m::eval {

AvAlign av_align_score(const std::vector<double>& video_peaks, const std::vector<double>& audio_peaks, double fps) {
  AvAlign r;
  r.audio_peaks = static_cast<int>(audio_peaks.size());
  r.video_peaks = static_cast<int>(video_peaks.size());
  const double w = 1.0 / fps;
  for (double a : audio_peaks)
    for (double v : video_peaks)
      if (v - w < a && a < v + w) {
        ++r.hits;
        break;
      }
  const int uni = r.video_peaks + r.audio_peaks - r.hits;
  r.score = uni > 0 ? static_cast<double>(r.hits) / uni : std::numeric_limits<double>::quiet_NaN();
  return r;
}

std::vector<double> trajectory_peaks(const std::vector<double>& m, double fps, double threshold) {
  std::vector<double> peaks;
  for (size_t i = 1; i + 1 < m.size(); ++i)
    if (m[i - 1] < m[i] && m[i] > m[i + 1] && m[i] >= threshold) peaks.push_back(static_cast<double>(i) / fps);
  return peaks;
}

FlowTrajectory flow_trajectory(const std::string& video, double start, double duration, int max_short_side) {
  media::ProbeInfo info = media::probe(video);
  if (!info.video()) throw Error(describe("av-align", video, "no video stream"));
  const auto* vs = info.video();
  FlowTrajectory tr;
  tr.fps = vs->fps > 0 ? vs->fps : 25.0;
  media::VideoDecodeOptions o;
  o.fps = tr.fps;
  o.start = start;
  o.duration = duration;
  o.gray = true;
  const int src_short = std::min(vs->width, vs->height);
  if (max_short_side > 0 && src_short > max_short_side) o.short_side = max_short_side;
  media::DisFlow dis(media::FlowPreset::Medium);
  cv::Mat prev;
  media::decode_video_frames(video, o, [&](const cv::Mat& frame, double) {
    if (!prev.empty()) {
      cv::Mat flow = dis.compute(prev, frame);
      cv::Mat ch[2], mag;
      cv::split(flow, ch);
      cv::magnitude(ch[0], ch[1], mag);
      tr.magnitude.push_back(cv::mean(mag)[0]);
      if (tr.magnitude.size() == 1) tr.magnitude.push_back(tr.magnitude[0]);
    }
    prev = frame.clone();
  });
  if (tr.magnitude.empty()) tr.magnitude.push_back(0.0);  // a one-frame range: no motion, no peaks
  return tr;
}

}  // namespace v2m::eval
