#include "nn/delay_pattern.h"

#include <algorithm>
#include <string>

#include "v2m/error.h"

namespace v2m::nn {

namespace {

std::vector<int64_t> resolve(const std::vector<int64_t>& delays, int64_t k) {
  if (delays.empty()) return musicgen_delays(k);
  if (static_cast<int64_t>(delays.size()) != k)
    throw Error(describe("delay pattern", "codes", "got " + std::to_string(delays.size()) + " delays for " +
                                                       std::to_string(k) + " codebooks"));
  for (int64_t d : delays)
    if (d < 0) throw Error(describe("delay pattern", "codes", "negative delay " + std::to_string(d)));
  return delays;
}

int64_t max_delay(const std::vector<int64_t>& d) { return d.empty() ? 0 : *std::max_element(d.begin(), d.end()); }

void check_codes(const at::Tensor& t, const char* what) {
  if (t.dim() != 3)
    throw Error(describe("delay pattern", what, "expected [B, K, T], got " + std::to_string(t.dim()) + " dims"));
}

}  // namespace

std::vector<int64_t> musicgen_delays(int64_t num_codebooks, int64_t audio_channels) {
  if (audio_channels != 1 && audio_channels != 2)
    throw Error(describe("delay pattern", "audio_channels", "must be 1 or 2, got " + std::to_string(audio_channels)));
  if (audio_channels == 2 && num_codebooks % 2)
    throw Error(describe("delay pattern", "num_codebooks", "stereo needs an even number of codebooks"));
  std::vector<int64_t> d(num_codebooks);
  for (int64_t k = 0; k < num_codebooks; ++k) d[k] = audio_channels == 2 ? k / 2 : k;
  return d;
}

at::Tensor build_delay_pattern(const at::Tensor& codes, int64_t pad, const std::vector<int64_t>& delays_in) {
  check_codes(codes, "codes");
  const int64_t K = codes.size(1), T = codes.size(2);
  const auto delays = resolve(delays_in, K);
  at::Tensor out = at::full({codes.size(0), K, T + max_delay(delays)}, pad, codes.options());
  for (int64_t k = 0; k < K; ++k) out.select(1, k).narrow(-1, delays[k], T).copy_(codes.select(1, k));
  return out;
}

at::Tensor revert_delay_pattern(const at::Tensor& pattern, const std::vector<int64_t>& delays_in) {
  check_codes(pattern, "pattern");
  const int64_t K = pattern.size(1);
  const auto delays = resolve(delays_in, K);
  const int64_t T = pattern.size(2) - max_delay(delays);
  if (T < 0)
    throw Error(describe("delay pattern", "pattern", "length " + std::to_string(pattern.size(2)) +
                                                         " is shorter than the largest delay"));
  at::Tensor out = at::empty({pattern.size(0), K, T}, pattern.options());
  for (int64_t k = 0; k < K; ++k) out.select(1, k).copy_(pattern.select(1, k).narrow(-1, delays[k], T));
  return out;
}

at::Tensor revert_delay_pattern(const at::Tensor& pattern, int64_t num_codebooks) {
  check_codes(pattern, "pattern");
  if (pattern.size(1) != num_codebooks)
    throw Error(describe("delay pattern", "pattern", "has " + std::to_string(pattern.size(1)) + " codebooks, expected " +
                                                         std::to_string(num_codebooks)));
  return revert_delay_pattern(pattern, musicgen_delays(num_codebooks));
}

at::Tensor delay_valid_mask(int64_t num_codebooks, int64_t frames) {
  return delay_pattern_mask(num_codebooks, frames, musicgen_delays(num_codebooks));
}

at::Tensor delay_pattern_mask(int64_t num_codebooks, int64_t frames, const std::vector<int64_t>& delays_in,
                              at::Device device) {
  const auto delays = resolve(delays_in, num_codebooks);
  at::Tensor m = at::zeros({num_codebooks, frames + max_delay(delays)}, at::TensorOptions(at::kBool).device(device));
  for (int64_t k = 0; k < num_codebooks; ++k) m[k].narrow(0, delays[k], frames).fill_(true);
  return m;
}

DelayedSequence delay_pattern_for_training(const at::Tensor& codes, int64_t bos, int64_t pad,
                                           const std::vector<int64_t>& delays_in) {
  check_codes(codes, "codes");
  const auto delays = resolve(delays_in, codes.size(1));
  DelayedSequence s;
  s.target = build_delay_pattern(codes, pad, delays);
  s.input = at::empty_like(s.target);
  const int64_t S = s.target.size(2);
  if (S == 0) throw Error(describe("delay pattern", "codes", "no frames"));
  s.input.narrow(-1, 0, 1).fill_(bos);
  s.input.narrow(-1, 1, S - 1).copy_(s.target.narrow(-1, 0, S - 1));
  s.mask = delay_pattern_mask(codes.size(1), codes.size(2), delays, codes.device());
  return s;
}

}  // namespace v2m::nn
