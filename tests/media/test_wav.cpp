// WAV (hand-written RIFF) and FLAC writers: bit-exact round trips, strict reading, atomicity.
#include <gtest/gtest.h>

#include <random>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

namespace {

// Random samples on the PCM16 grid k / 32768, plus the extremes.
media::Audio pcm16_grid_audio(int channels, int64_t frames, int rate) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> d(-32768, 32767);
  media::Audio a;
  a.sample_rate = rate;
  a.channels = channels;
  a.samples.resize(static_cast<size_t>(channels) * frames);
  for (auto& s : a.samples) s = d(rng) / 32768.0f;
  a.samples[0] = -1.0f;
  a.samples[1] = 32767 / 32768.0f;
  return a;
}

}  // namespace

TEST(MediaWav, Pcm16RoundTripIsBitExact) {
  TempDir dir;
  const std::string path = dir.path() + "/a.wav";
  media::Audio a = pcm16_grid_audio(2, 12345, 32000);
  media::write_wav(path, a, media::WavFormat::PCM16);
  EXPECT_EQ(read_text(path).size(), 44u + 12345u * 4u);
  media::Audio b = media::read_wav(path);
  EXPECT_EQ(b.sample_rate, 32000);
  EXPECT_EQ(b.channels, 2);
  EXPECT_EQ(b.samples, a.samples);
  EXPECT_EQ(count_files(dir.path()), 1);  // no temp file left
  // libav parses our header and agrees sample for sample.
  media::Audio c = media::decode_audio(path);
  EXPECT_EQ(c.samples, a.samples);
}

TEST(MediaWav, Float32RoundTripIsBitExact) {
  TempDir dir;
  const std::string path = dir.path() + "/f.wav";
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.7f);  // includes values beyond [-1, 1]
  media::Audio a;
  a.sample_rate = 48000;
  a.channels = 3;
  a.samples.resize(3 * 1000);
  for (auto& s : a.samples) s = d(rng);
  media::write_wav(path, a, media::WavFormat::Float32);
  media::Audio b = media::read_wav(path);
  EXPECT_EQ(b.channels, 3);
  EXPECT_EQ(b.samples, a.samples);
  media::Audio c = media::decode_audio(path);
  EXPECT_EQ(c.samples, a.samples);
}

TEST(MediaWav, QuantisesAndClipsLikePcm16) {
  TempDir dir;
  const std::string path = dir.path() + "/q.wav";
  media::Audio a;
  a.sample_rate = 8000;
  a.channels = 1;
  a.samples = {0.0f, 1.5f, -1.5f, 0.25f, 1.0f / 65536.0f * 3.0f};
  media::write_wav(path, a);
  media::Audio b = media::read_wav(path);
  EXPECT_EQ(b.samples, (std::vector<float>{0.0f, 32767 / 32768.0f, -1.0f, 0.25f, 2 / 32768.0f}));
}

TEST(MediaWav, ReadsLibavWrittenWav) {
  TempDir dir;
  const std::string path = dir.path() + "/l.wav";
  media::Audio a = pcm16_grid_audio(1, 4000, 22050);
  make_audio_file(path, a);
  media::Audio b = media::read_wav(path);
  EXPECT_EQ(b.sample_rate, 22050);
  EXPECT_EQ(b.samples, a.samples);
}

TEST(MediaWav, RejectsBadFilesAndLeavesNothingOnFailure) {
  TempDir dir;
  const std::string text = dir.path() + "/t.wav";
  write_text(text, "this is not a wave file at all");
  EXPECT_THROW(media::read_wav(text), Error);
  EXPECT_THROW(media::read_wav(dir.path() + "/missing.wav"), Error);

  const std::string good = dir.path() + "/g.wav";
  media::write_wav(good, pcm16_grid_audio(1, 1000, 16000));
  const std::string bytes = read_text(good);
  const std::string cut = dir.path() + "/cut.wav";
  write_text(cut, bytes.substr(0, bytes.size() / 2));
  try {
    media::read_wav(cut);
    FAIL() << "expected v2m::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }

  media::Audio bad;  // no rate, no channels
  EXPECT_THROW(media::write_wav(dir.path() + "/bad.wav", bad), Error);
  EXPECT_FALSE(file_exists(dir.path() + "/bad.wav"));
  EXPECT_THROW(media::write_wav(dir.path() + "/no/such/dir/x.wav", pcm16_grid_audio(1, 10, 8000)), Error);
  EXPECT_EQ(count_files(dir.path()), 3);  // t.wav, g.wav, cut.wav
}

TEST(MediaWav, FlacDecodesBackEqualForPcm16Data) {
  TempDir dir;
  const std::string path = dir.path() + "/a.flac";
  media::Audio a = pcm16_grid_audio(2, 20000, 32000);
  media::write_flac(path, a);
  EXPECT_EQ(count_files(dir.path()), 1);
  media::ProbeInfo info = media::probe(path);
  ASSERT_NE(info.audio(), nullptr);
  EXPECT_EQ(info.audio()->codec, "flac");
  media::Audio b = media::decode_audio(path);
  EXPECT_EQ(b.sample_rate, 32000);
  EXPECT_EQ(b.channels, 2);
  EXPECT_EQ(b.samples, a.samples);
}

TEST(MediaWav, WriteAudioPicksFormatByExtension) {
  TempDir dir;
  media::Audio a = pcm16_grid_audio(1, 3000, 32000);
  media::write_audio(dir.path() + "/x.WAV", a, media::WavFormat::Float32);
  EXPECT_EQ(read_text(dir.path() + "/x.WAV").size(), 58u + 3000u * 4u);  // float: fmt 18 + fact 12
  media::write_audio(dir.path() + "/x.flac", a);
  EXPECT_EQ(media::decode_audio(dir.path() + "/x.flac").samples, a.samples);
  EXPECT_THROW(media::write_audio(dir.path() + "/x.mp3", a), Error);
  EXPECT_EQ(count_files(dir.path()), 2);
}
