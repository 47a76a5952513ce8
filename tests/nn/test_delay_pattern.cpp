#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/delay_pattern.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {
constexpr int64_t kPad = 2048;
torch::Tensor random_codes(int64_t B, int64_t K, int64_t T, int64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::randint(0, kPad, {B, K, T}, torch::kLong);
}
}  // namespace

TEST(DelayPattern, ShiftsCodebookKRightByK) {
  auto codes = random_codes(2, 4, 5);
  auto p = build_delay_pattern(codes, kPad);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{2, 4, 8}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 0; k < 4; ++k)
      for (int64_t t = 0; t < 8; ++t) {
        const int64_t want = (t >= k && t < k + 5) ? codes[b][k][t - k].item<int64_t>() : kPad;
        EXPECT_EQ(p[b][k][t].item<int64_t>(), want) << b << " " << k << " " << t;
      }
}

TEST(DelayPattern, RevertIsExactInverse) {
  for (int64_t T : {1, 3, 17}) {
    auto codes = random_codes(3, 4, T, T);
    EXPECT_TRUE(torch::equal(revert_delay_pattern(build_delay_pattern(codes, kPad)), codes));
    EXPECT_TRUE(torch::equal(revert_delay_pattern(build_delay_pattern(codes, kPad), int64_t{4}), codes));
  }
  // stereo MusicGen: codebook pairs share a delay
  auto d = musicgen_delays(8, 2);
  EXPECT_EQ(d, (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  auto codes = random_codes(1, 8, 6);
  auto p = build_delay_pattern(codes, kPad, d);
  EXPECT_EQ(p.size(2), 9);
  EXPECT_TRUE(torch::equal(revert_delay_pattern(p, d), codes));
}

TEST(DelayPattern, MatchesTransformersDocumentedLayout) {
  // build_delay_pattern_mask's docstring, 4 codebooks, max_length 8 (BOS column included):
  //   [P, -1, -1, -1, -1, P, P, P] ... [P, P, P, P, -1, -1, -1, -1]
  auto unknown = torch::full({1, 4, 4}, -1, torch::kLong);
  auto seq = torch::cat({torch::full({1, 4, 1}, kPad, torch::kLong), build_delay_pattern(unknown, kPad)}, 2)[0];
  const int64_t P = kPad;
  auto want = torch::tensor(std::vector<int64_t>{P, -1, -1, -1, -1, P, P, P, P, P, -1, -1, -1, -1, P, P,
                             P, P, P, -1, -1, -1, -1, P, P, P, P, P, -1, -1, -1, -1}).view({4, 8});
  EXPECT_TRUE(torch::equal(seq, want)) << seq;
}

TEST(DelayPattern, MaskMarksRealFramesOnly) {
  auto codes = random_codes(2, 4, 6);
  auto m = delay_pattern_mask(4, 6);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{4, 9}));
  EXPECT_EQ(m.sum().item<int64_t>(), 4 * 6);
  EXPECT_TRUE(torch::equal(m.unsqueeze(0).expand({2, 4, 9}), build_delay_pattern(codes, kPad).ne(kPad)));
  EXPECT_TRUE(torch::equal(delay_valid_mask(4, 6), m));
}

TEST(DelayPattern, TrainingViewIsPatternShiftedByOneAfterBos) {
  auto codes = random_codes(2, 4, 5);
  auto s = delay_pattern_for_training(codes, /*bos=*/kPad, /*pad=*/kPad);
  EXPECT_TRUE(torch::equal(s.target, build_delay_pattern(codes, kPad)));
  EXPECT_TRUE((s.input.select(2, 0) == kPad).all().item<bool>());
  EXPECT_TRUE(torch::equal(s.input.narrow(2, 1, 7), s.target.narrow(2, 0, 7)));
  EXPECT_EQ(s.mask.sizes(), (std::vector<int64_t>{4, 8}));
}

TEST(DelayPattern, RejectsBadShapes) {
  EXPECT_THROW(build_delay_pattern(torch::zeros({4, 5}, torch::kLong), kPad), v2m::Error);
  EXPECT_THROW(build_delay_pattern(torch::zeros({1, 4, 5}, torch::kLong), kPad, {0, 1}), v2m::Error);
  EXPECT_THROW(revert_delay_pattern(torch::zeros({1, 4, 2}, torch::kLong)), v2m::Error);
  EXPECT_THROW(revert_delay_pattern(torch::zeros({1, 4, 9}, torch::kLong), int64_t{3}), v2m::Error);
}
