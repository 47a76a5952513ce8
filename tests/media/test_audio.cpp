// Audio decode + resample: frequency and level survive, ranges are sample-exact.
#include <gtest/gtest.h>

#include <cmath>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

namespace {
// Middle part of a channel: resampler edges and codec priming stay out of the measurement.
double mid_hz(const media::Audio& a, int c = 0) {
  const int64_t n = a.frames(), skip = n / 10;
  return zero_crossing_hz(a.channel(c) + skip, n - 2 * skip, a.sample_rate);
}
double mid_rms(const media::Audio& a, int c = 0) {
  const int64_t n = a.frames(), skip = n / 10;
  return rms(a.channel(c) + skip, n - 2 * skip);
}
}  // namespace

TEST(MediaAudio, ResampledSineKeepsFrequencyAndLevel) {
  TempDir dir;
  const std::string wav = dir.path() + "/tone.wav";
  make_audio_file(wav, sine(44100, 1, 2.0, 1000.0, 0.5));
  media::Audio a = media::decode_audio(wav, 32000, 1);
  EXPECT_EQ(a.sample_rate, 32000);
  EXPECT_EQ(a.channels, 1);
  EXPECT_NEAR(a.frames(), 64000, 2);
  EXPECT_NEAR(mid_hz(a), 1000.0, 1.0);
  EXPECT_NEAR(mid_rms(a), 0.5 / std::sqrt(2.0), 0.05 * 0.5 / std::sqrt(2.0));
}

TEST(MediaAudio, AacTrackOfVideoDecodes) {
  TempDir dir;
  const std::string clip = dir.path() + "/av.mp4";
  ClipSpec spec;
  spec.frames = 50;
  spec.audio_rate = 44100;
  spec.tone_hz = 1000;
  spec.tone_amp = 0.4;
  make_clip(clip, spec);
  media::Audio a = media::decode_audio(clip, 32000, 1);
  EXPECT_NEAR(a.frames(), 64000, 1100);  // AAC frames are 1024 samples
  EXPECT_NEAR(mid_hz(a), 1000.0, 1.0);
  EXPECT_NEAR(mid_rms(a), 0.4 / std::sqrt(2.0), 0.05 * 0.4 / std::sqrt(2.0));
}

TEST(MediaAudio, StartAndDurationAreSampleExact) {
  TempDir dir;
  const std::string wav = dir.path() + "/tone.wav";
  make_audio_file(wav, sine(32000, 1, 2.0, 440.0, 0.5));
  media::Audio a = media::decode_audio(wav, 32000, 1, 0.5, 1.0);
  ASSERT_EQ(a.frames(), 32000);
  // Sample n is the tone at 0.5 s + n / 32000 (to PCM16 precision).
  for (int n = 0; n < 32000; n += 997)
    EXPECT_NEAR(a.samples[n], 0.5 * std::sin(2 * M_PI * 440.0 * (0.5 + n / 32000.0)), 1e-4) << n;
  // Past the end: zero-padded to the requested length.
  media::Audio tail = media::decode_audio(wav, 32000, 1, 1.5, 1.0);
  ASSERT_EQ(tail.frames(), 32000);
  EXPECT_GT(rms(tail.samples.data(), 16000), 0.3);
  EXPECT_EQ(rms(tail.samples.data() + 16100, 15900), 0.0);

  // Through the resampler (44.1 kHz source): no delay, the same time line.
  const std::string hi = dir.path() + "/tone44.wav";
  make_audio_file(hi, sine(44100, 1, 2.0, 440.0, 0.5));
  media::Audio r = media::decode_audio(hi, 32000, 1, 0.5, 1.0);
  ASSERT_EQ(r.frames(), 32000);
  for (int n = 64; n < 31936; n += 331)  // skip the filter's edges
    EXPECT_NEAR(r.samples[n], 0.5 * std::sin(2 * M_PI * 440.0 * (0.5 + n / 32000.0)), 2e-3) << n;
}

TEST(MediaAudio, ChannelMixing) {
  TempDir dir;
  const std::string stereo = dir.path() + "/stereo.wav";
  media::Audio s = sine(32000, 2, 0.5, 440.0, 0.5);
  for (int64_t i = 0; i < s.frames(); ++i) s.channel(1)[i] *= 0.5f;  // right at half level
  make_audio_file(stereo, s);
  media::Audio mono = media::decode_audio(stereo, 0, 1);
  ASSERT_EQ(mono.channels, 1);
  ASSERT_EQ(mono.frames(), s.frames());
  for (int64_t i = 0; i < mono.frames(); i += 101)  // mono is the mean of the channels
    EXPECT_NEAR(mono.samples[i], 0.75f * s.channel(0)[i], 1e-4) << i;

  const std::string m = dir.path() + "/mono.wav";
  make_audio_file(m, sine(32000, 1, 0.5, 440.0, 0.5));
  media::Audio up = media::decode_audio(m, 0, 2);
  ASSERT_EQ(up.channels, 2);
  for (int64_t i = 0; i < up.frames(); i += 101) EXPECT_EQ(up.channel(0)[i], up.channel(1)[i]);
  EXPECT_NEAR(rms(up.channel(1), up.frames()), 0.5 / std::sqrt(2.0), 1e-3);  // unity copy
}

TEST(MediaAudio, ResampleBuffer) {
  media::Audio in = sine(48000, 2, 1.0, 300.0, 0.5);
  media::Audio out = media::resample(in, 16000, 1);
  EXPECT_EQ(out.sample_rate, 16000);
  EXPECT_EQ(out.channels, 1);
  EXPECT_EQ(out.frames(), 16000);
  EXPECT_NEAR(mid_hz(out), 300.0, 0.5);
  EXPECT_NEAR(mid_rms(out), 0.5 / std::sqrt(2.0), 0.01);
  // No change asked: identical copy.
  media::Audio same = media::resample(in, 48000, 2);
  EXPECT_EQ(same.samples, in.samples);
  media::Audio bad;
  EXPECT_THROW(media::resample(bad, 16000, 1), Error);
}

TEST(MediaAudio, MissingAudioStreamIsAnError) {
  TempDir dir;
  const std::string clip = dir.path() + "/v.mp4";
  make_clip(clip, ClipSpec{});
  try {
    media::decode_audio(clip, 32000, 1);
    FAIL() << "expected v2m::Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot decode audio: " + clip + ": no audio stream");
  }
  EXPECT_THROW(media::decode_audio(clip, 5, 1), Error);  // absurd rate
}
