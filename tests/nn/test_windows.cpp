#include <gtest/gtest.h>

#include "model/windows.h"
#include "v2m/error.h"

using v2m::model::plan_windows;

TEST(Windows, ShortVideoIsOneWindow) {
  auto w = plan_windows(250, 1500, 500);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].gen_begin, 0);
  EXPECT_EQ(w[0].gen_end, 250);
}

TEST(Windows, CoverEveryFrameExactlyOnce) {
  for (int64_t total : {1, 1499, 1500, 1501, 3750, 9001}) {
    for (auto [win, stride] : {std::pair<int64_t, int64_t>{1500, 500}, {1500, 1500}, {250, 1}, {100, 37}}) {
      auto ws = plan_windows(total, win, stride);
      std::vector<int> hits(total, 0);
      for (size_t i = 0; i < ws.size(); ++i) {
        const auto& w = ws[i];
        for (int64_t f = w.gen_begin; f < w.gen_end; ++f) hits[f]++;
        // The prompt + new frames fit in the window and the condition covers them.
        EXPECT_LE(w.gen_end - w.prompt_begin, win);
        EXPECT_EQ(w.prompt_begin, w.cond_begin);
        EXPECT_GE(w.cond_end, w.gen_end);
        if (i > 0) {
          EXPECT_EQ(w.gen_begin, ws[i - 1].gen_end);
          EXPECT_EQ(w.gen_begin - w.prompt_begin, win - stride);  // prompt = last W - S frames
        }
      }
      for (int64_t f = 0; f < total; ++f) ASSERT_EQ(hits[f], 1) << "total " << total << " frame " << f;
    }
  }
}

TEST(Windows, RejectsBadStride) {
  EXPECT_THROW(plan_windows(10, 5, 6), v2m::Error);
  EXPECT_THROW(plan_windows(10, 5, 0), v2m::Error);
}
