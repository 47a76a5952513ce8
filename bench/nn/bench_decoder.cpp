// MusicGen-small decoder step on the CPU: the shape of generation with classifier-free
// guidance (batch 2 = cond + null condition), KV cache, 240 memory tokens (about 30 s of
// conditioning). Random fp32 weights: only the shapes matter for time. Reports the median
// time of one incremental decoder step (after a prefill of the BOS column), the bytes of
// weights each step streams, and the bandwidth that implies (a step at batch 2 is a chain
// of matrix-vector products, so it is memory-bound: compare with bench_machine's triad).
// JSON on stdout.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "nn/musicgen_decoder.h"
#include "nn/sampling.h"

using namespace v2m::nn;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main() {
  at::set_num_threads(2);
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  MusicgenDecoderConfig cfg;  // musicgen-small defaults
  MusicgenDecoder dec(cfg);
  dec->eval();

  const int64_t B = 1, B2 = 2, S = 240, steps = 50, K = cfg.num_codebooks;
  const int64_t D = cfg.hidden_size, F = cfg.ffn_dim, V = cfg.vocab_size, L = cfg.num_hidden_layers;
  at::Tensor memory = at::randn({B, S, D});
  at::Tensor mem2 = at::cat({memory, at::zeros_like(memory)}, 0);
  at::Tensor mask2 = at::cat({at::ones({B, S}, at::kLong), at::zeros({B, S}, at::kLong)}, 0);

  KVCache cache = dec->make_cache(B2, steps + 8);
  const double t_mem = now_ms();
  dec->set_memory(cache, mem2, mask2);
  const double set_memory_ms = now_ms() - t_mem;

  at::Tensor tok = at::full({B2, K, 1}, cfg.bos_token_id, at::kLong);
  const double t_pre = now_ms();
  at::Tensor logits = dec->forward(tok, {}, {}, &cache);  // prefill: the BOS column
  const double prefill_ms = now_ms() - t_pre;

  SamplingParams sp;  // defaults: top-k 250, CFG 3
  Sampler sampler(sp);
  std::vector<double> step_ms, sample_ms;
  for (int64_t s = 0; s < steps; ++s) {
    const double t0 = now_ms();
    at::Tensor guided = apply_cfg(logits.select(2, -1), sp.cfg_scale);  // [B, K, V]
    at::Tensor next = sampler.sample(guided);                          // [B, K]
    tok = next.unsqueeze(-1).repeat({2, 1, 1});
    const double t1 = now_ms();
    logits = dec->forward(tok, {}, {}, &cache);
    const double t2 = now_ms();
    sample_ms.push_back(t1 - t0);
    step_ms.push_back(t2 - t1);
  }

  // Weights a step reads: self-attn q/k/v/o, cross-attn q/o (cross k/v were applied once in
  // set_memory), fc1/fc2, 3 LayerNorms per layer, the final LayerNorm and the K heads.
  // Embedding lookups touch K rows only (negligible).
  const double per_layer = 6.0 * D * D + 2.0 * D * F + 6.0 * D;
  const double weight_bytes = 4.0 * (L * per_layer + 2.0 * D + double(K) * V * D);
  // Cached activations a step also reads: cross K/V (B2 x S x D per layer, twice) and the
  // self-attention K/V written so far (half of the run on average).
  const double kv_bytes = 4.0 * L * 2.0 * B2 * D * (S + steps / 2.0);
  const double med = median(step_ms);

  std::printf(
      "{\n  \"bench\": \"decoder_step\",\n  \"model\": \"musicgen-small decoder (fp32, random weights)\",\n"
      "  \"threads\": %d,\n  \"batch\": %lld,\n  \"memory_tokens\": %lld,\n  \"steps\": %lld,\n"
      "  \"parameters\": %lld,\n  \"set_memory_ms\": %.2f,\n  \"prefill_ms\": %.2f,\n"
      "  \"step_ms_median\": %.2f,\n  \"step_ms_min\": %.2f,\n  \"step_ms_max\": %.2f,\n"
      "  \"cfg_sample_ms_median\": %.3f,\n  \"weight_bytes_per_step\": %.0f,\n  \"kv_bytes_per_step\": %.0f,\n"
      "  \"implied_weight_gbs\": %.2f,\n  \"implied_total_gbs\": %.2f,\n  \"frames_per_s\": %.2f\n}\n",
      at::get_num_threads(), static_cast<long long>(B2), static_cast<long long>(S), static_cast<long long>(steps),
      static_cast<long long>(count_parameters(*dec)), set_memory_ms, prefill_ms, med,
      *std::min_element(step_ms.begin(), step_ms.end()), *std::max_element(step_ms.begin(), step_ms.end()),
      median(sample_ms), weight_bytes, kv_bytes, weight_bytes / (med * 1e6), (weight_bytes + kv_bytes) / (med * 1e6),
      1000.0 / (med + median(sample_ms)));
  return 0;
}
