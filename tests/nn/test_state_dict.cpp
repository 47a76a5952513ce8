#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/linear.h"
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

TEST(Linear, MatchesTorchLinearInitAndForward) {
  for (bool bias : {true, false}) {
    torch::manual_seed(7);
    torch::nn::Linear ref(torch::nn::LinearOptions(6, 5).bias(bias));
    torch::manual_seed(7);
    v2m::nn::Linear ours(torch::nn::LinearOptions(6, 5).bias(bias));
    EXPECT_TRUE(torch::equal(ref->weight, ours->weight));
    EXPECT_EQ(ref->bias.defined(), ours->bias.defined());
    if (bias) EXPECT_TRUE(torch::equal(ref->bias, ours->bias));
    std::vector<std::string> ref_names, our_names;
    for (const auto& p : ref->named_parameters()) ref_names.push_back(p.key());
    for (const auto& p : ours->named_parameters()) our_names.push_back(p.key());
    EXPECT_EQ(ref_names, our_names);
    auto x = torch::randn({2, 3, 6});
    EXPECT_TRUE(torch::allclose(ref->forward(x), ours->forward(x)));
  }
}

TEST(Linear, SkipInitGuardDrawsNoRandomNumbers) {
  torch::manual_seed(3);
  const auto expected = torch::rand({4});
  torch::manual_seed(3);
  {
    v2m::nn::SkipInitGuard skip;
    EXPECT_TRUE(v2m::nn::skip_init_active());
    v2m::nn::Linear lin(64, 32);
    EXPECT_EQ(lin->weight.sizes(), (std::vector<int64_t>{32, 64}));
  }
  EXPECT_FALSE(v2m::nn::skip_init_active());
  // The generator did not move: the construction under the guard drew nothing.
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}
