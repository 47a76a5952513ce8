#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "nn/clip_vision.h"
#include "nn/state_dict.h"
#include "test_util.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {

// B/32 geometry (224 px, 32 px patches -> 50 tokens) at a tiny width.
ClipVisionConfig tiny_b32() {
  ClipVisionConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.projection_dim = 16;
  return c;
}

// Tiny everything (for the load tests: 32 px images, 8 px patches).
ClipVisionConfig tiny() {
  ClipVisionConfig c = tiny_b32();
  c.image_size = 32;
  c.patch_size = 8;
  return c;
}

// A transformers CLIPConfig JSON for `c` (vision_config + top-level projection_dim).
nlohmann::json hf_clip_config(const ClipVisionConfig& c) {
  nlohmann::json v = {{"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_hidden_layers},
                      {"num_attention_heads", c.num_attention_heads},
                      {"image_size", c.image_size},
                      {"patch_size", c.patch_size},
                      {"num_channels", 3},
                      {"layer_norm_eps", c.layer_norm_eps},
                      {"hidden_act", c.hidden_act},
                      {"projection_dim", 999}};  // ignored: CLIPModel uses the top-level value
  return {{"model_type", "clip"},
          {"projection_dim", c.projection_dim},
          {"text_config", {{"hidden_size", 8}}},
          {"vision_config", v}};
}

// Writes a CLIPModel-like directory: vision tensors of `m` + text tensors that must be ignored.
void write_clip_dir(const std::string& dir, ClipVision& m, TensorMap* edit = nullptr) {
  TensorMap t;
  collect_state(*m, "", &t);
  t["text_model.embeddings.token_embedding.weight"] = torch::randn({10, 8});
  t["text_projection.weight"] = torch::randn({16, 8});
  t["logit_scale"] = torch::tensor(2.6592f);
  t["vision_model.embeddings.position_ids"] = torch::arange(50).unsqueeze(0);
  if (edit)
    for (auto& [k, v] : *edit) {
      if (v.defined()) t[k] = v;
      else t.erase(k);
    }
  write_text(dir + "/config.json", hf_clip_config(m->cfg).dump(2));
  save_safetensors(dir + "/model.safetensors", t);
}

}  // namespace

TEST(ClipVision, OutputShapesForB32Geometry) {
  torch::manual_seed(0);
  ClipVision m(tiny_b32());
  m->eval();
  torch::NoGradGuard ng;
  auto px = torch::randn({3, 3, 224, 224});
  EXPECT_EQ(m->vision_model->forward(px).sizes(), (std::vector<int64_t>{3, 50, 32}));
  EXPECT_EQ(m->forward(px).sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(m->pooled(px).sizes(), (std::vector<int64_t>{3, 32}));
  // Frames are independent: one frame alone gives the same embedding.
  EXPECT_TRUE(torch::allclose(m->forward(px.slice(0, 1, 2)), m->forward(px).slice(0, 1, 2), 1e-5, 1e-5));
  EXPECT_THROW(m->forward(torch::randn({1, 3, 200, 200})), v2m::Error);
}

TEST(ClipVision, ParameterCountOfB32MatchesTransformers) {
  // CLIPVisionModelWithProjection(openai/clip-vit-base-patch32): 87,456,000 in vision_model
  // (2,398,464 embeddings + 12 x 7,087,872 layers + 2 x 1,536 LayerNorms) + 393,216 projection.
  ClipVision m(ClipVisionConfig{});
  EXPECT_EQ(count_parameters(*m->vision_model), 87456000);
  EXPECT_EQ(count_parameters(*m), 87849216);
}

TEST(ClipVision, ConfigFromHfReadsVisionConfigAndTopLevelProjection) {
  auto c = clip_vision_config_from_hf(hf_clip_config(tiny()));
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.image_size, 32);
  EXPECT_EQ(c.patch_size, 8);
  EXPECT_EQ(c.projection_dim, 16);
  // A vision-only config (CLIPVisionModelWithProjection) carries its own projection_dim;
  // absent keys keep transformers' B/32 defaults.
  auto v = clip_vision_config_from_hf(nlohmann::json{{"projection_dim", 256}, {"hidden_act", "gelu"}});
  EXPECT_EQ(v.projection_dim, 256);
  EXPECT_EQ(v.hidden_size, 768);
  EXPECT_EQ(v.hidden_act, "gelu");
  EXPECT_EQ(v.num_channels, 3);
  EXPECT_EQ(clip_vision_config_from_hf(nlohmann::json{{"num_channels", 1}}).num_channels, 1);
  EXPECT_THROW(clip_vision_config_from_hf(nlohmann::json{{"hidden_act", "relu"}}), v2m::Error);
  EXPECT_THROW(clip_vision_config_from_hf(nlohmann::json{{"hidden_size", "wide"}}), v2m::Error);
}

TEST(ClipVision, SaveLoadRoundTripByName) {
  TempDir d;
  torch::manual_seed(1);
  ClipVision a(tiny());
  a->eval();
  write_clip_dir(d.path(), a);
  ClipVision b = load_clip_vision(d.path());
  torch::NoGradGuard ng;
  auto px = torch::randn({2, 3, 32, 32});
  EXPECT_TRUE(torch::equal(a->forward(px), b->forward(px)));
  EXPECT_TRUE(torch::equal(a->pooled(px), b->pooled(px)));
}

TEST(ClipVision, MissingOrMisshapenTensorNamesTensorAndShapes) {
  TempDir d;
  ClipVision a(tiny());
  {
    TensorMap edit{{"visual_projection.weight", at::Tensor()}};
    write_clip_dir(d.path(), a, &edit);
    try {
      load_clip_vision(d.path());
      FAIL() << "missing tensor accepted";
    } catch (const v2m::Error& e) {
      EXPECT_NE(std::string(e.what()).find("visual_projection.weight"), std::string::npos) << e.what();
    }
  }
  {
    TensorMap edit{{"vision_model.encoder.layers.1.mlp.fc1.weight", torch::zeros({65, 32})}};
    write_clip_dir(d.path(), a, &edit);
    try {
      load_clip_vision(d.path());
      FAIL() << "wrong shape accepted";
    } catch (const v2m::Error& e) {
      const std::string s = e.what();
      EXPECT_NE(s.find("vision_model.encoder.layers.1.mlp.fc1.weight"), std::string::npos) << s;
      EXPECT_NE(s.find("[65, 32]"), std::string::npos) << s;
      EXPECT_NE(s.find("[64, 32]"), std::string::npos) << s;
    }
  }
  {
    // A third layer in the file that the config does not have: config and weights disagree.
    TensorMap edit{{"vision_model.encoder.layers.2.layer_norm1.weight", torch::ones({32})}};
    write_clip_dir(d.path(), a, &edit);
    try {
      load_clip_vision(d.path());
      FAIL() << "extra layer accepted";
    } catch (const v2m::Error& e) {
      EXPECT_NE(std::string(e.what()).find("vision_model.encoder.layers.2.layer_norm1.weight"), std::string::npos)
          << e.what();
    }
  }
}

TEST(ClipVision, PreprocessNormalisesWithClipMeanStd) {
  // Already 224 x 224: no resize, exact rescale + normalise, CHW.
  std::vector<uint8_t> img(224 * 224 * 3);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<uint8_t>((i * 7) % 256);
  auto x = clip_preprocess(img.data(), 224, 224);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 224, 224}));
  const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f}, std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  for (int c = 0; c < 3; ++c) {
    const int y = 17, xx = 101;
    const float want = (img[(y * 224 + xx) * 3 + c] / 255.0f - mean[c]) / std[c];
    EXPECT_NEAR(x[c][y][xx].item<float>(), want, 1e-5);
  }
}

TEST(ClipVision, PreprocessResizesShortSideAndCropsCentre) {
  // 120 x 360 (H x W): short side -> 224, long side int(224 * 3) = 672, centre crop 224 wide.
  // Columns 0..119 red, 120..239 green, 240..359 blue: the crop sees only the green band.
  const int H = 120, W = 360;
  std::vector<uint8_t> img(H * W * 3, 0);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) img[(y * W + x) * 3 + x / 120] = 200;
  auto px = clip_preprocess(img.data(), H, W, 224);
  ASSERT_EQ(px.sizes(), (std::vector<int64_t>{3, 224, 224}));
  const float g = (200 / 255.0f - 0.4578275f) / 0.26130258f, zr = -0.48145466f / 0.26862954f;
  // Away from the band edges (the crop spans resized columns 224..447, bands meet at 224/448).
  EXPECT_NEAR(px[1][100][112].item<float>(), g, 1e-5);
  EXPECT_NEAR(px[0][100][112].item<float>(), zr, 1e-5);
  // A constant image stays exactly constant through the antialiased bicubic.
  std::vector<uint8_t> flat(50 * 80 * 3, 77);
  auto f = clip_preprocess(flat.data(), 50, 80, 32);
  EXPECT_NEAR(f[2].min().item<float>(), f[2].max().item<float>(), 1e-6);
  // Row stride: a padded row layout gives the same result.
  std::vector<uint8_t> padded(H * (W * 3 + 16), 9);
  for (int y = 0; y < H; ++y) std::copy_n(&img[y * W * 3], W * 3, &padded[y * (W * 3 + 16)]);
  EXPECT_TRUE(torch::equal(clip_preprocess(padded.data(), H, W, 224, W * 3 + 16), px));
}

TEST(ClipVision, MatchesTransformersFixtures) {
  const std::string dir = std::string(V2M_FIXTURES_DIR) + "/hf/clip";
  if (!file_exists(dir + "/io.safetensors"))
    GTEST_SKIP() << "no transformers fixtures in " << dir << " (run scripts/make_hf_fixtures.py --only clip)";
  auto io = load_safetensors(dir + "/io.safetensors");
  torch::NoGradGuard ng;
  const auto& px = io.at("pixel_values");
  for (const std::string name : {"vision_with_projection", "clip_model"}) {
    SCOPED_TRACE(name);
    ClipVision m = load_clip_vision(dir + "/" + name);
    EXPECT_TRUE(torch::allclose(m->forward(px), io.at(name + ".image_embeds"), 1e-4, 1e-4));
    EXPECT_TRUE(torch::allclose(m->pooled(px), io.at(name + ".pooled"), 1e-4, 1e-4));
  }
  // CLIPImageProcessor: PIL's uint8 bicubic vs float antialiased bicubic -> at most about one
  // uint8 level (0.015 after normalisation) on most pixels.
  const auto img = io.at("image_uint8").contiguous();  // [H, W, 3]
  auto mine = clip_preprocess(img.data_ptr<uint8_t>(), static_cast<int>(img.size(0)), static_cast<int>(img.size(1)),
                              static_cast<int>(io.at("processed").size(-1)));
  auto diff = (mine - io.at("processed").squeeze(0)).abs();
  EXPECT_LT(diff.mean().item<float>(), 0.01);
  EXPECT_LT(diff.max().item<float>(), 0.1);
}
