// Codec training: SI-SNR on analytic cases, mel loss sanity, and a tiny end-to-end run
// (loss decreases, checkpoints resume, the export loads with nn::load_encodec).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "data/manifest.h"
#include "model/model_config.h"
#include "nn/state_dict.h"
#include "nn/encodec.h"
#include "synth/codec_losses.h"
#include "synth/codec_trainer.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::synth;

namespace {

std::vector<float> tone(int n, double hz, int sr, double amp = 0.5) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(amp * std::sin(2 * M_PI * hz * i / sr));
  return x;
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace

TEST(CodecLosses, SiSnrAnalyticCases) {
  const int n = 16000;
  const auto x = tone(n, 440, 16000);
  std::vector<float> neg(x), scaled(x), noisy(x), noise(static_cast<size_t>(n));
  std::mt19937 g(1);
  std::normal_distribution<double> nd(0, 1);
  for (auto& v : noise) v = static_cast<float>(nd(g));
  // Noise scaled to 10 dB below the tone's power: SI-SNR ~ 10 dB.
  double px = 0, pn = 0;
  for (int i = 0; i < n; ++i) px += x[i] * x[i], pn += noise[i] * noise[i];
  const double k = std::sqrt(px / pn / 10.0);
  for (int i = 0; i < n; ++i) neg[i] = -x[i], scaled[i] = 0.25f * x[i], noisy[i] = x[i] + static_cast<float>(k * noise[i]);
  EXPECT_GT(si_snr(x.data(), x.data(), n), 60.0);
  EXPECT_GT(si_snr(neg.data(), x.data(), n), 60.0);     // scale-invariant, sign included
  EXPECT_GT(si_snr(scaled.data(), x.data(), n), 60.0);
  EXPECT_NEAR(si_snr(noisy.data(), x.data(), n), 10.0, 0.5);
  EXPECT_LT(si_snr(noise.data(), x.data(), n), -15.0);  // unrelated signal
  // The tensor version agrees and works per row.
  const at::Tensor ref = at::tensor(x).view({1, n}).repeat({3, 1});
  const at::Tensor est = at::stack({at::tensor(x), at::tensor(noisy), at::tensor(noise)});
  const at::Tensor s = si_snr(est, ref);
  ASSERT_EQ(s.size(0), 3);
  EXPECT_GT(s[0].item<double>(), 60.0);
  EXPECT_NEAR(s[1].item<double>(), si_snr(noisy.data(), x.data(), n), 1e-3);
  EXPECT_NEAR(s[2].item<double>(), si_snr(noise.data(), x.data(), n), 1e-3);
}

TEST(CodecLosses, MelLossIsZeroForEqualInputsAndGrowsWithDistortion) {
  const int sr = 16000, n = 8000;
  const at::Tensor x = at::tensor(tone(n, 440, sr)).view({1, 1, n});
  const at::Tensor y = at::tensor(tone(n, 660, sr)).view({1, 1, n});
  const auto scales = mel_scales(6, 10);
  ASSERT_EQ(scales.size(), 5u);
  EXPECT_NEAR(multi_scale_mel_loss(x, x, scales, sr).item<double>(), 0.0, 1e-6);
  const double small = multi_scale_mel_loss(x * 0.9, x, scales, sr).item<double>();
  const double large = multi_scale_mel_loss(y, x, scales, sr).item<double>();
  EXPECT_GT(small, 0.0);
  EXPECT_GT(large, 5 * small);
  // Filterbank: every filter of a 1024-point FFT is non-empty and peaks at 1.
  const at::Tensor fb = mel_filterbank(1024, 64, sr);
  EXPECT_EQ(fb.size(0), 513);
  EXPECT_GT(std::get<0>(fb.max(0)).min().item<double>(), 0.3);
}

TEST(CodecTrain, TinyRunLossDecreasesResumesAndExportsALoadableCodec) {
  TempDir dir;
  const int sr = 8000;
  // Three clips of chords of tones (two train, one test), written as WAV.
  std::vector<data::ClipEntry> clips;
  for (int c = 0; c < 3; ++c) {
    media::Audio a;
    a.sample_rate = sr, a.channels = 1;
    const auto t1 = tone(sr, 220.0 * (c + 1), sr, 0.3), t2 = tone(sr, 330.0 * (c + 1), sr, 0.2);
    for (int i = 0; i < sr; ++i) a.samples.push_back(t1[i] + t2[i] * static_cast<float>((i / 1000) % 2));
    const std::string rel = "c" + std::to_string(c) + ".wav";
    media::write_wav(dir.path() + "/" + rel, a);
    data::ClipEntry e;
    e.id = "c" + std::to_string(c), e.video = rel, e.audio = rel, e.duration = 1.0, e.split = c < 2 ? "train" : "test";
    clips.push_back(e);
  }
  data::write_manifest(dir.path() + "/manifest.jsonl", clips);
  const std::string cfg = dir.path() + "/codec.yaml";
  write_text(cfg, "data:\n  manifest: " + dir.path() + "/manifest.jsonl\n" +
                      "codec:\n  sampling_rate: 8000\n  num_filters: 4\n  upsampling_ratios: [4, 2]\n"
                      "  num_lstm_layers: 1\n  codebook_size: 16\n  codebook_dim: 16\n  hidden_size: 16\n"
                      "  num_codebooks: 2\n"
                      "loss:\n  mel_min_log2: 5\n  mel_max_log2: 8\n"
                      "quantizer:\n  kmeans_iters: 5\n  kmeans_batches: 2\n  dead_code_threshold: 0.5\n"
                      "out_dir: " + dir.path() + "/run\nsteps: 30\nbatch: 4\nsegment_s: 0.064\nlr: 0.003\n"
                      "log_every: 5\nckpt_every: 10\n");
  CodecRunOptions o;
  o.config_path = cfg;
  const CodecEvalResult r = run_train_codec(o);
  EXPECT_EQ(r.step, 30);
  EXPECT_EQ(r.clips, 1);
  EXPECT_TRUE(std::isfinite(r.si_snr_db));
  EXPECT_GT(r.mel_distance, 0.0);
  auto log = read_jsonl(dir.path() + "/run/metrics.jsonl");
  ASSERT_EQ(log.size(), 6u);
  EXPECT_LT(log.back().at("loss").get<double>(), 0.8 * log.front().at("loss").get<double>());

  // The export is a regular EncodecModel directory; it reproduces the trained codec.
  nn::Encodec loaded = nn::load_encodec(dir.path() + "/run/codec");
  EXPECT_EQ(loaded->cfg.num_codebooks, 2);
  EXPECT_EQ(loaded->cfg.codebook_size, 16);
  const auto eval_loaded = evaluate_codec(loaded, dir.path() + "/manifest.jsonl", "test", 0, CodecLossConfig{
                                                                                                  1, 1, 1, 5, 8});
  EXPECT_NEAR(eval_loaded.si_snr_db, r.si_snr_db, 1e-4);

  // Resume: 10 more steps continue from step 30 (no re-initialisation, log grows by 2 lines).
  o.steps = 40;
  const CodecEvalResult r2 = run_train_codec(o);
  EXPECT_EQ(r2.step, 40);
  log = read_jsonl(dir.path() + "/run/metrics.jsonl");
  ASSERT_EQ(log.size(), 8u);
  EXPECT_EQ(log.back().at("step").get<int64_t>(), 40);
  EXPECT_EQ(read_text(dir.path() + "/run/checkpoints/latest"), "step_00000040");
  // --eval-only reads the latest checkpoint.
  o.eval_only = true;
  const CodecEvalResult r3 = run_train_codec(o);
  EXPECT_EQ(r3.step, 40);
  EXPECT_NEAR(r3.si_snr_db, r2.si_snr_db, 1e-4);
  EXPECT_EQ(r3.codebooks, 2);
  // --codebooks 1: the first residual codebook alone, a different (coarser) reconstruction.
  o.codebooks = 1;
  const CodecEvalResult r4 = run_train_codec(o);
  EXPECT_EQ(r4.codebooks, 1);
  EXPECT_GT(std::abs(r4.mel_distance - r3.mel_distance), 1e-6);
  o.codebooks = 3;
  try {
    run_train_codec(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the codec has 2"), std::string::npos) << e.what();
  }
  // --codec names the exported directory instead of the checkpoint, and --write keeps each
  // reconstruction: <id>.wav at the codec's rate, as long as the clip, the scored signal.
  o.codebooks = 0;
  o.codec = dir.path() + "/run/codec";
  o.write_dir = dir.path() + "/recon/nested";
  const CodecEvalResult r5 = run_train_codec(o);
  EXPECT_EQ(r5.step, 0);
  EXPECT_EQ(r5.clips, 1);
  const media::Audio src = media::decode_audio(dir.path() + "/c2.wav", 8000, 1);
  const media::Audio rec = media::decode_audio(dir.path() + "/recon/nested/c2.wav", 0, 0);
  EXPECT_EQ(rec.sample_rate, 8000);
  ASSERT_EQ(rec.frames(), src.frames());
  EXPECT_NEAR(si_snr(rec.samples.data(), src.samples.data(), rec.frames()), r5.si_snr_db, 0.05);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/recon/nested/c0.wav")) << "train clips are not evaluated";
}

TEST(CodecTrain, ResumedRunMatchesAnUninterruptedOne) {
  TempDir dir;
  const int sr = 8000;
  media::Audio a;
  a.sample_rate = sr, a.channels = 1;
  a.samples = tone(sr, 300, sr, 0.4);
  media::write_wav(dir.path() + "/a.wav", a);
  data::ClipEntry e;
  e.id = "a", e.video = "a.wav", e.audio = "a.wav", e.duration = 1.0, e.split = "train";
  data::ClipEntry t = e;
  t.id = "b", t.split = "test";
  data::write_manifest(dir.path() + "/manifest.jsonl", {e, t});
  auto config = [&](const std::string& out) {
    const std::string p = dir.path() + "/" + out + ".yaml";
    write_text(p, "data:\n  manifest: " + dir.path() + "/manifest.jsonl\n" +
                      "codec:\n  sampling_rate: 8000\n  num_filters: 2\n  upsampling_ratios: [4]\n"
                      "  num_lstm_layers: 1\n  codebook_size: 8\n  codebook_dim: 8\n  hidden_size: 8\n"
                      "  num_codebooks: 1\n"
                      "loss:\n  mel_min_log2: 5\n  mel_max_log2: 7\n"
                      "quantizer:\n  kmeans_iters: 2\n  kmeans_batches: 1\n  warmup_steps: 5\n"
                      "out_dir: " + dir.path() + "/" + out + "\nsteps: 8\nbatch: 2\nsegment_s: 0.032\n"
                      "log_every: 1\nckpt_every: 4\n");
    return p;
  };
  CodecRunOptions whole, part;
  whole.config_path = config("whole");
  part.config_path = config("part");
  run_train_codec(whole);
  part.steps = 4;
  run_train_codec(part);
  part.steps = 8;
  run_train_codec(part);
  const auto lw = read_jsonl(dir.path() + "/whole/metrics.jsonl"), lp = read_jsonl(dir.path() + "/part/metrics.jsonl");
  ASSERT_EQ(lw.size(), 8u);
  ASSERT_EQ(lp.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_NEAR(lw[i].at("loss").get<double>(), lp[i].at("loss").get<double>(), 1e-5) << i;
}

// `v2m init --codec DIR` takes the codec from a trained (exported) codec directory, bit for
// bit, or from a model directory (the fp16 export here: its codec, widened back to fp32);
// a codec of another architecture is refused; `v2m export --dtype fp16` halves it.
TEST(CodecTrain, InitTakesATrainedCodecAndExportWritesFp16) {
  const std::string cli = V2M_CLI_PATH;
  if (cli.empty()) GTEST_SKIP() << "v2m CLI not built";
  TempDir d;
  const std::string tiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";
  const model::ModelConfig mc = model::load_model_config(tiny);
  at::manual_seed(7);
  nn::Encodec trained(mc.codec);
  export_codec(trained, d.path() + "/codec");
  std::string out;
  ASSERT_EQ(run_capture(cli + " -q init " + tiny + " --codec " + d.path() + "/codec -o " + d.path() + "/m", &out), 0) << out;
  const nn::TensorMap codec_w = nn::load_safetensors(d.path() + "/codec/model.safetensors");
  const nn::TensorMap model_w = nn::load_safetensors(d.path() + "/m/model.safetensors");
  ASSERT_FALSE(codec_w.empty());
  for (const auto& [k, t] : codec_w) {
    ASSERT_TRUE(model_w.count("codec." + k)) << k;
    EXPECT_TRUE(at::equal(model_w.at("codec." + k), t)) << k;
  }

  ASSERT_EQ(run_capture(cli + " -q export " + d.path() + "/m -o " + d.path() + "/m16 --dtype fp16", &out), 0) << out;
  const nn::TensorMap half_w = nn::load_safetensors(d.path() + "/m16/model.safetensors");
  ASSERT_EQ(half_w.size(), model_w.size());
  for (const auto& [k, t] : model_w) {
    if (!t.is_floating_point()) continue;
    EXPECT_EQ(half_w.at(k).scalar_type(), at::kHalf) << k;
    EXPECT_TRUE(at::equal(half_w.at(k), t.to(at::kHalf))) << k;
  }
  EXPECT_EQ(run_capture(cli + " -q export " + d.path() + "/m -o " + d.path() + "/m", &out), 1) << out;

  ASSERT_EQ(run_capture(cli + " -q init " + tiny + " --codec " + d.path() + "/m16 -o " + d.path() + "/from16", &out), 0)
      << out;
  const nn::TensorMap from16 = nn::load_safetensors(d.path() + "/from16/model.safetensors");
  int codec_tensors = 0;
  for (const auto& [k, t] : half_w) {
    if (k.rfind("codec.", 0) != 0 || !t.is_floating_point()) continue;
    EXPECT_TRUE(at::equal(from16.at(k), t.to(at::kFloat))) << k;
    ++codec_tensors;
  }
  EXPECT_GE(codec_tensors, static_cast<int>(codec_w.size()));

  nn::EncodecConfig other = mc.codec;
  other.num_filters = 4;
  nn::Encodec wrong(other);
  export_codec(wrong, d.path() + "/codec4");
  EXPECT_EQ(run_capture(cli + " -q init " + tiny + " --codec " + d.path() + "/codec4 -o " + d.path() + "/m4", &out), 1);
  EXPECT_NE(out.find(d.path() + "/codec4"), std::string::npos) << out;
  EXPECT_NE(out.find("codec does not match"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(d.path() + "/m4/model.safetensors"));
}
