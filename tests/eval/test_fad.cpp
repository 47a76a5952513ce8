// Gaussian fits and the Fréchet distance behind FAD.
#include <gtest/gtest.h>

#include "eval/fad.h"
#include "v2m/error.h"

TEST(Fad, FitIsMeanAndUnbiasedCovariance) {
  at::Tensor x = at::tensor({0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0}, at::kDouble).view({4, 2});
  auto g = v2m::eval::fit_gaussian(x);
  EXPECT_NEAR(g.mu[0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(g.mu[1].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(g.sigma[0][0].item<double>(), 4.0 / 3.0, 1e-12);  // sum of squares 4, N - 1 = 3
  EXPECT_NEAR(g.sigma[0][1].item<double>(), 0.0, 1e-12);
  EXPECT_EQ(g.count, 4);
}

TEST(Fad, IdenticalGaussiansGiveZero) {
  at::manual_seed(0);
  at::Tensor x = at::randn({300, 16}) * 3 + 1;
  auto g = v2m::eval::fit_gaussian(x);
  EXPECT_NEAR(v2m::eval::frechet_distance(g, g), 0.0, 1e-8);
}

TEST(Fad, MatchesClosedFormForDiagonalCovariances) {
  // Diagonal S1, S2: d^2 = |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2.
  v2m::eval::Gaussian a, b;
  a.mu = at::tensor({0.0, 1.0, -2.0}, at::kDouble);
  b.mu = at::tensor({1.0, 1.0, 0.0}, at::kDouble);
  a.sigma = at::diag(at::tensor({1.0, 4.0, 9.0}, at::kDouble));
  b.sigma = at::diag(at::tensor({4.0, 1.0, 0.25}, at::kDouble));
  const double expect = (1 + 0 + 4) + (1 - 2) * (1 - 2) + (2 - 1) * (2 - 1) + (3 - 0.5) * (3 - 0.5);
  EXPECT_NEAR(v2m::eval::frechet_distance(a, b), expect, 1e-9);
  EXPECT_NEAR(v2m::eval::frechet_distance(b, a), expect, 1e-9);
}

TEST(Fad, RotationInvariantAndRejectsTooFewSamples) {
  // Same distributions expressed in a rotated basis: the distance does not change.
  at::manual_seed(1);
  at::Tensor x = at::randn({400, 4}, at::kDouble), y = at::randn({400, 4}, at::kDouble) * 2 + 0.5;
  at::Tensor q = std::get<0>(at::linalg_qr(at::randn({4, 4}, at::kDouble)));
  const double d = v2m::eval::frechet_distance(v2m::eval::fit_gaussian(x), v2m::eval::fit_gaussian(y));
  const double dr =
      v2m::eval::frechet_distance(v2m::eval::fit_gaussian(at::matmul(x, q)), v2m::eval::fit_gaussian(at::matmul(y, q)));
  EXPECT_GT(d, 1.0);
  EXPECT_NEAR(d, dr, 1e-8 * d);
  EXPECT_THROW(v2m::eval::fit_gaussian(at::zeros({1, 4})), v2m::Error);
}
