// The `v2m generate`, `init` and `info` commands as a user runs them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/media.h"

namespace {

const std::string kCli = V2M_CLI_PATH;
const std::string kTiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";

std::string make_video(const TempDir& dir, int frames = 30, double fps = 10) {
  v2m::testutil::ClipSpec spec;
  spec.width = 96;
  spec.height = 64;
  spec.frames = frames;
  spec.fps = fps;
  const std::string path = dir.path() + "/in.mp4";
  v2m::testutil::make_clip(path, spec);
  return path;
}

int v2m_run(const std::string& args, std::string* out) { return run_capture(kCli + " -q " + args, out); }

}  // namespace

TEST(CliGenerate, WritesWavOfVideoLengthAndMuxes) {
  TempDir d;
  const auto video = make_video(d);
  std::string out;
  const std::string wav = d.path() + "/out.wav", mp4 = d.path() + "/muxed.mp4";
  ASSERT_EQ(v2m_run("generate " + video + " -o " + wav + " --model " + kTiny + " --seed 2 --mux " + mp4, &out), 0) << out;
  auto a = v2m::media::read_wav(wav);
  EXPECT_EQ(a.sample_rate, 16000);
  EXPECT_NEAR(double(a.frames()) / a.sample_rate, 3.0, 0.02);
  auto info = v2m::media::probe(mp4);
  ASSERT_NE(info.video(), nullptr);
  ASSERT_NE(info.audio(), nullptr);
  EXPECT_NEAR(info.audio()->duration, 3.0, 0.1);
}

TEST(CliGenerate, SameSeedSameFileDifferentSeedDifferentFile) {
  TempDir d;
  const auto video = make_video(d, 10);
  std::string out;
  for (auto [name, seed] : {std::pair<const char*, int>{"a", 5}, {"b", 5}, {"c", 6}})
    ASSERT_EQ(v2m_run("generate " + video + " -o " + d.path() + "/" + name + ".wav --model " + kTiny +
                          " --seed " + std::to_string(seed), &out), 0) << out;
  EXPECT_EQ(read_text(d.path() + "/a.wav"), read_text(d.path() + "/b.wav"));
  EXPECT_NE(read_text(d.path() + "/a.wav"), read_text(d.path() + "/c.wav"));
}

TEST(CliGenerate, BadInputExitsOneWithOneLineAndNoOutput) {
  TempDir d;
  const std::string garbage = d.path() + "/bad.mp4";
  write_text(garbage, "not a video");
  for (const std::string& in : {garbage, d.path() + "/missing.mp4", d.path()}) {
    std::string out;
    const std::string wav = d.path() + "/never.wav";
    EXPECT_EQ(v2m_run("generate " + in + " -o " + wav + " --model " + kTiny, &out), 1) << out;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
    EXPECT_NE(out.find(in), std::string::npos) << out;
    EXPECT_FALSE(file_exists(wav));
  }
  std::string out;
  EXPECT_EQ(v2m_run("generate", &out), 2);
  EXPECT_EQ(v2m_run("generate x.mp4 --top-p 3 -o y.wav", &out), 2);
}

TEST(CliGenerate, EmbeddedDefaultModelGeneratesWithoutModelFlag) {
  const std::string dir = std::string(V2M_SOURCE_DIR) + "/models/v2m-tiny";
  if (!file_exists(dir + "/model.safetensors")) GTEST_SKIP() << "no " << dir << " in this checkout";
  // Shipped in the repository: small, fp16, and every tensor validated by a strict load.
  EXPECT_LE(std::ifstream(dir + "/model.safetensors", std::ios::binary | std::ios::ate).tellg(), 40 << 20);
  std::string out;
  ASSERT_EQ(run_capture("(" + kCli + " -q info " + dir + " --json 2>/dev/null)", &out), 0) << out;
  const auto info = nlohmann::json::parse(out);
  EXPECT_EQ(info["name"], "v2m-tiny") << out;
  TempDir d;
  const auto video = make_video(d);
  const std::string wav = d.path() + "/default.wav";
  ASSERT_EQ(run_capture("env -u V2M_MODEL " + kCli + " -q generate " + video + " -o " + wav + " --seed 1", &out), 0) << out;
  auto a = v2m::media::read_wav(wav);
  EXPECT_EQ(a.sample_rate, 16000);
  EXPECT_NEAR(double(a.frames()) / a.sample_rate, 3.0, 0.02);
  double energy = 0;
  for (float x : a.samples) energy += double(x) * x;
  EXPECT_GT(energy / double(a.samples.size()), 1e-6) << "the trained codec decoded silence";
  // A binary built (or copied) outside the source tree still finds it (BUILD_DIR=/elsewhere).
  TempDir bin;
  ASSERT_EQ(run_capture("cp " + kCli + " " + bin.path() + "/v2m", &out), 0) << out;
  const std::string wav2 = d.path() + "/elsewhere.wav";
  ASSERT_EQ(run_capture("env -u V2M_MODEL " + bin.path() + "/v2m -q generate " + video + " -o " + wav2 + " --seed 1", &out), 0)
      << out;
  EXPECT_EQ(v2m::media::read_wav(wav2).samples, a.samples);
}

TEST(CliGenerate, ModelDirectoryRoundTripAndMismatchedTensor) {
  TempDir d;
  const std::string model = d.path() + "/m";
  std::string out;
  ASSERT_EQ(v2m_run("init " + kTiny + " -o " + model + " --dtype fp16", &out), 0) << out;
  ASSERT_EQ(v2m_run("info " + model + " --json", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_GT(j["parameters"]["total"].get<int64_t>(), 0);
  EXPECT_EQ(j["parameters"]["total"].get<int64_t>(),
            j["parameters"]["clip"].get<int64_t>() + j["parameters"]["fusion"].get<int64_t>() +
                j["parameters"]["decoder"].get<int64_t>() + j["parameters"]["codec"].get<int64_t>());
  // Change the config under the weights: the load names the tensor and both shapes.
  std::string cfg = read_text(model + "/config.yaml");
  const auto pos = cfg.find("ffn_dim: 128");
  ASSERT_NE(pos, std::string::npos);
  cfg.replace(pos, 12, "ffn_dim: 96");
  write_text(model + "/config.yaml", cfg);
  const auto video = make_video(d, 10);
  const std::string wav = d.path() + "/o.wav";
  EXPECT_EQ(v2m_run("generate " + video + " -o " + wav + " --model " + model, &out), 1);
  EXPECT_NE(out.find("fc1.weight"), std::string::npos) << out;
  EXPECT_NE(out.find("128"), std::string::npos) << out;
  EXPECT_NE(out.find("96"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(wav));
}
