// Resource limits and corrupt weights as a user meets them through `v2m generate`:
// --max-duration refuses long requests (and videos whose container claims hours), NaN
// weights are caught at load with --check-weights and as NaN logits without it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>

#include "media/media_testutil.h"
#include "test_util.h"

namespace {

const std::string kCli = V2M_CLI_PATH;
const std::string kTiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";

int v2m_run(const std::string& args, std::string* out) { return run_capture(kCli + " -q " + args, out); }

std::string make_video(const TempDir& dir, int frames, const std::string& name = "in.mkv") {
  v2m::testutil::ClipSpec spec;
  spec.width = 64;
  spec.height = 48;
  spec.frames = frames;
  spec.fps = 10;
  const std::string path = dir.path() + "/" + name;
  v2m::testutil::make_clip(path, spec);
  return path;
}

// Overwrites every F32 tensor whose name contains `part` with NaN; returns how many.
int poison(const std::string& weights, const std::string& part) {
  std::string bytes = read_text(weights);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | static_cast<uint8_t>(bytes[i]);
  const auto header = nlohmann::json::parse(bytes.substr(8, hlen));
  int n = 0;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key().find(part) == std::string::npos || it.value()["dtype"] != "F32") continue;
    const uint64_t b = it.value()["data_offsets"][0], e = it.value()["data_offsets"][1];
    for (uint64_t o = 8 + hlen + b; o + 4 <= 8 + hlen + e; o += 4) std::memcpy(&bytes[o], &nan, 4);
    ++n;
  }
  write_text(weights, bytes);
  return n;
}

}  // namespace

TEST(CliLimits, DurationOverMaxDurationIsRefusedWithoutOutput) {
  TempDir d;
  const auto video = make_video(d, 10);
  const std::string wav = d.path() + "/out.wav";
  std::string out;
  EXPECT_NE(v2m_run("generate " + video + " -o " + wav + " --model " + kTiny + " --duration 700", &out), 0);
  EXPECT_NE(out.find("--max-duration limit of 600"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(wav));
  // The video's own length counts when no --duration is given.
  const auto longer = make_video(d, 30, "long.mkv");  // 3 s
  EXPECT_NE(v2m_run("generate " + longer + " -o " + wav + " --model " + kTiny + " --max-duration 2", &out), 0);
  EXPECT_NE(out.find("over the 2 s limit"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_FALSE(file_exists(wav));
  // Under the limit it generates.
  ASSERT_EQ(v2m_run("generate " + longer + " -o " + wav + " --model " + kTiny + " --max-duration 2 --duration 0.5", &out),
            0)
      << out;
  EXPECT_TRUE(file_exists(wav));
}

TEST(CliLimits, NanWeightsAreCaughtAtLoadOrAsNanLogits) {
  TempDir d;
  const std::string model = d.path() + "/model";
  std::string out;
  ASSERT_EQ(v2m_run("init " + kTiny + " -o " + model, &out), 0) << out;
  ASSERT_GT(poison(model + "/model.safetensors", "lm_heads"), 0) << "no lm_heads tensor to poison";
  const auto video = make_video(d, 10);
  const std::string wav = d.path() + "/out.wav";
  EXPECT_NE(v2m_run("generate " + video + " -o " + wav + " --model " + model + " --check-weights", &out), 0);
  EXPECT_NE(out.find("contains NaN or Inf"), std::string::npos) << out;
  EXPECT_NE(out.find("lm_heads"), std::string::npos) << out;
  EXPECT_NE(v2m_run("generate " + video + " -o " + wav + " --model " + model, &out), 0);
  EXPECT_NE(out.find("NaN/Inf logits at step 1"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(wav));
}
