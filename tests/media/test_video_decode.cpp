// Video decode: frame sampling by presentation time, geometry, rotation, pixel formats.
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

cv::Mat frame_mat(const media::Frames& f, int t) {
  return cv::Mat(f.height, f.width, f.channels == 3 ? CV_8UC3 : CV_8UC1, const_cast<uint8_t*>(f.frame(t)));
}

// Centroid of the bright pixels (the square), in output pixel coordinates.
cv::Point2d bright_centroid(const cv::Mat& m) {
  cv::Mat g;
  if (m.channels() == 3) cv::cvtColor(m, g, cv::COLOR_RGB2GRAY); else g = m;
  cv::Moments mo = cv::moments(g > 128, true);
  return mo.m00 > 0 ? cv::Point2d(mo.m10 / mo.m00, mo.m01 / mo.m00) : cv::Point2d(-1, -1);
}

cv::Point2d square_center(int index, int w, int h) {
  Square s = square_at(index, w, h);
  return {s.x + (s.size - 1) / 2.0, s.y + (s.size - 1) / 2.0};
}

}  // namespace

TEST(MediaVideo, MovingSquareAtKnownFrames) {
  TempDir dir;
  const std::string clip = dir.path() + "/square.mp4";
  make_clip(clip, ClipSpec{});
  media::Frames f = media::decode_video(clip, every_frame());  // fps 0: every source frame
  ASSERT_EQ(f.count, 25);
  EXPECT_EQ(f.width, 64);
  EXPECT_EQ(f.height, 48);
  EXPECT_EQ(f.channels, 3);
  ASSERT_EQ(f.data.size(), size_t(25) * 64 * 48 * 3);
  for (int i : {0, 5, 10, 24}) {
    EXPECT_NEAR(f.timestamps[i], i / 25.0, 1e-6);
    cv::Mat m = frame_mat(f, i);
    Square s = square_at(i, 64, 48);
    cv::Vec3b inside = m.at<cv::Vec3b>(s.y + 6, s.x + 6);
    cv::Vec3b outside = m.at<cv::Vec3b>(s.y + 6, (s.x + 30) % 64);
    EXPECT_GT(inside[0], 200) << "frame " << i;
    EXPECT_LT(outside[0], 40) << "frame " << i;
    cv::Point2d c = bright_centroid(m), e = square_center(i, 64, 48);
    EXPECT_NEAR(c.x, e.x, 0.6) << "frame " << i;
    EXPECT_NEAR(c.y, e.y, 0.6) << "frame " << i;
  }
}

TEST(MediaVideo, FrameCountAndTimestampsAtRequestedFps) {
  TempDir dir;
  const std::string clip = dir.path() + "/square.mp4";
  ClipSpec spec;
  spec.frames = 50;  // 2 s at 25 fps
  make_clip(clip, spec);
  media::VideoDecodeOptions o = every_frame();
  o.fps = 10;
  media::Frames f = media::decode_video(clip, o);
  ASSERT_EQ(f.count, 20);
  for (int k = 0; k < f.count; ++k) {
    EXPECT_NEAR(f.timestamps[k], k * 0.1, 1e-9);
    // Latest source frame at or before k/10 s: floor(k * 2.5).
    const int src = static_cast<int>(std::floor(k * 2.5 + 1e-9));
    cv::Point2d c = bright_centroid(frame_mat(f, k)), e = square_center(src, 64, 48);
    EXPECT_NEAR(c.x, e.x, 0.6) << "k=" << k;
    EXPECT_NEAR(c.y, e.y, 0.6) << "k=" << k;
  }

  o.fps = 50;  // faster than the source: every frame shown twice
  media::Frames g = media::decode_video(clip, o);
  ASSERT_EQ(g.count, 100);
  const size_t n = size_t(g.height) * g.width * g.channels;
  for (int k = 0; k < g.count; k += 2)
    EXPECT_EQ(0, std::memcmp(g.frame(k), g.frame(k + 1), n)) << "k=" << k;
}

TEST(MediaVideo, StartAndDurationSelectRange) {
  TempDir dir;
  const std::string clip = dir.path() + "/square.mp4";
  ClipSpec spec;
  spec.frames = 50;
  make_clip(clip, spec);
  media::VideoDecodeOptions o = every_frame();
  o.fps = 10;
  o.start = 0.5;
  o.duration = 1.0;
  media::Frames f = media::decode_video(clip, o);
  ASSERT_EQ(f.count, 10);
  EXPECT_NEAR(f.timestamps.front(), 0.5, 1e-9);
  EXPECT_NEAR(f.timestamps.back(), 1.4, 1e-9);
  for (int k = 0; k < f.count; ++k) {
    const int src = static_cast<int>(std::floor((0.5 + 0.1 * k) * 25 + 1e-9));
    EXPECT_NEAR(bright_centroid(frame_mat(f, k)).x, square_center(src, 64, 48).x, 0.6) << "k=" << k;
  }
}

TEST(MediaVideo, VfrClipSampledByPresentationTime) {
  TempDir dir;
  const std::vector<double> pts = {0.0, 0.05, 0.10, 0.30, 0.33, 0.36, 0.70, 0.71, 1.00, 1.20};
  for (const std::string ext : {".mkv", ".mp4"}) {
    const std::string clip = dir.path() + "/vfr" + ext;
    ClipSpec spec;
    spec.pts = pts;
    spec.paint = paint_gray_level;
    make_clip(clip, spec);
    media::VideoDecodeOptions o = every_frame();
    o.fps = 10;
    o.gray = true;
    media::Frames f = media::decode_video(clip, o);
    // Last frame (1.20) lasts the previous interval (0.2 s): the video ends at 1.40 s.
    ASSERT_EQ(f.count, 14) << ext;
    for (int k = 0; k < f.count; ++k) {
      const double t = 0.1 * k;
      int expect = 0;
      for (size_t i = 0; i < pts.size(); ++i)
        if (pts[i] <= t + 1e-9) expect = static_cast<int>(i);
      const double mean = cv::mean(frame_mat(f, k))[0];
      EXPECT_EQ(index_from_gray(mean), expect) << ext << " t=" << t << " mean=" << mean;
      EXPECT_NEAR(mean, gray_level(expect), 4.0) << ext << " t=" << t;
    }
  }
}

TEST(MediaVideo, RotationMetadataRotatesFrames) {
  TempDir dir;
  // Red block in the top-left quadrant of the stored 64x48 picture.
  auto paint = [](int, double, cv::Mat& rgb) {
    rgb.setTo(cv::Scalar(20, 20, 120));
    rgb(cv::Rect(0, 0, 32, 24)).setTo(cv::Scalar(220, 20, 20));
  };
  struct Case {
    int rotation;
    cv::Point red;  // where the block lands in the displayed 48x64 / 64x48 frame (a point inside it)
    cv::Point other;
  };
  for (const Case& c : {Case{90, {36, 16}, {12, 48}}, Case{180, {48, 36}, {16, 12}}, Case{270, {12, 48}, {36, 16}}}) {
    const std::string clip = dir.path() + "/rot" + std::to_string(c.rotation) + ".mp4";
    ClipSpec spec;
    spec.frames = 3;
    spec.rotation = c.rotation;
    spec.paint = paint;
    make_clip(clip, spec);
    EXPECT_EQ(media::probe(clip).video()->rotation, c.rotation);
    media::Frames f = media::decode_video(clip, every_frame());
    ASSERT_EQ(f.count, 3);
    const bool swap = c.rotation != 180;
    EXPECT_EQ(f.width, swap ? 48 : 64);
    EXPECT_EQ(f.height, swap ? 64 : 48);
    cv::Mat m = frame_mat(f, 0);
    EXPECT_GT(m.at<cv::Vec3b>(c.red)[0], 180) << "rotation " << c.rotation;
    EXPECT_LT(m.at<cv::Vec3b>(c.other)[0], 60) << "rotation " << c.rotation;
  }
}

TEST(MediaVideo, OddFrameSizeAndResizing) {
  TempDir dir;
  const std::string clip = dir.path() + "/odd.mkv";
  ClipSpec spec;
  spec.width = 161;
  spec.height = 97;
  spec.frames = 5;
  spec.codec = "ffv1";  // lossless, takes odd sizes (x264 4:2:0 does not)
  make_clip(clip, spec);
  media::Frames f = media::decode_video(clip, every_frame());
  ASSERT_EQ(f.count, 5);
  EXPECT_EQ(f.width, 161);
  EXPECT_EQ(f.height, 97);
  for (int i = 0; i < 5; ++i) {
    cv::Point2d c = bright_centroid(frame_mat(f, i)), e = square_center(i, 161, 97);
    EXPECT_NEAR(c.x, e.x, 0.6);
    EXPECT_NEAR(c.y, e.y, 0.6);
  }
  media::VideoDecodeOptions o = every_frame();
  o.short_side = 50;
  media::Frames s = media::decode_video(clip, o);
  EXPECT_EQ(s.width, 83);  // 161 * 50 / 97 = 82.99
  EXPECT_EQ(s.height, 50);
  o = every_frame();
  o.width = 80;
  s = media::decode_video(clip, o);
  EXPECT_EQ(s.width, 80);
  EXPECT_EQ(s.height, 48);  // 97 * 80 / 161 = 48.2
  o.height = 31;       // both given: exactly that
  s = media::decode_video(clip, o);
  EXPECT_EQ(s.width, 80);
  EXPECT_EQ(s.height, 31);
}

TEST(MediaVideo, CenterCropMatchesResizeThenCrop) {
  TempDir dir;
  const std::string clip = dir.path() + "/sq.mkv";
  ClipSpec spec;
  spec.frames = 4;
  spec.codec = "ffv1";
  make_clip(clip, spec);
  media::Frames full = media::decode_video(clip, every_frame());
  media::VideoDecodeOptions o = every_frame();
  o.short_side = 32;
  o.center_crop = true;
  media::Frames f = media::decode_video(clip, o);
  ASSERT_EQ(f.count, 4);
  EXPECT_EQ(f.width, 32);
  EXPECT_EQ(f.height, 32);
  for (int i = 0; i < f.count; ++i) {
    cv::Mat ref;
    cv::resize(frame_mat(full, i), ref, cv::Size(43, 32), 0, 0, cv::INTER_AREA);  // 64x48 -> short side 32
    ref = ref(cv::Rect(5, 0, 32, 32));
    cv::Mat diff;
    cv::absdiff(ref, frame_mat(f, i), diff);
    EXPECT_LT(cv::mean(diff)[0], 6.0) << "frame " << i;
  }
}

TEST(MediaVideo, PixelFormatsConvertToRgbAndGray) {
  TempDir dir;
  auto paint = [](int, double, cv::Mat& rgb) {
    const int w = rgb.cols / 2, h = rgb.rows / 2;
    rgb(cv::Rect(0, 0, w, h)).setTo(cv::Scalar(200, 30, 30));
    rgb(cv::Rect(w, 0, w, h)).setTo(cv::Scalar(30, 200, 30));
    rgb(cv::Rect(0, h, w, h)).setTo(cv::Scalar(30, 30, 200));
    rgb(cv::Rect(w, h, w, h)).setTo(cv::Scalar(220, 220, 220));
  };
  const cv::Vec3b want[4] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {220, 220, 220}};
  const cv::Point at[4] = {{16, 12}, {48, 12}, {16, 36}, {48, 36}};
  for (const std::string pf : {"yuv420p", "yuv444p", "bgr0", "yuv420p10le"}) {
    const std::string clip = dir.path() + "/pf_" + pf + ".mkv";
    ClipSpec spec;
    spec.frames = 2;
    spec.codec = "ffv1";
    spec.pix_fmt = pf;
    spec.paint = paint;
    make_clip(clip, spec);
    media::Frames f = media::decode_video(clip, every_frame());
    ASSERT_EQ(f.count, 2) << pf;
    cv::Mat m = frame_mat(f, 0);
    for (int q = 0; q < 4; ++q)
      for (int c = 0; c < 3; ++c) EXPECT_NEAR(m.at<cv::Vec3b>(at[q])[c], want[q][c], 6) << pf << " quadrant " << q;
    media::VideoDecodeOptions o = every_frame();
    o.gray = true;
    media::Frames g = media::decode_video(clip, o);
    ASSERT_EQ(g.channels, 1);
    cv::Mat gm = frame_mat(g, 0);
    for (int q = 0; q < 4; ++q) {
      const double luma = 0.299 * want[q][0] + 0.587 * want[q][1] + 0.114 * want[q][2];
      EXPECT_NEAR(gm.at<uint8_t>(at[q]), luma, 6) << pf << " quadrant " << q;
    }
  }
}

TEST(MediaVideo, StreamingCallbackMatchesCollectedFrames) {
  TempDir dir;
  const std::string clip = dir.path() + "/square.mp4";
  make_clip(clip, ClipSpec{});
  media::VideoDecodeOptions o = every_frame();
  o.fps = 7;
  o.short_side = 24;
  o.gray = true;
  media::Frames all = media::decode_video(clip, o);
  int64_t k = 0;
  int64_t n = media::decode_video_frames(clip, o, [&](const cv::Mat& m, double t) {
    ASSERT_TRUE(m.isContinuous());
    ASSERT_EQ(m.type(), CV_8UC1);
    ASSERT_LT(k, all.count);
    EXPECT_EQ(t, all.timestamps[k]);
    EXPECT_EQ(0, std::memcmp(m.data, all.frame(static_cast<int>(k)), m.total()));
    ++k;
  });
  EXPECT_EQ(n, all.count);
  EXPECT_EQ(k, all.count);
  EXPECT_EQ(all.count, 7);  // 1 s at 7 fps
}

TEST(MediaVideo, RejectsOversizedFramesAndBadOptions) {
  TempDir dir;
  const std::string clip = dir.path() + "/wide.mkv";
  ClipSpec spec;
  spec.width = media::kMaxFrameSide + 16;
  spec.height = 16;
  spec.frames = 1;
  spec.codec = "ffv1";
  spec.paint = paint_gray_level;
  make_clip(clip, spec);
  try {
    media::decode_video(clip, every_frame());
    FAIL() << "expected v2m::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16400x16"), std::string::npos) << e.what();
  }
  const std::string ok = dir.path() + "/ok.mp4";
  make_clip(ok, ClipSpec{});
  media::VideoDecodeOptions o = every_frame();
  o.width = 20000;
  EXPECT_THROW(media::decode_video(ok, o), Error);
  o = every_frame();
  o.fps = -1;
  EXPECT_THROW(media::decode_video(ok, o), Error);
  o = every_frame();
  o.start = 5;  // past the 1 s clip
  o.fps = 5;
  try {
    media::decode_video(ok, o);
    FAIL() << "expected v2m::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("requested range"), std::string::npos) << e.what();
  }
}
