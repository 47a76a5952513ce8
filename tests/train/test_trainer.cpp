// Trainer behaviour on a synthetic feature cache (no media): loss falls, resume is exact,
// 2 ranks over Gloo equal 1 rank, checkpoints survive kill -9 and disk-full, bad states are
// refused with clear messages.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "data/manifest.h"
#include "data/run_config.h"
#include "model/v2m_model.h"
#include "nn/state_dict.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/distributed.h"
#include "train/feature_cache.h"
#include "train/trainer.h"
#include "v2m/error.h"

using namespace v2m;

namespace {

// A tiny model (configs/model/tiny.yaml with a 1 s window) and a cache of `n` clips whose
// codes are a deterministic function of the clip's CLIP features, so the condition helps.
struct TinyRun {
  TempDir dir;
  std::string config;
  explicit TinyRun(const std::string& extra = "", int n = 8, float poison = 0.0f) {
    std::string tiny = read_text(std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml");
    auto rep = [&](const std::string& a, const std::string& b) { tiny.replace(tiny.find(a), a.size(), b); };
    rep("window_s: 10.0", "window_s: 1.0");
    rep("stride_s: 5.0", "stride_s: 0.5");
    write_text(dir.path() + "/model.yaml", tiny);
    std::vector<data::ClipEntry> clips;
    for (int i = 0; i < n; ++i) {
      data::ClipEntry c;
      c.id = "c" + std::to_string(i);
      c.video = c.id + ".mp4";
      c.split = i < n - 2 ? "train" : "val";
      c.duration = 1.5;
      clips.push_back(c);
    }
    data::write_manifest(dir.path() + "/manifest.jsonl", clips);
    config = dir.path() + "/run.yaml";
    write_text(config, "model: model.yaml\nout_dir: " + dir.path() + "/run\ndata:\n  manifest: " + dir.path() +
                           "/manifest.jsonl\n  cache_dir: " + dir.path() + "/cache\n  shard_size: 3\n"
                           "train:\n  steps: 12\n  batch_size: 4\n  lr: 0.003\n  warmup_steps: 2\n  val_every: 0\n"
                           "  ckpt_every: 4\n  log_every: 1\n  seed: 5\n" + extra);
    auto cfg = data::load_run_config(config);
    auto m = model::load_model(cfg.model);
    const auto cdir = train::cache_dir(cfg, m->cfg);
    std::system(("mkdir -p '" + cdir + "'").c_str());
    torch::manual_seed(1);
    for (const auto& s : train::plan_shards(clips, cfg.data.shard_size)) {
      std::vector<train::CachedClip> out;
      for (const auto& c : s.clips) {
        const int i = std::stoi(c.id.substr(1));
        train::CachedClip cc;
        cc.id = c.id;
        cc.clip = at::randn({3, m->cfg.clip_dim()}) + static_cast<float>(i % 4);
        cc.clip_t = at::tensor({0.25f, 0.75f, 1.25f});
        cc.motion = at::randn({12, m->cfg.motion.in_dim});
        cc.motion_t = at::arange(12).to(at::kFloat) / 8.0f;
        cc.codes = ((at::arange(75).view({1, -1}) * (1 + i % 4) + at::arange(4).view({-1, 1})) % 64).to(at::kLong);
        if (poison != 0.0f) cc.clip[0][0] = poison;
        out.push_back(cc);
      }
      train::write_shard(cdir + "/" + s.file, out, {});
    }
  }
  data::RunConfig cfg(const std::vector<std::string>& sets = {}) const { return data::load_run_config(config, sets); }
  std::string run_dir() const { return dir.path() + "/run"; }
};

std::vector<double> losses(const std::string& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) out.push_back(j["loss"].get<double>());
  }
  return out;
}

train::TrainResult run(const data::RunConfig& cfg, train::TrainOptions o = {}) {
  train::Dist d(train::DistOptions{}, at::kCPU);
  return train::train(cfg, o, d);
}

double max_param_diff(const std::string& a, const std::string& b) {
  auto ta = nn::load_safetensors(a + "/model.safetensors");
  auto tb = nn::load_safetensors(b + "/model.safetensors");
  double d = 0;
  for (const auto& [k, t] : ta) d = std::max(d, (t.to(at::kDouble) - tb.at(k).to(at::kDouble)).abs().max().item<double>());
  return d;
}

std::string cli() { return V2M_CLI_PATH; }

}  // namespace

TEST(Trainer, LossFallsOverFiftySteps) {
  TinyRun s;
  auto cfg = s.cfg({"train.steps=50", "train.ckpt_every=50"});
  auto r = run(cfg);
  auto l = losses(s.run_dir() + "/metrics.jsonl");
  ASSERT_EQ(l.size(), 50u);
  EXPECT_LT(l.back(), 0.5 * l.front()) << "first " << l.front() << " last " << l.back();
  EXPECT_EQ(r.step, 50);
  EXPECT_EQ(train::latest_checkpoint(s.run_dir() + "/checkpoints"), s.run_dir() + "/checkpoints/step-00000050");
}

TEST(Trainer, ResumeEqualsUninterruptedTraining) {
  TinyRun a, b;
  run(a.cfg());
  train::TrainOptions chunk;
  chunk.max_steps_this_run = 5;  // stops at 5 with a checkpoint (not on a ckpt_every boundary)
  auto r1 = run(b.cfg(), chunk);
  EXPECT_EQ(r1.step, 5);
  auto r2 = run(b.cfg());  // resumes from step 5 automatically
  EXPECT_EQ(r2.step, 12);
  auto la = losses(a.run_dir() + "/metrics.jsonl"), lb = losses(b.run_dir() + "/metrics.jsonl");
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_DOUBLE_EQ(la[i], lb[i]) << "step " << i + 1;
  EXPECT_EQ(max_param_diff(a.run_dir() + "/checkpoints/step-00000012", b.run_dir() + "/checkpoints/step-00000012"), 0.0);
}

TEST(Trainer, KeepsLastNCheckpointsAndBest) {
  TinyRun s;
  run(s.cfg({"train.keep_last=2", "train.val_every=4"}));
  const std::string root = s.run_dir() + "/checkpoints";
  EXPECT_TRUE(file_exists(root + "/step-00000012"));
  EXPECT_TRUE(file_exists(root + "/step-00000008"));
  EXPECT_FALSE(file_exists(root + "/step-00000004") && read_text(root + "/best") != "step-00000004\n");
  const std::string best = read_text(root + "/best");
  ASSERT_FALSE(best.empty());
  EXPECT_TRUE(file_exists(root + "/" + best.substr(0, best.size() - 1) + "/model.safetensors"));
  // A checkpoint is a model directory: generation and eval load it as is.
  auto m = model::load_model(root + "/step-00000012");
  EXPECT_GT(nn::count_parameters(*m), 0);
}

TEST(Trainer, RefusesToResumeWithAChangedModelConfig) {
  TinyRun s;
  run(s.cfg({"train.steps=4"}));
  std::string y = read_text(s.dir.path() + "/model.yaml");
  y.replace(y.find("ffn_dim: 128"), 12, "ffn_dim: 96");  // the fusion's FFN
  write_text(s.dir.path() + "/model.yaml", y);
  try {
    run(s.cfg());
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model config changed"), std::string::npos) << e.what();
  }
}

TEST(Trainer, StopsOnNonFiniteLossNamingTheStep) {
  TinyRun s("", 8, std::numeric_limits<float>::quiet_NaN());
  try {
    run(s.cfg());
    FAIL() << "expected divergence to be reported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("loss is NaN at step 1"), std::string::npos) << e.what();
  }
  EXPECT_EQ(train::latest_checkpoint(s.run_dir() + "/checkpoints"), "");  // nothing bad was saved
}

TEST(Trainer, DiskFullDuringCheckpointLeavesThePreviousOneIntact) {
  TinyRun s;
  run(s.cfg({"train.steps=4"}));
  const std::string root = s.run_dir() + "/checkpoints";
  ASSERT_EQ(train::latest_checkpoint(root), root + "/step-00000004");
  // A child process with a tiny file-size limit tries to write the next checkpoint.
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // writes fail with EFBIG instead of killing the process
    rlimit rl{64 * 1024, 64 * 1024};
    ::setrlimit(RLIMIT_FSIZE, &rl);
    try {
      run(s.cfg({"train.steps=8"}));
    } catch (const Error& e) {
      const bool clear = std::string(e.what()).find("checkpoint write failed") != std::string::npos &&
                         std::string(e.what()).find("step-00000004 is intact") != std::string::npos;
      _exit(clear ? 42 : 43);
    }
    _exit(0);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 42);
  EXPECT_EQ(train::latest_checkpoint(root), root + "/step-00000004");
  auto m = model::load_model(s.cfg().model);
  auto lc = train::load_checkpoint(root + "/step-00000004", m);
  EXPECT_EQ(lc.state.step, 4);
  EXPECT_EQ(count_files(root), 2);  // step-00000004 and latest: nothing half-written left behind
}

TEST(TrainerCli, TwoGlooRanksEqualOneRankWithTheSameGlobalBatch) {
  if (cli().empty()) GTEST_SKIP() << "v2m CLI not built";
  TinyRun a, b;
  std::string out;
  ASSERT_EQ(run_capture(cli() + " --threads 1 train --config " + a.config + " --set train.steps=6", &out), 0) << out;
  ASSERT_EQ(run_capture(cli() + " train --config " + b.config + " --set train.steps=6 --nproc 2", &out), 0) << out;
  EXPECT_NE(out.find("launching 2 local workers"), std::string::npos) << out;
  const double d = max_param_diff(a.run_dir() + "/checkpoints/step-00000006", b.run_dir() + "/checkpoints/step-00000006");
  EXPECT_LT(d, 1e-5);
}

TEST(TrainerCli, KillDuringCheckpointWriteLeavesPreviousCheckpointLoadable) {
  if (cli().empty()) GTEST_SKIP() << "v2m CLI not built";
  TinyRun s;
  const std::string root = s.run_dir() + "/checkpoints";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("V2M_FAULT_CHECKPOINT_DELAY_MS", "4000", 1);
    ::execl(cli().c_str(), cli().c_str(), "-q", "--threads", "1", "train", "--config", s.config.c_str(), "--set",
            "train.ckpt_every=2", nullptr);
    _exit(127);
  }
  // Wait until the second checkpoint's temporary directory exists, then kill -9.
  bool killed = false;
  for (int i = 0; i < 600 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (DIR* d = ::opendir(root.c_str())) {
      while (auto* e = ::readdir(d))
        if (std::string(e->d_name).rfind(".tmp-step-00000004", 0) == 0) killed = true;
      ::closedir(d);
    }
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(killed) << "the checkpoint write was never observed";
  EXPECT_EQ(train::latest_checkpoint(root), root + "/step-00000002");
  auto m = model::load_model(s.cfg().model);
  EXPECT_EQ(train::load_checkpoint(root + "/step-00000002", m).state.step, 2);
  // Resuming cleans the leftover and finishes the run.
  std::string out;
  ASSERT_EQ(run_capture(cli() + " --threads 1 train --config " + s.config, &out), 0) << out;
  EXPECT_NE(out.find("resuming from"), std::string::npos) << out;
  EXPECT_EQ(train::latest_checkpoint(root), root + "/step-00000012");
  for (const auto& n : {std::string(".tmp")}) EXPECT_EQ(read_text(root + "/latest").find(n), std::string::npos);
}

TEST(TrainerCli, SigtermWritesACheckpointThenResumeFinishes) {
  if (cli().empty()) GTEST_SKIP() << "v2m CLI not built";
  TinyRun s;
  const std::string root = s.run_dir() + "/checkpoints";
  const std::string log = s.dir.path() + "/log.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::execl(cli().c_str(), cli().c_str(), "--threads", "1", "train", "--config", s.config.c_str(), "--set",
            "train.steps=100000", "--set", "train.ckpt_every=100000", nullptr);
    _exit(127);
  }
  for (int i = 0; i < 600 && losses(s.run_dir() + "/metrics.jsonl").size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(pid, SIGTERM);
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 1);
  EXPECT_NE(read_text(log).find("interrupted by signal"), std::string::npos) << read_text(log);
  const std::string latest = train::latest_checkpoint(root);
  ASSERT_FALSE(latest.empty());
  auto m = model::load_model(s.cfg().model);
  const int64_t step = train::load_checkpoint(latest, m).state.step;
  EXPECT_GE(step, 2);
  EXPECT_EQ(losses(s.run_dir() + "/metrics.jsonl").size(), static_cast<size_t>(step));
}

TEST(Distributed, EnvironmentParsing) {
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "2", 1);
  ::setenv("LOCAL_RANK", "0", 1);
  ::setenv("MASTER_ADDR", "10.0.0.1", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  auto o = train::dist_options_from_env();
  EXPECT_EQ(o.world_size, 4);
  EXPECT_EQ(o.rank, 2);
  EXPECT_EQ(o.master_addr, "10.0.0.1");
  EXPECT_EQ(o.master_port, 1234);
  ::setenv("RANK", "7", 1);
  EXPECT_THROW(train::dist_options_from_env(), Error);
  ::setenv("RANK", "x", 1);
  EXPECT_THROW(train::dist_options_from_env(), Error);
  for (const char* v : {"WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(v);
  EXPECT_EQ(train::dist_options_from_env().world_size, 1);
}

TEST(Trainer, InitLoadsPretrainedPartsUnderAnotherFusion) {
  TempDir d;
  const std::string tiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";
  auto src = model::load_model(tiny);
  {
    torch::NoGradGuard ng;
    for (auto& p : src->parameters()) p.add_(0.5);  // differs from the seed-0 random init
  }
  model::save_model(src, d.path() + "/init");
  std::string y = read_text(tiny);
  y.replace(y.find("motion: true"), 12, "motion: false");
  write_text(d.path() + "/nomotion.yaml", y);
  data::RunConfig cfg;
  cfg.model = d.path() + "/nomotion.yaml";
  cfg.init = d.path() + "/init";
  auto m = train::load_run_model(cfg);
  EXPECT_FALSE(m->cfg.fusion.motion);
  EXPECT_TRUE(m->clip->parameters()[0].equal(src->clip->parameters()[0]));
  EXPECT_TRUE(m->decoder->parameters()[3].equal(src->decoder->parameters()[3]));
  EXPECT_FALSE(m->fusion->parameters()[0].equal(src->fusion->parameters()[0]));
  y.replace(y.find("ffn_dim: 128\n  num_codebooks"), 12, "ffn_dim: 96");  // the decoder's FFN
  write_text(d.path() + "/other.yaml", y);
  cfg.model = d.path() + "/other.yaml";
  try {
    train::load_run_model(cfg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("section 'decoder' differs"), std::string::npos) << e.what();
  }
}

TEST(Trainer, InitWithFewerCodebooksGrowsTheDecoder) {
  TempDir d;
  const std::string tiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";
  std::string y = read_text(tiny);
  const std::string four = "ffn_dim: 128\n  num_codebooks: 4";  // the decoder's, not the codec's
  ASSERT_NE(y.find(four), std::string::npos);
  std::string two = y;
  two.replace(two.find(four), four.size(), "ffn_dim: 128\n  num_codebooks: 2");
  write_text(d.path() + "/two.yaml", two);
  auto src = model::load_model(d.path() + "/two.yaml");
  {
    torch::NoGradGuard ng;
    for (auto& p : src->parameters()) p.add_(0.5);
  }
  model::save_model(src, d.path() + "/init2");
  data::RunConfig cfg;
  cfg.model = tiny;
  cfg.init = d.path() + "/init2";
  auto m = train::load_run_model(cfg);
  ASSERT_EQ(m->cfg.decoder.num_codebooks, 4);
  auto fresh = model::load_model(tiny);  // the architecture's own seed-0 draw
  auto got = m->decoder->named_parameters(), from = src->decoder->named_parameters(),
       arch = fresh->decoder->named_parameters();
  for (const auto& kv : from) {
    SCOPED_TRACE(kv.key());
    EXPECT_TRUE(got[kv.key()].equal(kv.value()));
  }
  for (int k : {2, 3}) {
    const std::string e = "model.decoder.embed_tokens." + std::to_string(k) + ".weight";
    const std::string h = "lm_heads." + std::to_string(k) + ".weight";
    EXPECT_EQ(got[e].abs().max().item<float>(), 0.0f) << e;
    EXPECT_TRUE(got[h].equal(arch[h])) << h;
    EXPECT_FALSE(got[h].equal(from["lm_heads.1.weight"]));
  }
  // The other way round (an init with more codebooks than the model) is a mismatch.
  model::save_model(m, d.path() + "/init4");
  cfg.model = d.path() + "/two.yaml";
  cfg.init = d.path() + "/init4";
  try {
    train::load_run_model(cfg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("section 'decoder' differs"), std::string::npos) << e.what();
  }
}

TEST(TrainerCli, ARankDyingEndsAllRanksWithAMessage) {
  if (cli().empty()) GTEST_SKIP() << "v2m CLI not built";
  TinyRun s;
  const std::string log = s.dir.path() + "/log.txt";
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    ::execl(cli().c_str(), cli().c_str(), "train", "--config", s.config.c_str(), "--set", "train.steps=100000",
            "--set", "train.dist_timeout_s=20", "--nproc", "2", nullptr);
    _exit(127);
  }
  for (int i = 0; i < 1200 && losses(s.run_dir() + "/metrics.jsonl").size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(losses(s.run_dir() + "/metrics.jsonl").size(), 2u) << read_text(log);
  // The launcher's children are the ranks, in rank order.
  std::string kids = read_text("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::istringstream ks(kids);
  std::vector<pid_t> ranks;
  for (pid_t k; ks >> k;) ranks.push_back(k);
  ASSERT_EQ(ranks.size(), 2u) << kids;
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(ranks[1], SIGKILL);
  int st = 0;
  pid_t done = 0;
  while ((done = ::waitpid(pid, &st, WNOHANG)) == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(90))
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (done == 0) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &st, 0);
    FAIL() << "ranks hung after one died:\n" << read_text(log);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 45.0);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_NE(WEXITSTATUS(st), 0);
  const std::string text = read_text(log);
  EXPECT_NE(text.find("rank 1 exited with code 137"), std::string::npos) << text;
  EXPECT_NE(text.find("a worker failed"), std::string::npos) << text;
}

TEST(Trainer, ValidationScoresTheTrueConditionAgainstAnotherClips) {
  // The cache's codes depend on each clip's CLIP features, so a model that learnt to use its
  // condition does worse when given the next clip's condition for the same music (by little
  // here: after the first frames the codes' context gives the same away; 0.009 measured).
  TinyRun s;
  run(s.cfg({"train.steps=50", "train.ckpt_every=50", "train.val_every=50"}));
  std::ifstream in(s.run_dir() + "/metrics.jsonl");
  std::string line;
  double val = NAN, shuffled = NAN;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("val_loss")) {
      val = j["val_loss"].get<double>();
      ASSERT_TRUE(j.contains("val_loss_shuffled")) << line;
      shuffled = j["val_loss_shuffled"].get<double>();
    }
  }
  ASSERT_TRUE(std::isfinite(val) && std::isfinite(shuffled));
  EXPECT_GT(shuffled, val + 1e-3) << "true condition " << val << ", another clip's " << shuffled;
}

TEST(Trainer, DecoderModelsAPrefixOfTheCachedCodebooks) {
  // The cache holds the codec's 4 codebooks; a decoder of 2 reads the same cache (its key
  // does not involve the decoder) and trains on the first 2.
  TinyRun s;
  std::string y = read_text(s.dir.path() + "/model.yaml");
  y.replace(y.find("num_codebooks: 4"), 16, "num_codebooks: 2");
  write_text(s.dir.path() + "/model.yaml", y);
  auto r = run(s.cfg({"train.steps=3"}));
  EXPECT_EQ(r.step, 3);
  std::ifstream in(s.run_dir() + "/metrics.jsonl");
  std::string line;
  std::getline(in, line);
  auto j = nlohmann::json::parse(line);
  ASSERT_TRUE(j.contains("loss_per_codebook")) << line;
  EXPECT_EQ(j["loss_per_codebook"].size(), 2u) << line;
}

TEST(FeatureCache, KeyCoversTheClipAndCodecTensorsOnly) {
  TempDir d;
  const std::string tiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";
  auto m = model::load_model(tiny);
  model::save_model(m, d.path() + "/a");
  auto bump = [&](torch::nn::Module& part, const std::string& out) {
    {
      torch::NoGradGuard ng;
      part.parameters()[0].add_(0.25);
    }
    model::save_model(m, d.path() + "/" + out);
  };
  bump(*m->decoder, "b");  // a new decoder over the same frozen parts
  bump(*m->clip, "c");
  bump(*m->codec, "e");
  data::RunConfig run;
  run.data.cache_dir = d.path() + "/cache";
  auto dir_for = [&](const std::string& init) {
    run.init = d.path() + "/" + init;
    return train::cache_dir(run, m->cfg);
  };
  const std::string a = dir_for("a");
  EXPECT_EQ(dir_for("b"), a);
  EXPECT_NE(dir_for("c"), a);
  EXPECT_NE(dir_for("e"), dir_for("c"));
  EXPECT_NE(dir_for("e"), a);
}

TEST(Trainer, InputNormTakesItsStatisticsFromTheTrainSplitAtStepZero) {
  TinyRun s;
  std::string y = read_text(s.dir.path() + "/model.yaml");
  y.replace(y.find("fusion:\n"), 8, "fusion:\n  input_norm: true\n");
  write_text(s.dir.path() + "/model.yaml", y);
  auto cfg = s.cfg({"train.steps=2", "train.ckpt_every=2"});
  run(cfg);
  auto m = model::load_model(cfg.model);
  data::ManifestOptions mo;
  mo.check_files = false;  // the cache stands in for the media, as in training
  auto train_set = train::FeatureCache::open(train::cache_dir(cfg, m->cfg),
                                             data::read_manifest(cfg.data.manifest, mo).clips, 3, true, "train");
  std::vector<at::Tensor> cx, mx;
  for (size_t i = 0; i < train_set.size(); ++i) {
    cx.push_back(train_set[i].clip);
    mx.push_back(train_set[i].motion);
  }
  auto w = nn::load_safetensors(s.run_dir() + "/checkpoints/step-00000002/model.safetensors");
  ASSERT_TRUE(w.count("fusion.input_norm_clip_mean"));
  EXPECT_LT((w.at("fusion.input_norm_clip_mean") - at::cat(cx, 0).mean(0)).abs().max().item<float>(), 1e-4);
  EXPECT_LT((w.at("fusion.input_norm_motion_std") - at::cat(mx, 0).std(0)).abs().max().item<float>(), 1e-4);
}

// The shipped run configs parse, their architectures load, and each "_no_motion" ablation is
// its partner with motion off and nothing else changed (same data, init, schedule, eval).
TEST(ShippedConfigs, RunConfigsParseAndAblationsDifferOnlyInMotion) {
  const std::string root = std::string(V2M_SOURCE_DIR) + "/configs/";
  for (const char* stem : {"s", "synth/tiny", "synth/tiny_c", "synth/tiny_c8"}) {
    SCOPED_TRACE(stem);
    data::RunConfig with = data::load_run_config(root + stem + ".yaml");
    data::RunConfig without = data::load_run_config(root + stem + "_no_motion.yaml");
    model::ModelConfig mw = model::load_model_config(with.model), mo = model::load_model_config(without.model);
    EXPECT_TRUE(mw.fusion.motion);
    EXPECT_FALSE(mo.fusion.motion);
    EXPECT_NE(mw.name, mo.name);
    mo.fusion.motion = true;
    mo.name = mw.name;
    EXPECT_EQ(to_yaml(mw), to_yaml(mo));
    EXPECT_EQ(to_yaml(with.train), to_yaml(without.train));
    EXPECT_EQ(to_yaml(with.eval), to_yaml(without.eval));
    EXPECT_EQ(with.data.manifest, without.data.manifest);
    EXPECT_EQ(with.init, without.init);
    EXPECT_NE(with.out_dir, without.out_dir);
  }
}
