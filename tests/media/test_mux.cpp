// mux(): video copied bit for bit, AAC music trimmed to the video, atomic output.
#include <gtest/gtest.h>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

TEST(MediaMux, MuxedFileHasBothStreamsTrimmedToVideo) {
  TempDir dir;
  const std::string video = dir.path() + "/v.mp4";
  ClipSpec spec;
  spec.frames = 50;  // 2 s
  spec.audio_rate = 44100;  // the input's own audio is dropped
  spec.tone_hz = 1000;
  make_clip(video, spec);
  const std::string out = dir.path() + "/out.mp4";
  media::mux(video, sine(32000, 1, 3.0, 440.0, 0.5), out);
  EXPECT_EQ(count_files(dir.path()), 2);

  media::ProbeInfo info = media::probe(out);
  ASSERT_EQ(info.streams.size(), 2u);
  ASSERT_NE(info.video(), nullptr);
  ASSERT_NE(info.audio(), nullptr);
  EXPECT_EQ(info.video()->codec, media::probe(video).video()->codec);
  EXPECT_NEAR(info.video()->duration, 2.0, 1e-3);
  EXPECT_EQ(info.audio()->codec, "aac");
  EXPECT_EQ(info.audio()->sample_rate, 32000);
  EXPECT_NEAR(info.audio()->duration, 2.0, 0.04);  // trimmed from 3 s
  EXPECT_NEAR(info.duration, 2.0, 0.05);

  media::Audio back = media::decode_audio(out, 32000, 1);
  EXPECT_NEAR(back.frames(), 64000, 1100);
  const int64_t n = back.frames();
  EXPECT_NEAR(zero_crossing_hz(back.samples.data() + n / 10, n * 8 / 10, 32000), 440.0, 1.0);
}

TEST(MediaMux, VideoStreamIsCopiedNotReencoded) {
  TempDir dir;
  const std::string video = dir.path() + "/v.mp4";
  make_clip(video, ClipSpec{});
  media::Frames a = media::decode_video(video, every_frame());
  const std::string out = dir.path() + "/out.mp4";
  media::mux(video, sine(48000, 2, 0.5, 440.0, 0.5), out);  // shorter audio is kept as is
  media::Frames b = media::decode_video(out, every_frame());
  ASSERT_EQ(a.count, b.count);
  EXPECT_EQ(a.timestamps, b.timestamps);
  EXPECT_EQ(a.data, b.data);  // bit-identical pictures: packets were copied
  media::ProbeInfo info = media::probe(out);
  ASSERT_NE(info.audio(), nullptr);
  EXPECT_EQ(info.audio()->channels, 2);
  EXPECT_NEAR(media::decode_audio(out).frames(), 24000, 1100);

  // Matroska has no AAC priming signal: the muxer shifts both streams by the encoder delay
  // (1024 samples), keeping them in sync; the pictures are still the same packets.
  const std::string mkv = dir.path() + "/out.mkv";
  media::mux(video, sine(48000, 2, 0.5, 440.0, 0.5), mkv);
  media::Frames c = media::decode_video(mkv, every_frame());
  ASSERT_EQ(a.count, c.count);
  EXPECT_EQ(a.data, c.data);
  for (int i = 0; i < a.count; ++i) EXPECT_NEAR(c.timestamps[i] - a.timestamps[i], 1024.0 / 48000, 1.5e-3);
}

TEST(MediaMux, KeepsRotationAndResamplesOddRates) {
  TempDir dir;
  const std::string video = dir.path() + "/r.mp4";
  ClipSpec spec;
  spec.rotation = 90;
  make_clip(video, spec);
  const std::string out = dir.path() + "/out.mp4";
  media::mux(video, sine(37000, 1, 1.0, 440.0, 0.5), out);  // 37 kHz is no AAC rate
  media::ProbeInfo info = media::probe(out);
  EXPECT_EQ(info.video()->rotation, 90);
  EXPECT_EQ(info.audio()->sample_rate, 48000);
  media::Frames f = media::decode_video(out, every_frame());
  EXPECT_EQ(f.width, 48);
  EXPECT_EQ(f.height, 64);
}

TEST(MediaMux, FailuresLeaveNoOutput) {
  TempDir dir;
  const std::string audio_only = dir.path() + "/a.wav";
  make_audio_file(audio_only, sine(32000, 1, 0.5, 440.0, 0.5));
  const std::string video = dir.path() + "/v.mp4";
  make_clip(video, ClipSpec{});
  const std::string out = dir.path() + "/out.mp4";
  write_text(out, "old");
  try {
    media::mux(audio_only, sine(32000, 1, 1.0, 440.0, 0.5), out);
    FAIL() << "expected v2m::Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot mux: " + audio_only + ": no video stream");
  }
  EXPECT_EQ(read_text(out), "old");  // untouched
  EXPECT_THROW(media::mux(video, sine(32000, 1, 1.0, 440.0, 0.5), dir.path() + "/out.avi"), Error);
  EXPECT_THROW(media::mux(video, media::Audio{}, dir.path() + "/o2.mp4"), Error);
  EXPECT_THROW(media::mux(dir.path() + "/missing.mp4", sine(32000, 1, 1.0, 440.0, 0.5), dir.path() + "/o3.mp4"),
               Error);
  EXPECT_EQ(count_files(dir.path()), 3);  // a.wav, v.mp4, out.mp4
}
