// MusicGen's "delay" codebook interleaving (Copet et al. 2023, sec. 2.2; audiocraft's
// DelayedPatternProvider, transformers' MusicgenForCausalLM.build_delay_pattern_mask).
//
// Codebook k is shifted right by delays[k] steps (mono MusicGen: delays = 0, 1, ..., K-1;
// stereo: codebooks 2c and 2c+1 share delay c). With D = max delay, a [B, K, T] code grid
// becomes a [B, K, T + D] pattern whose column s holds, for codebook k, frame s - delays[k]
// (or `pad` where that frame does not exist).
//
// The language model reads the pattern shifted by one column with a BOS column in front
// (BOS = pad = card = 2048 in MusicGen, so the leading fill and the BOS coincide):
//   LM input  = [BOS, pattern[..., :-1]]      LM target = pattern       loss where mask
// which is exactly transformers' generation sequence (its column 0 is the BOS/pad column)
// and audiocraft's pattern sequence with its leading special step.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace v2m::nn {

// delays[k] for MusicGen: k for mono, k / 2 for stereo (left/right interleaved codebooks).
std::vector<int64_t> musicgen_delays(int64_t num_codebooks, int64_t audio_channels = 1);

// codes: [B, K, T] int64 -> [B, K, T + D], positions without a frame set to `pad`.
// Empty `delays` means the mono default.
at::Tensor build_delay_pattern(const at::Tensor& codes, int64_t pad, const std::vector<int64_t>& delays = {});

// pattern: [B, K, S] -> [B, K, S - D]; exact inverse of build_delay_pattern.
at::Tensor revert_delay_pattern(const at::Tensor& pattern, const std::vector<int64_t>& delays = {});

// Mono shorthand: delays 0..K-1 (K must equal pattern.size(1)).
at::Tensor revert_delay_pattern(const at::Tensor& pattern, int64_t num_codebooks);

// bool [K, T + D]: true where the pattern holds a real frame (where the training loss counts).
at::Tensor delay_pattern_mask(int64_t num_codebooks, int64_t frames, const std::vector<int64_t>& delays = {},
                              at::Device device = at::kCPU);

// delay_pattern_mask for mono MusicGen (delays 0..K-1): the training-loss mask [K, T + K - 1].
at::Tensor delay_valid_mask(int64_t num_codebooks, int64_t frames);

// Training view of codes [B, K, T]: input [B, K, T + D] (BOS column + pattern without its last
// column), target [B, K, T + D] (the pattern), mask [K, T + D] (delay_pattern_mask).
struct DelayedSequence {
  at::Tensor input, target, mask;
};
DelayedSequence delay_pattern_for_training(const at::Tensor& codes, int64_t bos, int64_t pad,
                                           const std::vector<int64_t>& delays = {});

}  // namespace v2m::nn
