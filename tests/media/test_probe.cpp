// probe(): stream headers, JSON and text rendering.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

TEST(MediaProbe, ReportsVideoAndAudioStreams) {
  TempDir dir;
  const std::string clip = dir.path() + "/av.mp4";
  ClipSpec spec;
  spec.frames = 50;
  spec.audio_rate = 32000;
  make_clip(clip, spec);
  media::ProbeInfo info = media::probe(clip);
  EXPECT_EQ(info.path, clip);
  EXPECT_NE(info.format.find("mp4"), std::string::npos);
  EXPECT_NEAR(info.duration, 2.0, 0.1);
  ASSERT_EQ(info.streams.size(), 2u);
  ASSERT_NE(info.video(), nullptr);
  ASSERT_NE(info.audio(), nullptr);
  const media::StreamInfo& v = *info.video();
  EXPECT_EQ(v.type, "video");
  EXPECT_EQ(v.codec, video_encoder() == "libx264" ? "h264" : "mpeg4");
  EXPECT_EQ(v.width, 64);
  EXPECT_EQ(v.height, 48);
  EXPECT_NEAR(v.fps, 25.0, 1e-6);
  EXPECT_EQ(v.nb_frames, 50);
  EXPECT_NEAR(v.duration, 2.0, 1e-6);
  EXPECT_EQ(v.rotation, 0);
  const media::StreamInfo& a = *info.audio();
  EXPECT_EQ(a.type, "audio");
  EXPECT_EQ(a.codec, "aac");
  EXPECT_EQ(a.sample_rate, 32000);
  EXPECT_EQ(a.channels, 1);
  EXPECT_NEAR(a.duration, 2.0, 0.05);
}

TEST(MediaProbe, MatroskaStreamDurationAndAudioOnlyFile) {
  TempDir dir;
  const std::string clip = dir.path() + "/v.mkv";
  ClipSpec spec;
  spec.frames = 50;
  make_clip(clip, spec);
  media::ProbeInfo info = media::probe(clip);
  ASSERT_NE(info.video(), nullptr);
  EXPECT_EQ(info.audio(), nullptr);
  EXPECT_NEAR(info.video()->duration, 2.0, 0.05);  // from the DURATION tag

  const std::string wav = dir.path() + "/a.wav";
  make_audio_file(wav, sine(44100, 2, 0.5, 440, 0.3));
  media::ProbeInfo ai = media::probe(wav);
  EXPECT_EQ(ai.video(), nullptr);
  ASSERT_NE(ai.audio(), nullptr);
  EXPECT_EQ(ai.audio()->sample_rate, 44100);
  EXPECT_EQ(ai.audio()->channels, 2);
  EXPECT_NEAR(ai.duration, 0.5, 0.01);
}

TEST(MediaProbe, JsonAndTextRendering) {
  TempDir dir;
  const std::string clip = dir.path() + "/av.mp4";
  ClipSpec spec;
  spec.rotation = 90;
  spec.audio_rate = 44100;
  spec.audio_channels = 2;
  make_clip(clip, spec);
  media::ProbeInfo info = media::probe(clip);
  nlohmann::json j = nlohmann::json::parse(media::to_json(info));
  EXPECT_EQ(j["path"], clip);
  ASSERT_EQ(j["streams"].size(), 2u);
  const auto& vs = j["streams"][info.best_video];
  EXPECT_EQ(vs["type"], "video");
  EXPECT_EQ(vs["width"], 64);
  EXPECT_EQ(vs["height"], 48);
  EXPECT_EQ(vs["rotation"], 90);
  const auto& as = j["streams"][info.best_audio];
  EXPECT_EQ(as["type"], "audio");
  EXPECT_EQ(as["sample_rate"], 44100);
  EXPECT_EQ(as["channels"], 2);
  EXPECT_FALSE(as.contains("width"));
  // Round-trips through text JSON (what `v2m probe --json` prints).
  EXPECT_EQ(nlohmann::json::parse(j.dump()), j);

  const std::string text = media::to_text(info);
  EXPECT_NE(text.find("video"), std::string::npos) << text;
  EXPECT_NE(text.find("64x48 (rotation 90)"), std::string::npos) << text;
  EXPECT_NE(text.find("44100 Hz, 2 ch"), std::string::npos) << text;
  EXPECT_EQ(text.back(), '\n');
}
