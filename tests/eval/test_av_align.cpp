// AV-Align (Yariv et al. 2024): peak IoU between audio onsets and optical-flow peaks.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "eval/av_align.h"
#include "eval/onsets.h"
#include "media/media_testutil.h"
#include "test_util.h"

TEST(AvAlign, CoincidentPeaksScoreOneAndScoreFallsAsTheyDrift) {
  const double fps = 25;
  const std::vector<double> v = {0.4, 1.0, 1.6, 2.2};
  EXPECT_DOUBLE_EQ(v2m::eval::av_align_score(v, v, fps).score, 1.0);
  double prev = 1.0;
  for (double drift : {0.01, 0.03, 0.05, 0.2}) {
    std::vector<double> a;
    // Drift grows along the clip: later peaks leave the +-1/fps window first.
    for (size_t i = 0; i < v.size(); ++i) a.push_back(v[i] + drift * (i + 1) / 2);
    const double s = v2m::eval::av_align_score(v, a, fps).score;
    EXPECT_LE(s, prev + 1e-12) << drift;
    prev = s;
  }
  EXPECT_DOUBLE_EQ(prev, 0.0);
  // Hand case: video {1,2,3,4}, audio {1.01, 2, 5} -> 2 hits, union 4 + 3 - 2 = 5.
  auto r = v2m::eval::av_align_score({1, 2, 3, 4}, {1.01, 2, 5}, fps);
  EXPECT_EQ(r.hits, 2);
  EXPECT_DOUBLE_EQ(r.score, 0.4);
  EXPECT_TRUE(std::isnan(v2m::eval::av_align_score({}, {}, fps).score));
}

TEST(AvAlign, TrajectoryPeaksAreStrictLocalMaximaAboveThreshold) {
  // 1 is a peak; 3 is below 0.1; the plateau 5-6 has no strict maximum.
  auto p = v2m::eval::trajectory_peaks({0, 1, 0, 0.05, 0, 2, 2, 0, 0.5, 0}, 10);
  EXPECT_EQ(p, (std::vector<double>{0.1, 0.8}));
}

TEST(AvAlign, JumpingSquareWithClicksOnTheJumpsAligns) {
  TempDir d;
  // A 24 px square that holds still and jumps 8 px at frames 25 and 50 (1 s and 2 s at 25 fps).
  v2m::testutil::ClipSpec spec;
  spec.width = 96;
  spec.height = 64;
  spec.frames = 75;
  spec.fps = 25;
  spec.codec = "ffv1";
  spec.paint = [](int i, double, cv::Mat& rgb) {
    rgb.setTo(cv::Scalar(16, 16, 16));
    const int x = 10 + 8 * (i >= 25) + 8 * (i >= 50);
    cv::rectangle(rgb, cv::Rect(x, 20, 24, 24), cv::Scalar(255, 255, 255), cv::FILLED);
  };
  const std::string path = d.path() + "/jump.mkv";
  v2m::testutil::make_clip(path, spec);
  auto tr = v2m::eval::flow_trajectory(path, 0, 0);
  EXPECT_DOUBLE_EQ(tr.fps, 25);
  ASSERT_EQ(tr.magnitude.size(), 75u);
  auto vp = v2m::eval::trajectory_peaks(tr.magnitude, tr.fps);
  ASSERT_EQ(vp.size(), 2u);
  EXPECT_NEAR(vp[0], 1.0, 1e-9);
  EXPECT_NEAR(vp[1], 2.0, 1e-9);
  // Audio peaks where the jumps are: score 1; clicks 0.3 s late: score 0.
  auto onsets_at = [](std::vector<double> t) {
    v2m::media::Audio a;
    a.sample_rate = 22050;
    a.channels = 1;
    a.samples.assign(22050 * 3, 0.0f);
    for (double s : t)
      for (int i = 0; i < 400; ++i) a.samples[static_cast<size_t>(s * 22050) + i] = (i % 2 ? 0.8f : -0.8f) * std::exp(-i / 60.0f);
    return v2m::eval::onset_times(a);
  };
  EXPECT_DOUBLE_EQ(v2m::eval::av_align_score(vp, onsets_at({1.0, 2.0}), tr.fps).score, 1.0);
  EXPECT_DOUBLE_EQ(v2m::eval::av_align_score(vp, onsets_at({1.3, 2.3}), tr.fps).score, 0.0);
}
