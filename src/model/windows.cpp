#include "model/windows.h"

#include <algorithm>
#include <string>

#include "v2m/error.h"

namespace v2m::model {

std::vector<Window> plan_windows(int64_t total, int64_t window, int64_t stride) {
  if (window <= 0 || stride <= 0 || stride > window)
    throw Error("invalid generation window: window " + std::to_string(window) + " frames, stride " +
                std::to_string(stride) + " frames (need 0 < stride <= window)");
  std::vector<Window> out;
  if (total <= 0) return out;
  out.push_back({0, window, 0, 0, std::min(total, window)});
  int64_t pos = out.back().gen_end;
  for (int64_t k = 1; pos < total; ++k) {
    const int64_t begin = k * stride;
    out.push_back({begin, begin + window, begin, pos, std::min(total, begin + window)});
    pos = out.back().gen_end;
  }
  return out;
}

}  // namespace v2m::model
