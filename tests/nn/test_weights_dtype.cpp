// Inference weight formats of the MusicGen decoder (bf16, int8), zero-copy weight loading
// and KV-cache reuse: each must give what the plain fp32 path gives.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nn/cpu_kernels.h"
#include "nn/musicgen_decoder.h"
#include "nn/parallel.h"
#include "nn/state_dict.h"
#include "test_util.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {

MusicgenDecoderConfig small() {
  MusicgenDecoderConfig c;
  c.vocab_size = 64;
  c.max_position_embeddings = 64;
  c.num_hidden_layers = 2;
  c.ffn_dim = 128;
  c.num_attention_heads = 4;
  c.hidden_size = 64;
  c.num_codebooks = 4;
  c.pad_token_id = c.bos_token_id = 64;
  return c;
}

MusicgenDecoder make(const MusicgenDecoderConfig& c, int64_t seed = 0) {
  torch::manual_seed(seed);
  MusicgenDecoder d(c);
  d->eval();
  return d;
}

double cosine(const torch::Tensor& a, const torch::Tensor& b) {
  auto x = a.flatten(), y = b.flatten();
  return (x.dot(y) / (x.norm() * y.norm())).item<double>();
}

}  // namespace

// Tolerances: bf16 keeps 8 mantissa bits (relative error ~2^-9 per product, averaged over D),
// int8 per-channel weights + per-call activation quantisation ~1% per linear.
TEST(WeightsDtype, Bf16AndInt8LogitsAgreeWithFp32) {
  auto c = small();
  auto ref = make(c);
  torch::manual_seed(1);
  auto codes = torch::randint(0, c.vocab_size, {2, 4, 12}, torch::kLong);
  auto memory = torch::randn({2, 5, c.hidden_size});
  auto mask = torch::ones({2, 5}, torch::kLong);
  torch::NoGradGuard ng;
  auto want = ref->forward(codes, memory, mask);
  const double scale = want.abs().max().item<double>();
  struct Case {
    WeightsDtype dt;
    double max_rel, min_cos, min_top1;
  };
  for (const Case& k : {Case{WeightsDtype::BF16, 0.03, 0.9995, 0.9}, Case{WeightsDtype::INT8, 0.08, 0.995, 0.8}}) {
    if (!weights_dtype_supported(k.dt)) continue;
    SCOPED_TRACE(weights_dtype_name(k.dt));
    auto d = make(c);
    d->set_weights_dtype(k.dt);
    EXPECT_EQ(d->weights_dtype(), k.dt);
    EXPECT_LT(d->step_weight_bytes(), ref->step_weight_bytes());
    auto got = d->forward(codes, memory, mask);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT((got - want).abs().max().item<double>(), k.max_rel * scale);
    EXPECT_GT(cosine(got, want), k.min_cos);
    EXPECT_GT(got.argmax(-1).eq(want.argmax(-1)).to(torch::kDouble).mean().item<double>(), k.min_top1);
    // The incremental (KV cache) path of the converted decoder matches its own full pass
    // (int8 quantizes each call's activations with one scale, so the split changes rounding).
    auto cache = d->make_cache(2, 12);
    // bf16 weights on AVX-512 keep a bf16 self-attention cache (the step kernel reads it).
    const bool bf16_cache = k.dt == WeightsDtype::BF16 && kernels::has_avx512();
    EXPECT_EQ(cache.self_k[0].scalar_type(), bf16_cache ? torch::kBFloat16 : torch::kFloat);
    d->set_memory(cache, memory, mask);
    std::vector<torch::Tensor> parts{d->forward(codes.narrow(2, 0, 4), {}, {}, &cache)};
    for (int64_t t = 4; t < 12; ++t) parts.push_back(d->forward(codes.narrow(2, t, 1), {}, {}, &cache));
    EXPECT_LT((torch::cat(parts, 2) - got).abs().max().item<double>(), k.max_rel * scale);
  }
  auto fp = make(c);
  fp->set_weights_dtype(WeightsDtype::FP32);  // no-op
  EXPECT_EQ(fp->make_cache(1, 4).self_k[0].scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(fp->forward(codes, memory, mask), want));
}

TEST(WeightsDtype, ConversionIsOneWayAndReleasesFloatWeights) {
  auto c = small();
  auto d = make(c);
  TensorMap before;
  collect_state(*d, "", &before);
  const int64_t n = count_parameters(*d);
  d->set_weights_dtype(WeightsDtype::BF16);
  EXPECT_EQ(count_parameters(*d), n);  // shapes kept
  auto& fc1 = d->model->decoder->layers[0]->as<MusicgenDecoderLayer>()->fc1->weight;
  EXPECT_EQ(fc1.stride(0), 0);  // a zero-stride placeholder, no float storage
  EXPECT_THROW(d->set_weights_dtype(WeightsDtype::INT8), v2m::Error);
  EXPECT_ANY_THROW(load_into(*d, before, "", "w.safetensors"));  // cannot load into placeholders
  EXPECT_THROW(parse_weights_dtype("fp8"), v2m::UsageError);
  EXPECT_EQ(parse_weights_dtype("bfloat16"), WeightsDtype::BF16);
}

TEST(WeightsDtype, MmapAliasedLoadEqualsCopiedLoad) {
  TempDir dir;
  auto c = small();
  auto src = make(c, 7);
  TensorMap state;
  collect_state(*src, "", &state);
  const std::string path = dir.path() + "/d.safetensors";
  save_safetensors(path, state);
  auto copied = make(c, 1), aliased = make(c, 2);
  {
    TensorMap file = load_safetensors(path);
    load_into(*copied, file, "", path);
    load_into(*aliased, file, "", path, /*alias=*/true);
    auto& w = aliased->lm_heads[0]->as<v2m::nn::Linear>()->weight;
    EXPECT_EQ(w.data_ptr(), file.at("lm_heads.0.weight").data_ptr());  // no second copy
    EXPECT_NE(copied->lm_heads[0]->as<v2m::nn::Linear>()->weight.data_ptr(), w.data_ptr());
  }  // the map is gone; the parameters keep the mapping alive
  TensorMap a, b;
  collect_state(*copied, "", &a);
  collect_state(*aliased, "", &b);
  for (const auto& [k, t] : a) EXPECT_TRUE(torch::equal(t, b.at(k))) << k;
  torch::manual_seed(3);
  auto codes = torch::randint(0, c.vocab_size, {1, 4, 6}, torch::kLong);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(copied->forward(codes), aliased->forward(codes)));
  // In-place updates (training) write private copy-on-write pages, never the file.
  auto& w = aliased->lm_heads[0]->as<v2m::nn::Linear>()->weight;
  w.add_(1.0);
  EXPECT_TRUE(torch::equal(load_safetensors(path).at("lm_heads.0.weight"), state.at("lm_heads.0.weight")));
  // Converting aliased weights releases them and still matches the converted copy.
  copied->set_weights_dtype(WeightsDtype::BF16);
  auto re = make(c, 2);
  load_into(*re, load_safetensors(path), "", path, true);
  re->set_weights_dtype(WeightsDtype::BF16);
  EXPECT_TRUE(torch::equal(copied->forward(codes), re->forward(codes)));
}

// A bf16 file's linears go to the bf16 kernels as mapped (load_into's keep_dtype with
// musicgen_converted_weight, as load_model(..., bf16_decoder_linears) does): no fp32 detour,
// no copy, and the same logits as widening them and converting back.
TEST(WeightsDtype, Bf16FileLinearsReachTheKernelsAsMapped) {
  EXPECT_TRUE(musicgen_converted_weight("model.decoder.layers.3.self_attn.q_proj.weight"));
  EXPECT_TRUE(musicgen_converted_weight("model.decoder.layers.0.encoder_attn.v_proj.weight"));
  EXPECT_TRUE(musicgen_converted_weight("model.decoder.layers.0.fc2.weight"));
  EXPECT_TRUE(musicgen_converted_weight("lm_heads.1.weight"));
  EXPECT_FALSE(musicgen_converted_weight("model.decoder.embed_tokens.0.weight"));
  EXPECT_FALSE(musicgen_converted_weight("model.decoder.layers.0.final_layer_norm.weight"));
  EXPECT_FALSE(musicgen_converted_weight("model.decoder.layer_norm.weight"));
  TempDir dir;
  auto c = small();
  TensorMap state;
  collect_state(*make(c, 7), "", &state);
  for (auto& [k, t] : state) t = t.to(torch::kBFloat16);
  const std::string path = dir.path() + "/d.safetensors";
  save_safetensors(path, state);
  auto widened = make(c, 1), kept = make(c, 2);
  const TensorMap file = load_safetensors(path);
  load_into(*widened, file, "", path, /*alias=*/true);
  load_into(*kept, file, "", path, /*alias=*/true, musicgen_converted_weight);
  auto& q = kept->model->decoder->layers[0]->as<MusicgenDecoderLayer>()->self_attn->q_proj->weight;
  EXPECT_EQ(q.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(q.data_ptr(), file.at("model.decoder.layers.0.self_attn.q_proj.weight").data_ptr());
  EXPECT_EQ(kept->model->decoder->layer_norm->weight.scalar_type(), torch::kFloat);  // norms widen as before
  widened->set_weights_dtype(WeightsDtype::BF16);
  kept->set_weights_dtype(WeightsDtype::BF16);
  const MatvecView v = kept->model->decoder->layers[0]->as<MusicgenDecoderLayer>()->self_attn->q_kernel->matvec_view();
  if (kernels::has_avx512_bf16())
    EXPECT_EQ(v.w, file.at("model.decoder.layers.0.self_attn.q_proj.weight").data_ptr());  // the mapping itself
  torch::manual_seed(3);
  auto codes = torch::randint(0, c.vocab_size, {2, 4, 6}, torch::kLong);
  torch::NoGradGuard ng;
  EXPECT_TRUE(torch::equal(widened->forward(codes), kept->forward(codes)));
}

TEST(WeightsDtype, GenerationWithReusedCacheIsIdentical) {
  auto c = small();
  auto d = make(c, 4);
  torch::manual_seed(5);
  auto memory = torch::randn({1, 5, c.hidden_size});
  auto mask = torch::ones({1, 5}, torch::kLong);
  auto prompt = torch::randint(0, c.vocab_size, {1, 4, 3}, torch::kLong);
  SamplingParams p;
  p.top_k = 8;
  p.seed = 11;
  auto fresh = musicgen_generate(*d, memory, mask, 10, p, prompt);
  auto fresh_long = musicgen_generate(*d, {}, {}, 20, p);
  KVCache cache;
  // Dirty the buffers with a longer unconditional run (batch 1), then a guided run (batch 2,
  // rebuilt), then the same guided run again on the reused, stale buffers.
  auto u = musicgen_generate(*d, {}, {}, 20, p, {}, {}, &cache);
  EXPECT_TRUE(torch::equal(u, fresh_long));
  auto r1 = musicgen_generate(*d, memory, mask, 10, p, prompt, {}, &cache);
  const void* buf = cache.self_k[0].data_ptr();
  auto r2 = musicgen_generate(*d, memory, mask, 10, p, prompt, {}, &cache);
  EXPECT_EQ(cache.self_k[0].data_ptr(), buf);  // reused, not reallocated
  EXPECT_TRUE(torch::equal(r1, fresh));
  EXPECT_TRUE(torch::equal(r2, fresh));
}

TEST(WeightsDtype, KernelsForkOnEveryThread) {
  // at::parallel_for only forks where it is compiled with OpenMP; the step kernels ran on one
  // thread while at::get_num_threads() said 2 until the build gave linear_kernel.cpp -fopenmp.
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  EXPECT_EQ(kernel_parallel_threads(), 2);
  at::set_num_threads(1);
  EXPECT_EQ(kernel_parallel_threads(), 1);
  at::set_num_threads(before);
}
