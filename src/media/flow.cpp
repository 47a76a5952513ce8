// DIS optical flow and the motion descriptor built on it (design §3.2 "motion features").
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "v2m/error.h"
#include "v2m/media.h"

namespace v2m::media {

FlowPreset parse_flow_preset(const std::string& name) {
  std::string s = name;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "ultrafast") return FlowPreset::UltraFast;
  if (s == "fast") return FlowPreset::Fast;
  if (s == "medium") return FlowPreset::Medium;
  throw Error(describe("invalid flow preset", name, "use ultrafast, fast or medium"));
}

struct DisFlow::Impl {
  cv::Ptr<cv::DISOpticalFlow> dis;
};

DisFlow::DisFlow(FlowPreset preset) : impl_(std::make_unique<Impl>()) {
  const int p = preset == FlowPreset::UltraFast ? cv::DISOpticalFlow::PRESET_ULTRAFAST
                : preset == FlowPreset::Fast    ? cv::DISOpticalFlow::PRESET_FAST
                                                : cv::DISOpticalFlow::PRESET_MEDIUM;
  impl_->dis = cv::DISOpticalFlow::create(p);
}
DisFlow::DisFlow(const std::string& preset) : DisFlow(parse_flow_preset(preset)) {}
DisFlow::~DisFlow() = default;
DisFlow::DisFlow(DisFlow&&) noexcept = default;
DisFlow& DisFlow::operator=(DisFlow&&) noexcept = default;

namespace {

std::string size_str(const cv::Mat& m) {
  return std::to_string(m.cols) + "x" + std::to_string(m.rows) + " type " + std::to_string(m.type());
}

void check_pair(const cv::Mat& prev, const cv::Mat& next) {
  // DIS works on 8x8 patches over an image pyramid; tinier frames have nothing to match.
  if (prev.type() != CV_8UC1 || next.type() != CV_8UC1 || prev.size() != next.size() || prev.rows < 8 ||
      prev.cols < 8)
    throw Error("optical flow: expected two CV_8UC1 frames of the same size (>= 8x8), got " + size_str(prev) +
                " and " + size_str(next));
}

}  // namespace

cv::Mat DisFlow::compute(const cv::Mat& prev, const cv::Mat& next) {
  check_pair(prev, next);
  cv::Mat flow;
  impl_->dis->calc(prev, next, flow);
  return flow;
}

std::vector<float> motion_descriptor(const cv::Mat& flow, const cv::Mat& prev, const cv::Mat& next, int grid, int bins,
                                     double cut_threshold) {
  check_pair(prev, next);
  if (flow.type() != CV_32FC2 || flow.size() != prev.size())
    throw Error("motion descriptor: flow must be CV_32FC2 of the frames' size, got " + size_str(flow));
  if (grid < 1 || grid > 64 || bins < 1 || bins > 360)
    throw Error("motion descriptor: grid must be in 1..64 and bins in 1..360");
  const int H = flow.rows, W = flow.cols;
  std::vector<float> d(static_cast<size_t>(motion_descriptor_dim(grid, bins)), 0.0f);

  cv::Mat xy[2], mag, ang;
  cv::split(flow, xy);
  cv::cartToPolar(xy[0], xy[1], mag, ang, false);  // ang in [0, 2pi), y axis pointing down
  const float bin_scale = static_cast<float>(bins / (2.0 * CV_PI));
  std::vector<int> cell_pixels(static_cast<size_t>(grid) * grid, 0);
  double sum_dx = 0, sum_dy = 0, sum_m = 0, sum_m2 = 0;
  float max_m = 0;
  std::vector<float> mags;
  mags.reserve(static_cast<size_t>(H) * W);
  for (int y = 0; y < H; ++y) {
    const int cy = y * grid / H;
    const float* m = mag.ptr<float>(y);
    const float* a = ang.ptr<float>(y);
    const float* fx = xy[0].ptr<float>(y);
    const float* fy = xy[1].ptr<float>(y);
    for (int x = 0; x < W; ++x) {
      const int cell = cy * grid + x * grid / W;
      const float mv = std::isfinite(m[x]) ? m[x] : 0.0f;
      const int b = std::min(bins - 1, std::max(0, static_cast<int>(a[x] * bin_scale)));
      d[static_cast<size_t>(cell) * bins + b] += mv;
      ++cell_pixels[cell];
      if (std::isfinite(m[x])) {
        sum_dx += fx[x];
        sum_dy += fy[x];
      }
      sum_m += mv;
      sum_m2 += static_cast<double>(mv) * mv;
      max_m = std::max(max_m, mv);
      mags.push_back(mv);
    }
  }
  for (int c = 0; c < grid * grid; ++c)
    for (int b = 0; b < bins; ++b) d[static_cast<size_t>(c) * bins + b] /= std::max(1, cell_pixels[c]);

  const double n = static_cast<double>(H) * W;
  const double mean_m = sum_m / n;
  size_t k = (mags.size() - 1) * 9 / 10;
  std::nth_element(mags.begin(), mags.begin() + k, mags.end());
  float* g = d.data() + static_cast<size_t>(grid) * grid * bins;
  g[0] = static_cast<float>(sum_dx / n);
  g[1] = static_cast<float>(sum_dy / n);
  g[2] = static_cast<float>(mean_m);
  g[3] = static_cast<float>(std::sqrt(std::max(0.0, sum_m2 / n - mean_m * mean_m)));
  g[4] = max_m;
  g[5] = mags[k];

  // Scene cut: the frames differ a lot AND the flow does not explain the difference
  // (next warped back onto prev still differs), so fast pans are not taken for cuts.
  const double raw = cv::norm(prev, next, cv::NORM_L1) / n;
  float cut = 0.0f;
  if (raw > cut_threshold) {
    cv::Mat map_x(H, W, CV_32FC1), map_y(H, W, CV_32FC1);
    for (int y = 0; y < H; ++y) {
      const float* fx = xy[0].ptr<float>(y);
      const float* fy = xy[1].ptr<float>(y);
      float* mx = map_x.ptr<float>(y);
      float* my = map_y.ptr<float>(y);
      for (int x = 0; x < W; ++x) {
        mx[x] = x + fx[x];
        my[x] = y + fy[x];
      }
    }
    cv::Mat warped;
    cv::remap(next, warped, map_x, map_y, cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    if (cv::norm(prev, warped, cv::NORM_L1) / n > cut_threshold) cut = 1.0f;
  }
  g[6] = cut;
  return d;
}

MotionFeatures extract_motion(const std::string& path, double flow_fps, int short_side, const std::string& preset,
                              double start, double duration, int grid, int bins) {
  const std::string what = "cannot extract motion";
  if (!std::isfinite(flow_fps) || flow_fps <= 0 || flow_fps > 1000)
    throw Error(describe(what, path, "flow fps must be in (0, 1000]"));
  if (short_side < 8 || short_side > kMaxFrameSide)
    throw Error(describe(what, path, "short side must be in 8.." + std::to_string(kMaxFrameSide)));
  if (grid < 1 || grid > 64 || bins < 1 || bins > 360)
    throw Error(describe(what, path, "grid must be in 1..64 and bins in 1..360"));
  DisFlow dis(preset);

  VideoDecodeOptions o;
  o.fps = flow_fps;
  o.start = start;
  o.duration = duration;
  o.short_side = short_side;
  o.gray = true;
  MotionFeatures mf;
  mf.dim = motion_descriptor_dim(grid, bins);
  cv::Mat prev;
  double prev_t = 0;
  decode_video_frames(path, o, [&](const cv::Mat& frame, double t) {
    if (!prev.empty()) {
      cv::Mat flow = dis.compute(prev, frame);
      std::vector<float> d = motion_descriptor(flow, prev, frame, grid, bins);
      mf.data.insert(mf.data.end(), d.begin(), d.end());
      mf.timestamps.push_back(0.5 * (prev_t + t));
      ++mf.count;
    }
    frame.copyTo(prev);
    prev_t = t;
  });
  return mf;
}

}  // namespace v2m::media
