// DIS optical flow and the motion descriptor.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

namespace {

// Smooth random texture: DIS needs gradients everywhere.
cv::Mat texture(int w, int h, int seed) {
  cv::Mat noise(h, w, CV_32FC1);
  cv::RNG rng(seed);
  rng.fill(noise, cv::RNG::UNIFORM, 0, 255);
  cv::GaussianBlur(noise, noise, cv::Size(0, 0), 2.0);
  cv::Mat out;
  cv::normalize(noise, noise, 0, 255, cv::NORM_MINMAX);
  noise.convertTo(out, CV_8UC1);
  return out;
}

// Content moved by (dx, dy): next(y + dy, x + dx) = prev(y, x).
cv::Mat shifted(const cv::Mat& img, double dx, double dy) {
  cv::Mat m = (cv::Mat_<double>(2, 3) << 1, 0, dx, 0, 1, dy), out;
  cv::warpAffine(img, out, m, img.size(), cv::INTER_CUBIC, cv::BORDER_REFLECT);
  return out;
}

}  // namespace

TEST(MediaFlow, DisRecoversKnownTranslation) {
  const cv::Mat prev = texture(192, 128, 3);
  const cv::Mat next = shifted(prev, 3, -2);
  for (const std::string preset : {"ultrafast", "fast", "medium"}) {
    media::DisFlow dis(preset);
    cv::Mat flow = dis.compute(prev, next);
    ASSERT_EQ(flow.type(), CV_32FC2);
    ASSERT_EQ(flow.size(), prev.size());
    const cv::Scalar mean = cv::mean(flow(cv::Rect(16, 16, 160, 96)));  // away from the borders
    EXPECT_NEAR(mean[0], 3.0, 0.5) << preset;
    EXPECT_NEAR(mean[1], -2.0, 0.5) << preset;
  }
  media::DisFlow dis;
  EXPECT_THROW(dis.compute(prev, texture(100, 100, 1)), Error);
  EXPECT_THROW(media::DisFlow("slow"), Error);
}

TEST(MediaFlow, DescriptorLayoutOnTranslation) {
  static_assert(media::motion_descriptor_dim(4, 8) == 135, "Model-S motion.in_dim");
  const cv::Mat prev = texture(192, 128, 5);
  const cv::Mat next = shifted(prev, 3, -2);
  media::DisFlow dis(media::FlowPreset::Medium);
  const cv::Mat flow = dis.compute(prev, next);
  std::vector<float> d = media::motion_descriptor(flow, prev, next, 4, 8);
  ASSERT_EQ(d.size(), 135u);
  const float* g = d.data() + 128;
  EXPECT_NEAR(g[0], 3.0, 0.5);   // mean dx
  EXPECT_NEAR(g[1], -2.0, 0.5);  // mean dy
  EXPECT_NEAR(g[2], std::sqrt(13.0), 0.5);  // mean magnitude
  EXPECT_LT(g[3], 1.0);                     // uniform motion: small spread
  EXPECT_GE(g[4], g[5]);                    // max >= p90
  EXPECT_GE(g[5], g[2] - 0.5);
  EXPECT_EQ(g[6], 0.0f);  // not a cut
  // atan2(-2, 3) = -33.7 deg = 326.3 deg: bin 7 of 8 in every inner cell, carrying ~all magnitude.
  for (int cell : {5, 6, 9, 10}) {
    const float* h = d.data() + cell * 8;
    float total = 0;
    for (int b = 0; b < 8; ++b) total += h[b];
    EXPECT_GT(h[7], 0.8f * total) << "cell " << cell;
    EXPECT_NEAR(total, std::sqrt(13.0), 0.6) << "cell " << cell;
  }
  EXPECT_EQ(media::motion_descriptor(flow, prev, next, 2, 12).size(),
            static_cast<size_t>(media::motion_descriptor_dim(2, 12)));
}

TEST(MediaFlow, SceneCutFlag) {
  const cv::Mat a = texture(128, 128, 1);
  cv::Mat b = 255 - texture(128, 128, 2);  // unrelated picture
  b.setTo(255, texture(128, 128, 3) > 128);  // with bright patches: mean |a - b| well over 40
  ASSERT_GT(cv::norm(a, b, cv::NORM_L1) / (128 * 128), media::kSceneCutThreshold);
  media::DisFlow dis(media::FlowPreset::Fast);
  std::vector<float> cut = media::motion_descriptor(dis.compute(a, b), a, b);
  EXPECT_EQ(cut.back(), 1.0f);
  const cv::Mat s = shifted(a, 6, 0);  // a pan: big difference, explained by the flow
  std::vector<float> pan = media::motion_descriptor(dis.compute(a, s), a, s);
  EXPECT_EQ(pan.back(), 0.0f);
  std::vector<float> same = media::motion_descriptor(dis.compute(a, a), a, a);
  EXPECT_EQ(same.back(), 0.0f);
  EXPECT_NEAR(same[128 + 2], 0.0, 0.05);
}

TEST(MediaFlow, ExtractMotionOnMovingSquare) {
  TempDir dir;
  const std::string clip = dir.path() + "/sq.mp4";
  ClipSpec spec;
  spec.width = 128;
  spec.height = 96;
  spec.frames = 20;  // 0.8 s at 25 fps; the square moves (+2, +1) px per frame
  make_clip(clip, spec);
  media::MotionFeatures m = media::extract_motion(clip, 25, 96, "medium");
  EXPECT_EQ(m.dim, 135);
  ASSERT_EQ(m.count, 19);
  ASSERT_EQ(m.data.size(), 19u * 135u);
  double bins[8] = {0};
  for (int64_t k = 0; k < m.count; ++k) {
    EXPECT_NEAR(m.timestamps[k], (k + 0.5) / 25.0, 1e-9);
    const float* d = m.data.data() + k * m.dim;
    for (int c = 0; c < 16; ++c)
      for (int b = 0; b < 8; ++b) bins[b] += d[c * 8 + b];
    EXPECT_GT(d[128 + 0], 0.0f) << k;    // mean dx > 0
    EXPECT_GT(d[128 + 4], 1.0f) << k;    // the square moves ~2.2 px
    EXPECT_EQ(d[128 + 6], 0.0f) << k;    // no cuts
  }
  // Direction atan2(1, 2) = 26.6 deg: bin 0 holds most of the motion.
  double total = 0;
  for (double b : bins) total += b;
  EXPECT_GT(bins[0], 0.5 * total);

  // A sub-range: frames at 0.2, 0.28, ..., 0.52 -> 4 pairs.
  media::MotionFeatures r = media::extract_motion(clip, 12.5, 48, "ultrafast", 0.2, 0.4, 2, 4);
  EXPECT_EQ(r.dim, media::motion_descriptor_dim(2, 4));
  ASSERT_EQ(r.count, 4);
  EXPECT_NEAR(r.timestamps[0], 0.24, 1e-9);

  // One frame: no pairs, no error.
  const std::string one = dir.path() + "/one.mp4";
  spec.frames = 1;
  make_clip(one, spec);
  EXPECT_EQ(media::extract_motion(one, 8).count, 0);
  EXPECT_THROW(media::extract_motion(clip, 8, 128, "warp"), Error);
}
