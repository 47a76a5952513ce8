// MusicGen decoder step on the CPU in the shape of Model-S generation (configs/model/s.yaml's
// decoder = musicgen-small): classifier-free guidance as one batch of 2 (cond + null
// condition), KV cache sized for `--seconds` of audio, 240 memory tokens (30 s of
// conditioning). Random weights: only the shapes matter for time.
//
// For each weights dtype (fp32, bf16, int8; --dtypes to choose) it reports
//  - step latency at the start, middle and end of the clip (the self-attention cache grows;
//    the mean of the three is the clip's mean step), set_memory (cross K/V once per window);
//  - the bytes of weights a step streams and the key ratio
//      step time / (weight bytes per step / triad bandwidth measured in this same run),
//    each position timed --rounds times (default 3), each time right after its own triad,
//    and the ratio averaged over them (triad_gbs_min/max show how far the bandwidth drifted);
//  - the same against weights + the self-attention K/V a step reads (kv_dtype: bf16 with
//    bf16 weights on AVX-512 CPUs), the whole of what a step streams;
//  - agreement with fp32 on the same weights: logits max |diff|, cosine, and the top-1
//    (greedy) token match rate over a teacher-forced sequence, once as one full forward and
//    once token by token through the KV cache (`stepwise_*`: the kernels and cache dtype
//    generation uses) against the fp32 full forward.
// --threads N (default: all cores); kernel_threads in the output is how many threads the
// step kernels actually fork onto (1 would mean a build without OpenMP for them).
// JSON on stdout.
#include <ATen/ATen.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "nn/musicgen_decoder.h"
#include "nn/parallel.h"

using namespace v2m::nn;
using v2m::bench::now_s;

namespace {

struct Agreement {
  double max_abs = 0, max_ref = 0, cosine = 1, top1 = 1;
};

Agreement agree(const at::Tensor& ref, const at::Tensor& got) {
  Agreement a;
  a.max_abs = (ref - got).abs().max().item<double>();
  a.max_ref = ref.abs().max().item<double>();
  at::Tensor r = ref.flatten(), g = got.flatten();
  a.cosine = (r.dot(g) / (r.norm() * g.norm())).item<double>();
  a.top1 = ref.argmax(-1).eq(got.argmax(-1)).to(at::kDouble).mean().item<double>();
  return a;
}

// Logits of `codes` fed one token at a time through a KV cache: the path generation takes
// (the step kernels, the cache's dtype), teacher-forced.
at::Tensor stepwise_logits(MusicgenDecoder& dec, const at::Tensor& codes, const at::Tensor& memory,
                           const at::Tensor& mask) {
  KVCache cache = dec->make_cache(codes.size(0), codes.size(2));
  dec->set_memory(cache, memory, mask);
  std::vector<at::Tensor> parts;
  for (int64_t t = 0; t < codes.size(2); ++t) parts.push_back(dec->forward(codes.narrow(2, t, 1), {}, {}, &cache));
  return at::cat(parts, 2);
}

}  // namespace

int main(int argc, char** argv) {
  v2m::reexec_with_thread_env(argv);  // as the CLI
  std::string dtypes = "fp32,bf16,int8";
  double seconds = 30.0;
  int64_t steps = 8;
  int rounds = 3;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--dtypes")) dtypes = argv[i + 1];
    else if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::max(1, std::atoi(argv[i + 1]));
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::max(1, std::atoi(argv[i + 1]));
  }
  at::set_num_threads(threads);
  c10::InferenceMode inference;

  const double bw = v2m::bench::triad_gbs();
  MusicgenDecoderConfig cfg;  // musicgen-small = the decoder of configs/model/s.yaml
  const int64_t K = cfg.num_codebooks, Dm = cfg.hidden_size, S = 240, B2 = 2;
  const int64_t frames = static_cast<int64_t>(seconds * 50.0);  // EnCodec 32 kHz: 50 frames/s
  const int64_t capacity = frames + K;                          // + the delay pattern's tail

  torch::manual_seed(0);
  MusicgenDecoder ref(cfg);
  ref->eval();
  torch::manual_seed(1);
  at::Tensor memory = at::randn({B2, S, Dm});
  at::Tensor mask = at::cat({at::ones({1, S}, at::kLong), at::zeros({1, S}, at::kLong)}, 0);
  at::Tensor codes = at::randint(0, cfg.vocab_size, {1, K, 48}, at::kLong);
  const at::Tensor ref_logits = ref->forward(codes, memory.narrow(0, 0, 1), mask.narrow(0, 0, 1));

  std::ostringstream rows;
  std::stringstream names(dtypes);
  std::string name;
  bool first = true;
  while (std::getline(names, name, ',')) {
    const WeightsDtype dt = parse_weights_dtype(name);
    MusicgenDecoder dec = ref;
    if (dt != WeightsDtype::FP32) {
      torch::manual_seed(0);  // the same weights as ref
      dec = MusicgenDecoder(cfg);
      dec->eval();
      dec->set_weights_dtype(dt);
    }
    const Agreement a = agree(ref_logits, dec->forward(codes, memory.narrow(0, 0, 1), mask.narrow(0, 0, 1)));
    const Agreement st = agree(ref_logits, stepwise_logits(dec, codes, memory.narrow(0, 0, 1), mask.narrow(0, 0, 1)));

    // The step's weight products alone, back to back in step order through the same kernels
    // (no attention, norms or dependencies): what the kernels stream when nothing else runs.
    double matvec_only_ms = 0;
    if (dt != WeightsDtype::FP32 && dec->model->decoder->layers[0]->as<MusicgenDecoderLayer>()->fc1_kernel->has_matvec()) {
      std::vector<const LinearKernel*> ks;
      for (const auto& m : *dec->model->decoder->layers) {
        auto l = m->as<MusicgenDecoderLayer>();
        for (const auto* k : {l->self_attn->q_kernel.get(), l->self_attn->k_kernel.get(), l->self_attn->v_kernel.get(),
                              l->self_attn->out_kernel.get(), l->encoder_attn->q_kernel.get(),
                              l->encoder_attn->out_kernel.get(), l->fc1_kernel.get(), l->fc2_kernel.get()})
          ks.push_back(k);
      }
      std::vector<float> xin(B2 * cfg.ffn_dim, 0.5f), yout(B2 * cfg.ffn_dim);
      std::vector<double> ms;
      for (int rep = 0; rep < 5; ++rep) {
        const double t_start = now_s();
        for (const auto* k : ks) k->matvec(xin.data(), B2, yout.data());
        ms.push_back((now_s() - t_start) * 1e3);
      }
      matvec_only_ms = v2m::bench::median(ms);
    }
    KVCache cache = dec->make_cache(B2, capacity);
    double t0 = now_s();
    dec->set_memory(cache, memory, mask);
    const double set_memory_ms = (now_s() - t0) * 1e3;
    at::Tensor tok = at::full({B2, K, 1}, cfg.bos_token_id, at::kLong);
    dec->forward(tok, {}, {}, &cache);  // prefill (BOS); the cache entries below are random
    for (size_t l = 0; l < cache.self_k.size(); ++l) {
      cache.self_k[l].copy_(at::randn(cache.self_k[l].sizes()));  // via fp32: bf16 caches too
      cache.self_v[l].copy_(at::randn(cache.self_v[l].sizes()));
    }
    // Each position is timed `rounds` times, each time right after a fresh triad, and every
    // ratio divides by the bandwidth measured next to it: the machine's bandwidth drifts
    // (here by up to ~10% between runs), and a ratio against one early triad inherits it.
    const double wbytes = static_cast<double>(dec->step_weight_bytes());
    const int64_t positions[3] = {1, capacity / 2, capacity - steps - 1};
    const double kv_elem = static_cast<double>(at::elementSize(cache.self_k[0].scalar_type()));
    std::vector<double> at_pos(3, 0.0), bws;
    double ratio_sum = 0, kv_ratio_sum = 0, kv_bytes = 0;
    long faults = 0;  // minor page faults inside the timed steps: fresh memory touched per step
    for (int r = 0; r < rounds; ++r)
      for (int i = 0; i < 3; ++i) {
        const double bw_here = v2m::bench::triad_gbs(256, 3);
        bws.push_back(bw_here);
        std::vector<double> ms;
        for (int64_t s = 0; s < steps; ++s) {
          cache.pos = positions[i] + s;
          tok = at::randint(0, cfg.vocab_size, {B2, K, 1}, at::kLong);
          rusage ru0, ru1;
          getrusage(RUSAGE_SELF, &ru0);
          t0 = now_s();
          dec->forward(tok, {}, {}, &cache);
          ms.push_back((now_s() - t0) * 1e3);
          getrusage(RUSAGE_SELF, &ru1);
          faults += ru1.ru_minflt - ru0.ru_minflt;
        }
        const double med = v2m::bench::median(ms);
        // Self-attention K/V this step reads (the median step's position, about).
        const double kv = 2.0 * cfg.num_hidden_layers * B2 * Dm * (positions[i] + steps / 2 + 1) * kv_elem;
        at_pos[i] += med / rounds;
        ratio_sum += med / (wbytes / (bw_here * 1e9) * 1e3);
        kv_ratio_sum += med / ((wbytes + kv) / (bw_here * 1e9) * 1e3);
        kv_bytes += kv / (3.0 * rounds);
      }
    double bw = 0;
    for (double b : bws) bw += b / static_cast<double>(bws.size());
    const double mean_ms = (at_pos[0] + at_pos[1] + at_pos[2]) / 3.0;
    const double bound_ms = wbytes / (bw * 1e9) * 1e3;
    const double step_over_bound = ratio_sum / (3.0 * rounds), step_over_kv_bound = kv_ratio_sum / (3.0 * rounds);
    const double kv_bound_ms = (wbytes + kv_bytes) / (bw * 1e9) * 1e3;
    char buf[2048];
    std::snprintf(buf, sizeof buf,
                  "%s    {\"weights_dtype\": \"%s\", \"weight_bytes_per_step\": %.0f, \"set_memory_ms\": %.1f,\n"
                  "     \"step_ms_start\": %.2f, \"step_ms_mid\": %.2f, \"step_ms_end\": %.2f, \"step_ms_mean\": %.2f,\n"
                  "     \"bandwidth_bound_ms\": %.2f, \"step_over_bound\": %.2f, \"implied_weight_gbs\": %.2f,\n"
                  "     \"decoder_s_for_clip\": %.1f, \"logits_max_abs_diff\": %.3g, \"logits_max_abs\": %.3g,\n"
                  "     \"logits_cosine\": %.6f, \"top1_match\": %.4f,\n"
                  "     \"kv_dtype\": \"%s\", \"kv_bytes_per_step_mean\": %.0f, \"weights_plus_kv_bound_ms\": %.2f,\n"
                  "     \"step_over_weights_plus_kv_bound\": %.2f, \"stepwise_logits_cosine\": %.6f,\n"
                  "     \"stepwise_logits_max_abs_diff\": %.3g, \"stepwise_top1_match\": %.4f, \"page_faults_per_step\": %.1f,\n"
                  "     \"triad_gbs_next_to_steps\": %.2f, \"triad_gbs_min\": %.2f, \"triad_gbs_max\": %.2f,\n"
                  "     \"layer_matvecs_only_ms\": %.2f}",
                  first ? "" : ",\n", name.c_str(), wbytes, set_memory_ms, at_pos[0], at_pos[1], at_pos[2], mean_ms,
                  bound_ms, step_over_bound, wbytes / (mean_ms * 1e6), mean_ms * frames / 1e3, a.max_abs, a.max_ref,
                  a.cosine, a.top1, c10::toString(cache.self_k[0].scalar_type()), kv_bytes, kv_bound_ms,
                  step_over_kv_bound, st.cosine, st.max_abs, st.top1, static_cast<double>(faults) / (3.0 * steps * rounds),
                  bw, *std::min_element(bws.begin(), bws.end()), *std::max_element(bws.begin(), bws.end()), matvec_only_ms);
    rows << buf;
    first = false;
  }
  std::printf(
      "{\n  \"bench\": \"decoder_step\",\n  \"model\": \"musicgen-small decoder (Model-S shape), random weights\",\n"
      "  \"threads\": %d,\n  \"kernel_threads\": %d,\n  \"batch\": %lld,\n  \"memory_tokens\": %lld,\n  \"clip_seconds\": %.1f,\n"
      "  \"parameters\": %lld,\n  \"triad_bandwidth_gbs\": %.2f,\n  \"dtypes\": [\n%s\n  ]\n}\n",
      at::get_num_threads(), v2m::nn::kernel_parallel_threads(), static_cast<long long>(B2), static_cast<long long>(S), seconds,
      static_cast<long long>(count_parameters(*ref)), bw, rows.str().c_str());
  return 0;
}
