// `v2m eval` end to end: tiny clips, a manifest and run config, a random-init tiny model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>

#include "eval/panns.h"
#include "eval/vggish.h"
#include "eval_testutil.h"
#include "media/media_testutil.h"
#include "nn/state_dict.h"
#include "v2m/media.h"
#include "test_util.h"

namespace {

const std::string kCli = V2M_CLI_PATH;
const std::string kTiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";

int v2m_run(const std::string& args, std::string* out) { return run_capture(kCli + " -q " + args, out); }

// Three 2 s clips (moving square, a tone each) + manifest + run config; returns the config.
// distinct_videos: each clip's video also carries its own colour block (else only the tone differs).
std::string make_dataset(const TempDir& d, const std::string& vggish = "", const std::string& tagger = "",
                         bool distinct_videos = false) {
  std::string manifest;
  const double tones[3] = {440, 550, 660};
  for (int i = 0; i < 3; ++i) {
    v2m::testutil::ClipSpec spec;
    spec.width = 96;
    spec.height = 64;
    spec.frames = 50;
    spec.fps = 25;
    spec.audio_rate = 16000;
    spec.tone_hz = tones[i];
    if (distinct_videos)
      spec.paint = [i](int index, double t, cv::Mat& rgb) {
        v2m::testutil::paint_square(index, t, rgb);
        rgb(cv::Rect(0, 0, rgb.cols / 2, rgb.rows / 2)).setTo(cv::Scalar(40 + 90 * i, 220 - 90 * i, 60 + 40 * i));
      };
    const std::string name = "clip" + std::to_string(i) + ".mkv";
    v2m::testutil::make_clip(d.path() + "/" + name, spec);
    nlohmann::json j = {{"id", "c" + std::to_string(i)}, {"video", name}, {"start", 0.0}, {"duration", 2.0}, {"split", "test"}};
    if (i == 0)
      j["labels"] = {{"bpm", 120.0}, {"key", "A"}, {"key_pc", 9}, {"mode", "major"}, {"program", 0},
                     {"family", "piano"}, {"beats", {0.0, 0.5, 1.0, 1.5}}, {"cuts", {1.0}}};
    manifest += j.dump() + "\n";
  }
  write_text(d.path() + "/manifest.jsonl", manifest);
  const std::string cfg = d.path() + "/run.yaml";
  write_text(cfg, "name: tiny-eval\nmodel: " + kTiny + "\nout_dir: " + d.path() + "/run\n" +
                      "data:\n  manifest: " + d.path() + "/manifest.jsonl\n" +
                      "eval:\n  vggish: " + (vggish.empty() ? d.path() + "/no_vggish.safetensors" : vggish) +
                      "\n  tagger: " + (tagger.empty() ? d.path() + "/no_cnn14.safetensors" : tagger) +
                      "\n  av_short_side: 64\n");
  return cfg;
}

}  // namespace

TEST(CliEval, EndToEndWritesTablesAndNamesMissingWeights) {
  TempDir d;
  const std::string cfg = make_dataset(d);
  const std::string model = d.path() + "/model";
  std::string out;
  ASSERT_EQ(v2m_run("init " + kTiny + " -o " + model, &out), 0) << out;
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --split test --model " + model + " --metrics chroma,av_align,fad", &out), 0)
      << out;
  const std::string ev = d.path() + "/run/eval-test";
  EXPECT_NE(out.find("| Model | Params | Training Samples | FAD"), std::string::npos) << out;
  for (const char* f : {"/results.json", "/per_clip.csv", "/table.md", "/generated/c0.wav", "/generated/c2.wav"})
    EXPECT_TRUE(file_exists(ev + f)) << f;

  auto j = nlohmann::json::parse(read_text(ev + "/results.json"));
  EXPECT_EQ(j["clips"], 3);
  EXPECT_GT(j["model"]["params"].get<int64_t>(), 0);
  EXPECT_EQ(j["metrics"]["fad"]["status"], "not computed");
  EXPECT_EQ(j["metrics"]["fad"]["value"], "not computed");
  const std::string reason = j["metrics"]["fad"]["reason"];
  EXPECT_NE(reason.find(d.path() + "/no_vggish.safetensors"), std::string::npos) << reason;
  EXPECT_NE(reason.find("scripts/convert_vggish.py"), std::string::npos) << reason;
  EXPECT_FALSE(j["metrics"].contains("kld_pq"));  // not requested
  const double chroma = j["metrics"]["chroma"]["value"];
  EXPECT_GE(chroma, -1.0);
  EXPECT_LE(chroma, 1.0);
  EXPECT_EQ(j["metrics"]["chroma"]["direction"], "higher is better");
  ASSERT_TRUE(j["metrics"].contains("av_align"));
  ASSERT_TRUE(j["metrics"].contains("tempo_error"));  // clip c0 carries SynthV2M labels
  ASSERT_TRUE(j["metrics"].contains("mode_accuracy"));

  const std::string table = read_text(ev + "/table.md");
  EXPECT_NE(table.find("not computed"), std::string::npos) << table;
  EXPECT_NE(table.find("tiny-eval"), std::string::npos) << table;
  const std::string csv = read_text(ev + "/per_clip.csv");
  EXPECT_EQ(csv.rfind("id,chroma,av_align,audio_peaks,video_peaks,tempo_est", 0), 0u) << csv;
  EXPECT_NE(csv.find("\nc1,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("not computed"), std::string::npos) << csv;

  // Resumable: a second run reuses the generated audio instead of generating again.
  struct stat before {}, after {};
  ::stat((ev + "/generated/c1.wav").c_str(), &before);
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --model " + model + " --metrics chroma --json", &out), 0) << out;
  ::stat((ev + "/generated/c1.wav").c_str(), &after);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
  EXPECT_EQ(nlohmann::json::parse(out)["metrics"]["chroma"]["value"], chroma);

  // --generated: evaluate existing <id>.wav files; the reference audio itself has chroma 1.
  const std::string gdir = d.path() + "/refs";
  ::mkdir(gdir.c_str(), 0755);
  for (const char* id : {"c0", "c1"})
    v2m::media::write_wav(gdir + "/" + id + ".wav",
                          v2m::media::decode_audio(d.path() + "/clip" + std::string(id + 1) + ".mkv", 0, 0, 0, 2.0),
                          v2m::media::WavFormat::Float32);
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --generated " + gdir + " --metrics chroma --limit 2 --out-dir " +
                        d.path() + "/ev2 --json", &out), 0) << out;
  auto j2 = nlohmann::json::parse(out);
  EXPECT_EQ(j2["clips"], 2);
  EXPECT_NEAR(j2["metrics"]["chroma"]["value"].get<double>(), 1.0, 1e-6);
  EXPECT_TRUE(j2["model"]["params"].is_null());
  EXPECT_TRUE(file_exists(d.path() + "/ev2/table.md"));
  // Clip c0's labels say A major and its audio is a 440 Hz tone: the key estimate's tonic is A.
  ASSERT_TRUE(j2["metrics"].contains("key_accuracy"));
  const std::string csv2 = read_text(d.path() + "/ev2/per_clip.csv");
  const size_t c0 = csv2.find("\nc0,");
  ASSERT_NE(c0, std::string::npos) << csv2;
  const std::string line = csv2.substr(c0 + 1, csv2.find('\n', c0 + 1) - c0 - 1);
  EXPECT_NE(line.find(",A,"), std::string::npos) << csv2;
  EXPECT_NE(csv2.find("key_est,key_correct"), std::string::npos) << csv2;
}

TEST(CliEval, NoModelAndMissingGeneratedFilesAreOneLineErrors) {
  TempDir d;
  const std::string cfg = make_dataset(d);
  std::string out;
  EXPECT_EQ(v2m_run("eval --config " + cfg + " --metrics chroma", &out), 1) << out;
  EXPECT_NE(out.find("checkpoints/latest"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_EQ(v2m_run("eval --config " + cfg + " --generated " + d.path() + " --metrics chroma", &out), 1) << out;
  EXPECT_NE(out.find(d.path() + "/c0.wav"), std::string::npos) << out;
  EXPECT_EQ(v2m_run("eval --config " + cfg + " --metrics bogus", &out), 2) << out;
}

TEST(CliEval, LatestCheckpointPointerIsFollowed) {
  TempDir d;
  const std::string cfg = make_dataset(d);
  std::string out;
  ::mkdir((d.path() + "/run").c_str(), 0755);
  ::mkdir((d.path() + "/run/checkpoints").c_str(), 0755);
  ASSERT_EQ(v2m_run("init " + kTiny + " -o " + d.path() + "/run/checkpoints/step-000010", &out), 0) << out;
  write_text(d.path() + "/run/checkpoints/step-000010/trainer_state.json", R"({"step": 10, "samples": 80})");
  write_text(d.path() + "/run/checkpoints/latest", "step-000010\n");
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --metrics chroma --limit 1 --json", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["model"]["training_samples"], 80);
  EXPECT_NE(j["model"]["dir"].get<std::string>().find("step-000010"), std::string::npos);
  EXPECT_NE(read_text(d.path() + "/run/eval-test/table.md").find("| 80 |"), std::string::npos);
}

TEST(CliEval, WithWeightsIdenticalSetsGiveZeroFadAndKld) {
  TempDir d;
  // Random-init embedding models written as weight files: the numbers are not AudioSet's, but
  // they exercise loading, embedding and aggregation; identical sets are at distance 0.
  at::manual_seed(0);
  const std::string vgg = d.path() + "/vggish.safetensors", cnn = d.path() + "/cnn14.safetensors";
  // He-normal weights keep activations at scale through the deep stacks, so the outputs
  // depend on the input (PyTorch's default init shrinks them to the biases).
  {
    v2m::nn::TensorMap s;
    v2m::eval::Vggish v;
    v2m::nn::collect_state(*v, "", &s);
    v2m::testutil::he_init(s);
    v2m::nn::save_safetensors(vgg, s);
    s.clear();
    v2m::eval::Cnn14 c;
    v2m::nn::collect_state(*c, "", &s);
    v2m::testutil::he_init(s);
    v2m::nn::save_safetensors(cnn, s);
  }
  const std::string cfg = make_dataset(d, vgg, cnn);
  const std::string gdir = d.path() + "/refs";
  ::mkdir(gdir.c_str(), 0755);
  for (const char* id : {"c0", "c1", "c2"})
    v2m::media::write_wav(gdir + "/" + id + ".wav",
                          v2m::media::decode_audio(d.path() + "/clip" + std::string(id + 1) + ".mkv", 0, 0, 0, 2.0),
                          v2m::media::WavFormat::Float32);
  std::string out;
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --generated " + gdir + " --metrics fad,kld --json", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["metrics"]["fad"]["status"], "ok") << out;
  EXPECT_EQ(j["metrics"]["fad"]["reference_examples"], 6);  // 3 clips x 2 examples of 0.96 s
  EXPECT_NEAR(j["metrics"]["fad"]["value"].get<double>(), 0.0, 1e-3);
  ASSERT_EQ(j["metrics"]["kld_pq"]["status"], "ok") << out;
  EXPECT_NEAR(j["metrics"]["kld_pq"]["value"].get<double>(), 0.0, 1e-3);  // only the 1e-6 shift remains
  EXPECT_NEAR(j["metrics"]["kld_qp"]["value"].get<double>(), 0.0, 1e-3);

  // That a changed set moves both distances is checked in test_embedders.cpp (in process).
}

// The shuffled-video baseline conditions clip i on clip i+1's video: with one seed, its music
// for c0 is exactly the matched run's music for c1 (same video, start, duration and seed).
TEST(CliEval, ShuffledVideoConditionsEachClipOnTheNextClipsVideo) {
  TempDir d;
  const std::string cfg = make_dataset(d, "", "", /*distinct_videos=*/true);
  const std::string model = d.path() + "/model";
  std::string out;
  ASSERT_EQ(v2m_run("init " + kTiny + " -o " + model, &out), 0) << out;
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --model " + model + " --metrics chroma", &out), 0) << out;
  ASSERT_EQ(v2m_run("eval --config " + cfg + " --model " + model + " --metrics chroma --shuffle-video --json", &out), 0)
      << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_NE(j["condition"].get<std::string>().find("shuffled"), std::string::npos);
  const std::string matched = d.path() + "/run/eval-test/generated/", shuffled = d.path() + "/run/eval-test-shuffled/generated/";
  auto same = [&](const std::string& a, const std::string& b) { return read_text(a) == read_text(b); };
  EXPECT_TRUE(same(shuffled + "c0.wav", matched + "c1.wav"));
  EXPECT_TRUE(same(shuffled + "c1.wav", matched + "c2.wav"));
  EXPECT_TRUE(same(shuffled + "c2.wav", matched + "c0.wav"));
  // The videos differ, so the condition matters: the matched clips' music differs.
  EXPECT_FALSE(same(matched + "c0.wav", matched + "c1.wav"));
  EXPECT_FALSE(same(shuffled + "c0.wav", matched + "c0.wav"));
  EXPECT_NE(read_text(d.path() + "/run/eval-test-shuffled/table.md").find("tiny-eval (shuffled video)"), std::string::npos);
  EXPECT_EQ(v2m_run("eval --config " + cfg + " --generated " + matched + " --shuffle-video", &out), 2) << out;
}
