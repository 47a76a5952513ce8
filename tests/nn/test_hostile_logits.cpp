// The sampler refuses non-finite logits with the step number: corrupt weights must not turn
// into an opaque multinomial failure or silently constant codes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "nn/sampling.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {

std::string error_of(Sampler& s, const at::Tensor& logits) {
  try {
    s.sample(logits);
  } catch (const v2m::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(HostileLogits, NanOrInfLogitsThrowWithTheStep) {
  torch::manual_seed(1);
  for (bool greedy : {false, true}) {
    SamplingParams p;
    p.greedy = greedy;
    Sampler s(p);
    auto good = torch::randn({2, 4, 32});
    s.sample(good);
    s.sample(good);
    auto bad = good.clone();
    bad[1][2][7] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(error_of(s, bad), "generation: NaN/Inf logits at step 3 (weights corrupt? try --check-weights)");
    auto inf = good.clone();
    inf[0][0][0] = std::numeric_limits<float>::infinity();
    EXPECT_NE(error_of(s, inf).find("at step 4"), std::string::npos);
    auto ninf = good.clone();
    ninf[0][3][31] = -std::numeric_limits<float>::infinity();
    EXPECT_NE(error_of(s, ninf).find("NaN/Inf logits"), std::string::npos);
    // Finite logits, however extreme, still sample.
    auto big = good * 1e30;
    EXPECT_EQ(s.sample(big).sizes().vec(), (std::vector<int64_t>{2, 4}));
  }
}
