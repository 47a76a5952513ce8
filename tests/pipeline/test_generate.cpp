// End-to-end generation with the random-init tiny model (configs/model/tiny.yaml):
// lengths, determinism, windowing over long videos, and clean failures.
#include <gtest/gtest.h>

#include <cmath>

#include "media/media_testutil.h"
#include "nn/musicgen_decoder.h"
#include "v2m/safetensors.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"
#include "v2m/runtime.h"
#include "v2m/v2m.h"

namespace {

const std::string kTiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";

std::string make_video(const TempDir& dir, const std::string& name, int frames, double fps) {
  v2m::testutil::ClipSpec spec;
  spec.width = 96;
  spec.height = 64;
  spec.frames = frames;
  spec.fps = fps;
  const std::string path = dir.path() + "/" + name;
  v2m::testutil::make_clip(path, spec);
  return path;
}

struct Shared {
  std::unique_ptr<v2m::Generator> gen = v2m::Generator::load(kTiny);
};
Shared& shared() {
  static Shared s;
  return s;
}

double rms(const v2m::AudioBuffer& a) {
  double s = 0;
  for (float x : a.samples) s += double(x) * x;
  return std::sqrt(s / std::max<size_t>(1, a.samples.size()));
}

}  // namespace

TEST(Generate, FiveSecondVideoGivesFiveSecondsOfAudio) {
  TempDir d;
  const auto video = make_video(d, "five.mp4", 50, 10);  // 5 s
  v2m::GenerateParams p;
  p.seed = 1;
  auto out = shared().gen->generate(video, p);
  ASSERT_EQ(out.size(), 1u);
  const auto& a = out[0];
  EXPECT_EQ(a.sample_rate, 16000);
  // The video's length within one codec frame (20 ms at 50 Hz).
  EXPECT_NEAR(double(a.frames()) / a.sample_rate, 5.0, 0.02);
  for (float x : a.samples) ASSERT_TRUE(std::isfinite(x));
  EXPECT_GT(rms(a), 1e-5);  // not silent
}

TEST(Generate, SameSeedSameAudioDifferentSeedDifferent) {
  TempDir d;
  const auto video = make_video(d, "v.mp4", 20, 10);
  v2m::GenerateParams p;
  p.seed = 7;
  auto a = shared().gen->generate(video, p);
  auto b = shared().gen->generate(video, p);
  p.seed = 8;
  auto c = shared().gen->generate(video, p);
  EXPECT_EQ(a[0].samples, b[0].samples);
  EXPECT_NE(a[0].samples, c[0].samples);
}

TEST(Generate, CachingCpuAllocatorLeavesTheMusicUnchangedAndIsEmptiedAfterwards) {
  TempDir d;
  const auto video = make_video(d, "v.mp4", 20, 10);
  v2m::GenerateParams p;
  p.seed = 5;
  auto before = shared().gen->generate(video, p);  // LibTorch's own allocator
  ASSERT_TRUE(v2m::use_caching_cpu_allocator());
  auto first = shared().gen->generate(video, p);
  auto second = shared().gen->generate(video, p);
  const auto stats = v2m::cpu_cache_stats();
  EXPECT_EQ(first[0].samples, before[0].samples);
  EXPECT_EQ(second[0].samples, before[0].samples);
  EXPECT_GT(stats.hits, 0);             // large activations did come back out of the cache
  EXPECT_EQ(stats.cached_bytes, 0u);    // and generate gave them back at the end
}

TEST(Generate, LongVideoSlidesWindowsAndKeepsItsLength) {
  TempDir d;
  // 75 s at 2 fps: tiny's window is 10 s with a 5 s stride -> 14 windows.
  const auto video = make_video(d, "long.mp4", 150, 2);
  v2m::GenerateParams p;
  p.seed = 3;
  p.top_k = 50;
  auto out = shared().gen->generate(video, p);
  EXPECT_NEAR(double(out[0].frames()) / out[0].sample_rate, 75.0, 0.02);
  // Every part of the output is produced (no silent gap where a window was skipped).
  const int64_t sec = out[0].sample_rate;
  for (int s = 0; s < 75; s += 5) {
    double e = 0;
    for (int64_t i = s * sec; i < (s + 1) * sec; ++i) e += std::fabs(out[0].samples[i]);
    EXPECT_GT(e, 0.0) << "second " << s;
  }
}

TEST(Generate, DurationAndVariations) {
  TempDir d;
  const auto video = make_video(d, "v.mp4", 40, 10);
  v2m::GenerateParams p;
  p.duration = 1.5;
  p.variations = 2;
  auto out = shared().gen->generate(video, p);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(double(out[0].frames()) / out[0].sample_rate, 1.5, 0.02);
  EXPECT_NE(out[0].samples, out[1].samples);
}

TEST(Generate, BadInputsAreOneLineErrors) {
  TempDir d;
  const std::string garbage = d.path() + "/garbage.mp4";
  write_text(garbage, "this is not a video at all");
  for (const std::string& path : {std::string("/nonexistent/v.mp4"), d.path(), garbage}) {
    try {
      shared().gen->generate(path, {});
      FAIL() << path;
    } catch (const v2m::Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST(Generate, ModelDirectoryWithMismatchedTensorIsRefused) {
  EXPECT_THROW(v2m::Generator::load("/nonexistent/model"), v2m::Error);
}

TEST(Generate, DecoderModellingFewerCodebooksThanTheCodecDecodesThePrefix) {
  // The decoder models the first 2 of the codec's 4 residual codebooks (a lower bandwidth).
  TempDir d;
  std::string y = read_text(kTiny);
  const std::string dec = "num_codebooks: 4";
  y.replace(y.find(dec), dec.size(), "num_codebooks: 2");  // the decoder section comes first
  write_text(d.path() + "/k2.yaml", y);
  auto gen = v2m::Generator::load(d.path() + "/k2.yaml");
  const auto video = make_video(d, "two.mp4", 20, 10);  // 2 s
  v2m::GenerateParams p;
  p.seed = 3;
  auto out = gen->generate(video, p);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(double(out[0].frames()) / out[0].sample_rate, 2.0, 0.02);
  for (float x : out[0].samples) ASSERT_TRUE(std::isfinite(x));
  EXPECT_GT(rms(out[0]), 1e-5);
  // More codebooks than the codec has is refused when the config is read.
  y.replace(y.find("num_codebooks: 2"), 16, "num_codebooks: 5");
  write_text(d.path() + "/k5.yaml", y);
  try {
    v2m::Generator::load(d.path() + "/k5.yaml");
    FAIL();
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("decoder.num_codebooks (5) > codec.num_codebooks (4)"), std::string::npos)
        << e.what();
  }
}

// `v2m export --dtype mixed`: the decoder's linears in bf16, everything else in fp32. With bf16
// weights the decoder takes them as mapped; the music is the same as from the fp32 directory
// converted at load (the same rounding of the same weights).
TEST(Generate, MixedExportLoadsAsTheFp32ModelConvertedToBf16) {
  const std::string cli = V2M_CLI_PATH;
  if (cli.empty()) GTEST_SKIP() << "v2m CLI not built";
  TempDir d;
  std::string out;
  ASSERT_EQ(run_capture(cli + " -q init " + kTiny + " -o " + d.path() + "/m", &out), 0) << out;
  ASSERT_EQ(run_capture(cli + " -q export " + d.path() + "/m -o " + d.path() + "/mix --dtype mixed", &out), 0) << out;
  const auto w = v2m::nn::load_safetensors(d.path() + "/mix/model.safetensors");
  int bf16 = 0;
  for (const auto& [k, t] : w) {
    if (!t.is_floating_point()) continue;
    const bool linear = k.rfind("decoder.", 0) == 0 && v2m::nn::musicgen_converted_weight(k.substr(8));
    EXPECT_EQ(t.scalar_type(), linear ? at::kBFloat16 : at::kFloat) << k;
    bf16 += linear;
  }
  EXPECT_GT(bf16, 10);
  const auto video = make_video(d, "v.mp4", 20, 10);
  v2m::GenerateParams p;
  p.seed = 3;
  auto a = v2m::Generator::load(d.path() + "/m", "cpu", false, "bf16")->generate(video, p);
  auto b = v2m::Generator::load(d.path() + "/mix", "cpu", false, "bf16")->generate(video, p);
  EXPECT_EQ(a[0].samples, b[0].samples);
  EXPECT_GT(rms(a[0]), 1e-5);
}
