// `v2m import` on directories laid out as the Hugging Face hub has them (CLIPModel,
// MusicgenForConditionalGeneration with its audio_encoder in weight-norm form), built
// here from a tiny model so the test needs no download.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "model/hf_import.h"
#include "model/v2m_model.h"
#include "nn/state_dict.h"
#include "test_util.h"
#include "v2m/error.h"

using namespace v2m;

namespace {

const std::string kTiny = std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml";

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

struct HubDirs {
  std::string clip, musicgen;
  nn::TensorMap original;
};

HubDirs make_hub_dirs(const TempDir& d) {
  auto m = model::load_model(kTiny);
  HubDirs h;
  nn::collect_state(*m, "", &h.original);
  h.clip = d.path() + "/clip";
  h.musicgen = d.path() + "/musicgen";
  ::mkdir(h.clip.c_str(), 0755);
  ::mkdir(h.musicgen.c_str(), 0755);
  nn::TensorMap clip, mg;
  for (const auto& [k, t] : h.original) {
    if (k.rfind("clip.", 0) == 0) clip[k.substr(5)] = t;
    if (k.rfind("decoder.", 0) == 0) mg[k] = t;
    if (k.rfind("codec.", 0) == 0) {
      const std::string rest = k.substr(6);
      if (ends_with(rest, "conv.weight")) {
        // The hub stores EnCodec convs in weight-norm form: g = ||v|| per output channel.
        const std::string base = "audio_encoder." + rest.substr(0, rest.size() - 6);
        mg[base + "weight_v"] = t * 2.0;
        mg[base + "weight_g"] = t.flatten(1).norm(2, 1).view({t.size(0), 1, 1});
      } else {
        mg["audio_encoder." + rest] = t;
      }
    }
  }
  clip["text_model.embeddings.token_embedding.weight"] = torch::zeros({8, 4});  // ignored
  mg["enc_to_dec_proj.weight"] = torch::zeros({64, 16});                        // not used by v2m
  mg["enc_to_dec_proj.bias"] = torch::zeros({64});
  nn::save_safetensors(h.clip + "/model.safetensors", clip);
  nn::save_safetensors(h.musicgen + "/model.safetensors", mg);
  nlohmann::json cj = {{"projection_dim", 32},
                       {"vision_config",
                        {{"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
                         {"num_attention_heads", 4}, {"image_size", 64}, {"patch_size", 16}}}};
  write_text(h.clip + "/config.json", cj.dump());
  nlohmann::json mj = {
      {"decoder",
       {{"hidden_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"ffn_dim", 128},
        {"num_codebooks", 4}, {"vocab_size", 64}, {"pad_token_id", 64}, {"bos_token_id", 64}}},
      {"audio_encoder",
       {{"sampling_rate", 16000}, {"num_filters", 8}, {"upsampling_ratios", {8, 5, 4, 2}}, {"num_lstm_layers", 1},
        {"codebook_size", 64}, {"codebook_dim", 32}, {"hidden_size", 32}, {"target_bandwidths", {2.0}},
        {"use_conv_shortcut", false}}},  // as encodec_32khz (transformers defaults to true)
      {"text_encoder", {{"d_model", 16}}}};
  write_text(h.musicgen + "/config.json", mj.dump());
  return h;
}

}  // namespace

TEST(HfImport, AssemblesModelFromHubLayout) {
  TempDir d;
  auto h = make_hub_dirs(d);
  model::ImportPaths in{h.clip, "", h.musicgen, kTiny};
  const std::string out = d.path() + "/v2m";
  model::import_hf(in, out, "fp32", 0);
  auto m = model::load_model(out);
  nn::TensorMap got;
  nn::collect_state(*m, "", &got);
  for (const auto& [k, t] : h.original) {
    if (k.rfind("fusion.", 0) == 0) continue;  // freshly initialised by import
    ASSERT_TRUE(got.count(k)) << k;
    EXPECT_TRUE(torch::allclose(got[k], t, 1e-5, 1e-6)) << k;  // weight norm folded back exactly
  }
}

TEST(HfImport, MixedDtypeStoresTheDecoderLinearsInBf16AndTheRestInFp32) {
  TempDir d;
  auto h = make_hub_dirs(d);
  const std::string out = d.path() + "/v2m";
  model::import_hf({h.clip, "", h.musicgen, kTiny}, out, "mixed", 0);
  auto file = nn::load_safetensors(out + "/model.safetensors");
  const auto& q = file.at("decoder.model.decoder.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(torch::equal(q, h.original.at("decoder.model.decoder.layers.0.self_attn.q_proj.weight").to(at::kBFloat16)));
  EXPECT_EQ(file.at("decoder.model.decoder.embed_tokens.0.weight").scalar_type(), at::kFloat);
  EXPECT_EQ(file.at("clip.visual_projection.weight").scalar_type(), at::kFloat);
}

TEST(HfImport, WrongShapeNamesTensorAndBothShapes) {
  TempDir d;
  auto h = make_hub_dirs(d);
  auto mg = nn::load_safetensors(h.musicgen + "/model.safetensors");
  nn::TensorMap copy(mg.begin(), mg.end());
  copy["decoder.lm_heads.0.weight"] = torch::zeros({60, 64});
  nn::save_safetensors(h.musicgen + "/model.safetensors", copy);
  try {
    model::import_hf({h.clip, "", h.musicgen, kTiny}, d.path() + "/out", "fp32", 0);
    FAIL();
  } catch (const Error& e) {
    const std::string s = e.what();
    EXPECT_NE(s.find("decoder.lm_heads.0.weight"), std::string::npos) << s;
    EXPECT_NE(s.find("[60, 64]"), std::string::npos) << s;
    EXPECT_NE(s.find("[64, 64]"), std::string::npos) << s;
  }
  EXPECT_FALSE(file_exists(d.path() + "/out/model.safetensors"));
}
