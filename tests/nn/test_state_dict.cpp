#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/state_dict.h"
#include "test_util.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {
struct NetImpl : torch::nn::Module {
  NetImpl(int64_t in) { fc = register_module("fc", torch::nn::Linear(in, 3)); }
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(Net);
}  // namespace

TEST(StateDict, SaveLoadRoundTripIsZeroCopyAndExact) {
  TempDir d;
  Net a(4), b(4);
  TensorMap m;
  collect_state(*a, "model.", &m);
  m["extra.half"] = torch::randn({5}).to(torch::kHalf);
  save_safetensors(d.path() + "/w.safetensors", m);
  auto loaded = load_safetensors(d.path() + "/w.safetensors");
  EXPECT_EQ(loaded.at("extra.half").scalar_type(), at::kHalf);
  auto used = load_into(*b, loaded, "model.", "w.safetensors");
  EXPECT_EQ(used.size(), 2u);
  EXPECT_TRUE(torch::equal(a->fc->weight, b->fc->weight));
  EXPECT_TRUE(torch::equal(a->fc->bias, b->fc->bias));
}

TEST(StateDict, MissingTensorAndWrongShapeNameTheTensor) {
  Net a(4), b(5);
  TensorMap m;
  collect_state(*a, "", &m);
  try {
    load_into(*b, m, "", "w.safetensors");
    FAIL();
  } catch (const v2m::Error& e) {
    const std::string s = e.what();
    EXPECT_NE(s.find("fc.weight"), std::string::npos) << s;
    EXPECT_NE(s.find("[3, 4]"), std::string::npos) << s;
    EXPECT_NE(s.find("[3, 5]"), std::string::npos) << s;
  }
  m.erase("fc.bias");
  Net c(4);
  try {
    load_into(*c, m, "", "w.safetensors");
    FAIL();
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fc.bias"), std::string::npos);
  }
}

TEST(StateDict, CheckFiniteNamesTheBadTensor) {
  TensorMap m{{"ok", torch::ones({3})}, {"bad", torch::tensor({1.0f, NAN})}};
  try {
    check_finite(m, "w.safetensors");
    FAIL();
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'bad'"), std::string::npos);
  }
}
