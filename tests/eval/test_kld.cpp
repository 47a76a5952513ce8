// KL divergence as audiocraft's kl_divergence (F.kl_div over eps-shifted predictions).
#include <gtest/gtest.h>

#include <cmath>

#include "eval/kld.h"

TEST(Kld, IdenticalDistributionsGiveZero) {
  at::Tensor p = at::tensor({0.2, 0.3, 0.5}, at::kDouble).view({1, 3});
  // Only the 1e-6 shift remains: sum p (log p - log(p + eps)) ~ -3 eps.
  EXPECT_NEAR(v2m::eval::kl_divergence(p, p)[0].item<double>(), 0.0, 1e-5);
}

TEST(Kld, MatchesHandComputedCase) {
  // P = (0.5, 0.5), Q = (0.9, 0.1):
  //   KL(P||Q) = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.510826
  //   KL(Q||P) = 0.9 ln(0.9/0.5) + 0.1 ln(0.1/0.5) = 0.368064
  at::Tensor p = at::tensor({0.5, 0.5}, at::kDouble).view({1, 2});
  at::Tensor q = at::tensor({0.9, 0.1}, at::kDouble).view({1, 2});
  EXPECT_NEAR(v2m::eval::kl_divergence(q, p)[0].item<double>(), 0.510826, 2e-5);  // (pred, target)
  EXPECT_NEAR(v2m::eval::kl_divergence(p, q)[0].item<double>(), 0.368064, 2e-5);
}

TEST(Kld, ZeroTargetProbabilitiesContributeNothing) {
  at::Tensor target = at::tensor({1.0, 0.0}, at::kDouble).view({1, 2});
  at::Tensor pred = at::tensor({0.25, 0.75}, at::kDouble).view({1, 2});
  const double v = v2m::eval::kl_divergence(pred, target)[0].item<double>();
  EXPECT_TRUE(std::isfinite(v));
  EXPECT_NEAR(v, -std::log(0.25 + 1e-6), 1e-9);
}
