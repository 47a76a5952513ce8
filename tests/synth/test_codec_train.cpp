// Codec training: SI-SNR on analytic cases, mel loss sanity, and a tiny end-to-end run
// (loss decreases, checkpoints resume, the export loads with nn::load_encodec).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
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

namespace {

// Three 1 s clips of chords of tones at 8 kHz (two train, one test) as WAV + manifest.jsonl in dir.
void write_tone_clips(const std::string& dir) {
  const int sr = 8000;
  std::vector<data::ClipEntry> clips;
  for (int c = 0; c < 3; ++c) {
    media::Audio a;
    a.sample_rate = sr, a.channels = 1;
    const auto t1 = tone(sr, 220.0 * (c + 1), sr, 0.3), t2 = tone(sr, 330.0 * (c + 1), sr, 0.2);
    for (int i = 0; i < sr; ++i) a.samples.push_back(t1[i] + t2[i] * static_cast<float>((i / 1000) % 2));
    const std::string rel = "c" + std::to_string(c) + ".wav";
    media::write_wav(dir + "/" + rel, a);
    data::ClipEntry e;
    e.id = "c" + std::to_string(c), e.video = rel, e.audio = rel, e.duration = 1.0, e.split = c < 2 ? "train" : "test";
    clips.push_back(e);
  }
  data::write_manifest(dir + "/manifest.jsonl", clips);
}

// The 8 kHz, 2-codebook codec of the tone-clip tests (a config's codec: section).
const char* const kToneCodec =
    "codec:\n  sampling_rate: 8000\n  num_filters: 4\n  upsampling_ratios: [4, 2]\n"
    "  num_lstm_layers: 1\n  codebook_size: 16\n  codebook_dim: 16\n  hidden_size: 16\n"
    "  num_codebooks: 2\n";

// run_train_codec(o) throws a v2m::Error whose message contains `what`.
void expect_train_error(const CodecRunOptions& o, const std::string& what) {
  try {
    run_train_codec(o);
    ADD_FAILURE() << "no error for " << o.config_path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(CodecTrain, TinyRunLossDecreasesResumesAndExportsALoadableCodec) {
  TempDir dir;
  write_tone_clips(dir.path());
  const std::string cfg = dir.path() + "/codec.yaml";
  write_text(cfg, "data:\n  manifest: " + dir.path() + "/manifest.jsonl\n" + kToneCodec +
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
  expect_train_error(o, "the codec has 2");
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

// decoder_only: starting from a trained codec, only the decoder changes (encoder and
// codebooks bit for bit as before, so a token model's codes keep their meaning), the loss
// falls, and the run resumes; a decoder_only config without init, or asking for more
// codebooks than the codec has, is refused.
TEST(CodecTrain, DecoderOnlyFineTuneChangesOnlyTheDecoder) {
  TempDir dir;
  write_tone_clips(dir.path());
  const std::string base = "data:\n  manifest: " + dir.path() + "/manifest.jsonl\n" + kToneCodec +
                           "loss:\n  mel_min_log2: 5\n  mel_max_log2: 8\n  si_snr: 0.1\n"
                           "batch: 4\nsegment_s: 0.064\nlr: 0.003\nlog_every: 5\nckpt_every: 10\n";
  write_text(dir.path() + "/start.yaml", base + "steps: 20\nout_dir: " + dir.path() + "/run\n");
  CodecRunOptions o;
  o.config_path = dir.path() + "/start.yaml";
  run_train_codec(o);  // the trained codec to fine-tune
  const nn::TensorMap before = nn::load_safetensors(dir.path() + "/run/codec/model.safetensors");

  write_text(dir.path() + "/ft.yaml", base + "steps: 30\ninit: " + dir.path() + "/run/codec\ndecoder_only: true\n" +
                                          "train_codebooks: [1, 2]\nout_dir: " + dir.path() + "/ft\n");
  o.config_path = dir.path() + "/ft.yaml";
  o.steps = 20;
  run_train_codec(o);
  o.steps = 30;  // resumes from step 20's checkpoint
  const CodecEvalResult r = run_train_codec(o);
  EXPECT_EQ(r.step, 30);
  const auto log = read_jsonl(dir.path() + "/ft/metrics.jsonl");
  ASSERT_EQ(log.size(), 6u);
  EXPECT_LT(log.back().at("loss").get<double>(), log.front().at("loss").get<double>());
  const nn::TensorMap after = nn::load_safetensors(dir.path() + "/ft/codec/model.safetensors");
  ASSERT_EQ(after.size(), before.size());
  int changed = 0;
  for (const auto& [k, t] : before) {
    const bool same = at::equal(after.at(k), t);
    if (k.rfind("decoder.", 0) == 0)
      changed += !same;
    else
      EXPECT_TRUE(same) << k;
  }
  EXPECT_GT(changed, 0);

  write_text(dir.path() + "/noinit.yaml", base + "decoder_only: true\nout_dir: " + dir.path() + "/x\n");
  o.config_path = dir.path() + "/noinit.yaml";
  expect_train_error(o, "decoder_only needs init");
  write_text(dir.path() + "/toomany.yaml", base + "train_codebooks: [3]\nout_dir: " + dir.path() + "/x\n");
  o.config_path = dir.path() + "/toomany.yaml";
  expect_train_error(o, "the codec has 2");
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

  // `v2m export --codec DIR` swaps in a codec with the same codebooks (a fine-tuned decoder)
  // and refuses one whose codebooks differ, writing nothing.
  nn::Encodec tuned = nn::load_encodec(d.path() + "/codec");
  {
    at::NoGradGuard ng;
    for (auto& p : tuned->decoder->parameters()) p.mul_(0.5);
  }
  export_codec(tuned, d.path() + "/tuned");
  ASSERT_EQ(run_capture(cli + " -q export " + d.path() + "/m -o " + d.path() + "/mt --dtype fp32 --codec " + d.path() +
                            "/tuned", &out), 0)
      << out;
  const nn::TensorMap tuned_w = nn::load_safetensors(d.path() + "/tuned/model.safetensors");
  const nn::TensorMap mt = nn::load_safetensors(d.path() + "/mt/model.safetensors");
  int decoder_tensors = 0;
  for (const auto& [k, t] : tuned_w) {
    EXPECT_TRUE(at::equal(mt.at("codec." + k), t)) << k;
    if (k.rfind("decoder.", 0) == 0) decoder_tensors += !at::equal(t, codec_w.at(k));
  }
  EXPECT_GT(decoder_tensors, 0);
  at::manual_seed(8);
  nn::Encodec reseeded(mc.codec);
  export_codec(reseeded, d.path() + "/reseeded");
  EXPECT_EQ(run_capture(cli + " -q export " + d.path() + "/m -o " + d.path() + "/mr --codec " + d.path() + "/reseeded",
                        &out), 1);
  EXPECT_NE(out.find("differs from the model's"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(d.path() + "/mr/model.safetensors"));

  nn::EncodecConfig other = mc.codec;
  other.num_filters = 4;
  nn::Encodec wrong(other);
  export_codec(wrong, d.path() + "/codec4");
  EXPECT_EQ(run_capture(cli + " -q init " + tiny + " --codec " + d.path() + "/codec4 -o " + d.path() + "/m4", &out), 1);
  EXPECT_NE(out.find(d.path() + "/codec4"), std::string::npos) << out;
  EXPECT_NE(out.find("codec does not match"), std::string::npos) << out;
  EXPECT_FALSE(file_exists(d.path() + "/m4/model.safetensors"));
}

// The shipped codec configs parse; the fine-tune's codec is the one it starts from (the
// embedded model's, which configs/synth/codec.yaml trained), so init and export --codec fit.
TEST(ShippedConfigs, CodecFineTuneMatchesTheEmbeddedModelsCodec) {
  const std::string root = std::string(V2M_SOURCE_DIR) + "/";
  const CodecTrainConfig base = load_codec_train_config(root + "configs/synth/codec.yaml");
  const CodecTrainConfig ft = load_codec_train_config(root + "configs/synth/codec_ft.yaml");
  EXPECT_TRUE(ft.decoder_only);
  EXPECT_FALSE(ft.init.empty());
  const model::ModelConfig tiny = model::load_model_config(root + "models/v2m-tiny/config.yaml");
  nn::EncodecConfig a = base.codec, b = ft.codec, c = tiny.codec;
  b.target_bandwidths = c.target_bandwidths = a.target_bandwidths;
  EXPECT_EQ(to_yaml(a), to_yaml(b));
  EXPECT_EQ(to_yaml(b), to_yaml(c));
  EXPECT_NE(base.out_dir, ft.out_dir);
  for (int64_t k : ft.train_codebooks) EXPECT_LE(k, tiny.codec.num_codebooks);
  EXPECT_NE(std::find(ft.train_codebooks.begin(), ft.train_codebooks.end(), tiny.decoder.num_codebooks),
            ft.train_codebooks.end())
      << "the codebooks the embedded decoder generates are among those the codec decoder trains on";
}
