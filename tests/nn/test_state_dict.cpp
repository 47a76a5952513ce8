#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>

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

namespace {
// This process's resident set in bytes (/proc/self/statm, second field, in pages).
size_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}
}  // namespace

// A finished stage's mapped weights leave the resident set and come back unchanged; tensors
// that are not a mapping (a copy made at load) keep their values.
TEST(StateDict, DropResidentWeightsGivesBackMappedPagesOnly) {
  struct BigImpl : torch::nn::Module {
    BigImpl() {
      w = register_parameter("w", torch::zeros({int64_t{16} << 20}), false);  // 64 MB
      copy = register_buffer("copy", torch::zeros({4}));
    }
    torch::Tensor w, copy;
  };
  TempDir d;
  const torch::Tensor big = torch::rand({int64_t{16} << 20});
  const torch::Tensor dbl = torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kDouble);  // another dtype: copied
  save_safetensors(d.path() + "/w.safetensors", {{"w", big}, {"copy", dbl}});
  auto loaded = load_safetensors(d.path() + "/w.safetensors");
  auto mod = std::make_shared<BigImpl>();
  load_into(*mod, loaded, "", "w.safetensors", /*alias=*/true);
  loaded.clear();
  const double sum = mod->w.sum().item<double>();  // touches every page
  const size_t before = resident_bytes();
  const size_t dropped = drop_resident_weights(*mod);
  const size_t after = resident_bytes();
  EXPECT_GE(dropped, size_t{63} << 20);
  EXPECT_GE(before - after, size_t{48} << 20);
  EXPECT_DOUBLE_EQ(mod->w.sum().item<double>(), sum);  // faulted back in from the page cache
  EXPECT_TRUE(torch::equal(mod->w, big));
  EXPECT_TRUE(torch::equal(mod->copy, torch::tensor({1.0f, 2.0f, 3.0f, 4.0f})));
  // A module of plain (anonymous) tensors: nothing to give back, nothing lost.
  auto plain = std::make_shared<BigImpl>();
  plain->w.uniform_();
  const torch::Tensor w0 = plain->w.clone();
  EXPECT_EQ(drop_resident_weights(*plain), 0u);
  EXPECT_TRUE(torch::equal(plain->w, w0));
}
