#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <fstream>

#include "nn/cpu_kernels.h"
#include "nn/delay_pattern.h"
#include "nn/musicgen_decoder.h"
#include "nn/state_dict.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {

MusicgenDecoderConfig tiny() {
  MusicgenDecoderConfig c;
  c.vocab_size = 32;
  c.max_position_embeddings = 16;  // generation below runs past it: the table grows
  c.num_hidden_layers = 2;
  c.ffn_dim = 32;
  c.num_attention_heads = 4;
  c.hidden_size = 16;
  c.num_codebooks = 4;
  c.pad_token_id = c.bos_token_id = 32;
  return c;
}

MusicgenDecoder make(const MusicgenDecoderConfig& c, int64_t seed = 0) {
  torch::manual_seed(seed);
  MusicgenDecoder d(c);
  d->eval();
  return d;
}

struct Inputs {
  torch::Tensor codes, memory, mask;
};
Inputs inputs(const MusicgenDecoderConfig& c, int64_t B, int64_t T, int64_t S) {
  torch::manual_seed(42);
  Inputs in;
  in.codes = torch::randint(0, c.vocab_size + 1, {B, c.num_codebooks, T}, torch::kLong);
  in.memory = torch::randn({B, S, c.hidden_size});
  in.mask = torch::ones({B, S}, torch::kLong);
  if (B > 1) in.mask[1].narrow(0, S - 2, 2).fill_(0);
  return in;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(MusicgenDecoder, ConfigFromTransformersJson) {
  auto j = nlohmann::json::parse(R"({
    "model_type": "musicgen",
    "text_encoder": {"model_type": "t5", "d_model": 768},
    "audio_encoder": {"model_type": "encodec"},
    "decoder": {"model_type": "musicgen_decoder", "vocab_size": 2048, "max_position_embeddings": 2048,
                "num_hidden_layers": 24, "ffn_dim": 4096, "num_attention_heads": 16, "hidden_size": 1024,
                "num_codebooks": 4, "activation_function": "gelu", "scale_embedding": false,
                "audio_channels": 1, "pad_token_id": 2048, "bos_token_id": 2048,
                "cross_attention_hidden_size": null}})");
  auto c = musicgen_decoder_config_from_hf(j);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.encoder_hidden_size, 768);
  EXPECT_EQ(c.pad_token_id, 2048);
  auto bare = musicgen_decoder_config_from_hf(j["decoder"]);
  EXPECT_EQ(bare.num_codebooks, 4);
  EXPECT_EQ(bare.encoder_hidden_size, 768);  // the default (T5-base)
  j["decoder"]["num_attention_heads"] = "16";
  EXPECT_THROW(musicgen_decoder_config_from_hf(j, "x/config.json"), v2m::Error);
  j["decoder"]["num_attention_heads"] = 15;
  EXPECT_THROW(musicgen_decoder_config_from_hf(j), v2m::Error);
}

TEST(MusicgenDecoder, ParameterNamesAndShapesFollowTransformers) {
  auto c = tiny();
  auto d = make(c);
  TensorMap m;
  collect_state(*d, "", &m);
  const std::map<std::string, std::vector<int64_t>> want = {
      {"model.decoder.embed_tokens.3.weight", {33, 16}},
      {"model.decoder.layers.1.self_attn.k_proj.weight", {16, 16}},
      {"model.decoder.layers.1.self_attn.out_proj.weight", {16, 16}},
      {"model.decoder.layers.0.self_attn_layer_norm.bias", {16}},
      {"model.decoder.layers.0.encoder_attn.q_proj.weight", {16, 16}},
      {"model.decoder.layers.0.encoder_attn_layer_norm.weight", {16}},
      {"model.decoder.layers.0.fc1.weight", {32, 16}},
      {"model.decoder.layers.0.fc2.weight", {16, 32}},
      {"model.decoder.layers.0.final_layer_norm.weight", {16}},
      {"model.decoder.layer_norm.bias", {16}},
      {"lm_heads.0.weight", {32, 16}}};
  for (const auto& [k, s] : want) {
    ASSERT_TRUE(m.count(k)) << k;
    EXPECT_EQ(m[k].sizes().vec(), s) << k;
  }
  for (const auto& [k, t] : m) {  // no biases on the projections, heads, fc
    const bool has_bias_ok = k.find("layer_norm") != std::string::npos;
    if (k.size() > 5 && k.compare(k.size() - 5, 5, ".bias") == 0) EXPECT_TRUE(has_bias_ok) << k;
  }
  EXPECT_EQ(count_parameters(*d), musicgen_decoder_parameter_count(c));
}

TEST(MusicgenDecoder, SmallConfigParameterCount) {
  // musicgen-small decoder from transformers' layout, by hand (D=1024, F=4096, V=2048, K=4, L=24):
  //   embed_tokens 4*2049*1024 = 8,392,704; per layer 8*D^2 (self+cross q,k,v,o) + 2*D*F (fc1, fc2)
  //   + 3 LayerNorms 6*D = 16,783,360, x24 = 402,800,640; final LN 2,048; lm_heads 4*2048*1024 =
  //   8,388,608  ->  419,584,000 (+ 2,097,152 for transformers' stored sinusoid table).
  // The "300M" of the MusicGen paper leaves out the cross-attention (24 * 4 D^2 = 100.7M).
  MusicgenDecoderConfig small;
  EXPECT_EQ(musicgen_decoder_parameter_count(small), 419584000);
  small.num_hidden_layers = 2;  // the module at full width, 2 layers (fast); layers add linearly
  MusicgenDecoder d(small);
  EXPECT_EQ(count_parameters(*d), 8392704 + 2 * 16783360 + 2048 + 8388608);
}

TEST(MusicgenDecoder, SinusoidsAreCosThenSin) {
  auto t = musicgen_sinusoids(5, 8);
  const double f1 = std::exp(-std::log(10000.0) / 3);
  EXPECT_NEAR(t[0][0].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(t[0][4].item<double>(), 0.0, 1e-7);
  EXPECT_NEAR(t[3][0].item<double>(), std::cos(3.0), 1e-6);
  EXPECT_NEAR(t[3][4].item<double>(), std::sin(3.0), 1e-6);
  EXPECT_NEAR(t[3][1].item<double>(), std::cos(3.0 * f1), 1e-6);
  EXPECT_NEAR(t[3][7].item<double>(), std::sin(3.0 * 1e-4), 1e-6);
}

TEST(MusicgenDecoder, ForwardShapes) {
  auto c = tiny();
  auto d = make(c);
  auto in = inputs(c, 2, 5, 6);
  torch::NoGradGuard ng;
  EXPECT_EQ(d->forward(in.codes, in.memory, in.mask).sizes(), (std::vector<int64_t>{2, 4, 5, 32}));
  EXPECT_EQ(d->forward(in.codes).sizes(), (std::vector<int64_t>{2, 4, 5, 32}));  // no memory
  EXPECT_THROW(d->forward(in.codes.narrow(1, 0, 3)), v2m::Error);
  EXPECT_THROW(d->forward(in.codes, torch::randn({2, 6, 8})), v2m::Error);
}

TEST(MusicgenDecoder, KvCacheStepsMatchFullRecompute) {
  auto c = tiny();
  auto d = make(c);
  const int64_t T = 9;
  auto in = inputs(c, 2, T, 6);
  torch::NoGradGuard ng;
  auto full = d->forward(in.codes, in.memory, in.mask);
  auto cache = d->make_cache(2, 12);
  d->set_memory(cache, in.memory, in.mask);
  std::vector<torch::Tensor> parts;
  parts.push_back(d->forward(in.codes.narrow(2, 0, 3), {}, {}, &cache));  // prefill
  parts.push_back(d->forward(in.codes.narrow(2, 3, 2), {}, {}, &cache));  // chunk with past (Tq < Tk)
  for (int64_t t = 5; t < T; ++t) parts.push_back(d->forward(in.codes.narrow(2, t, 1), {}, {}, &cache));
  EXPECT_EQ(cache.pos, T);
  EXPECT_LT(max_diff(torch::cat(parts, 2), full), 1e-5);
  EXPECT_THROW(d->forward(in.codes.narrow(2, 0, 4), {}, {}, &cache), v2m::Error);  // 9 + 4 > 12
}

// A decode step runs each layer fused on raw rows (no autograd, AVX-512): the same logits as
// the per-op path (taken here with autograd on), for fp32 and bf16 weights, with a masked
// memory and a frame condition; the bf16 decoder keeps its cross-attention memory in bf16.
TEST(MusicgenDecoder, FusedDecodeStepMatchesThePerOpPath) {
  if (!kernels::has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  auto c = tiny();
  c.hidden_size = 64;  // head width 16: the vectorised attention kernel
  c.ffn_dim = 128;
  const int64_t T = 7;
  auto in = inputs(c, 2, T, 6);
  auto frames = torch::randn({2, T, c.hidden_size});
  for (WeightsDtype dt : {WeightsDtype::FP32, WeightsDtype::BF16}) {
    if (dt == WeightsDtype::BF16 && !kernels::has_avx512_bf16()) continue;
    auto d = make(c, 3);
    if (dt != WeightsDtype::FP32) d->set_weights_dtype(dt);
    auto run = [&](bool grad) {
      torch::AutoGradMode mode(grad);
      auto cache = d->make_cache(2, 12);
      d->set_memory(cache, in.memory, in.mask);
      std::vector<torch::Tensor> parts{d->forward(in.codes.narrow(2, 0, 3), {}, {}, &cache, frames)};
      for (int64_t t = 3; t < T; ++t) {
        EXPECT_EQ(d->model->decoder->layers[0]->as<MusicgenDecoderLayer>()->can_step_fused(cache, 0), !grad);
        parts.push_back(d->forward(in.codes.narrow(2, t, 1), {}, {}, &cache, frames));
      }
      EXPECT_EQ(cache.cross_k[0].scalar_type(), d->kv_dtype());
      return torch::cat(parts, 2).detach();
    };
    const auto fused = run(false), per_op = run(true);
    // bf16: the per-op path's oneDNN product also rounds its output to bf16 (2^-9 relative).
    const double scale = per_op.abs().max().item<double>();
    const double tol = dt == WeightsDtype::FP32 ? 1e-5 : 1e-2 * scale;
    EXPECT_LT(max_diff(fused, per_op), tol) << weights_dtype_name(dt) << ", logits up to " << scale;
    EXPECT_GT(scale, 0.1);
  }
}

TEST(MusicgenDecoder, FrameConditionIsCausalPositionalAndCached) {
  auto c = tiny();
  auto d = make(c);
  const int64_t T = 9;
  auto in = inputs(c, 2, T, 6);
  torch::NoGradGuard ng;
  auto frames = torch::randn({2, T, c.hidden_size});
  auto base = d->forward(in.codes, in.memory, in.mask);
  auto full = d->forward(in.codes, in.memory, in.mask, nullptr, frames);
  EXPECT_GT(max_diff(full, base), 1e-3);
  // Changing the condition of position 5 changes positions 5.. only (causal, aligned).
  auto f2 = frames.clone();
  f2.narrow(1, 5, 1).normal_();
  auto moved = d->forward(in.codes, in.memory, in.mask, nullptr, f2);
  EXPECT_LT(max_diff(moved.narrow(2, 0, 5), full.narrow(2, 0, 5)), 1e-6);
  EXPECT_GT(max_diff(moved.narrow(2, 5, 1), full.narrow(2, 5, 1)), 1e-3);
  // Incremental steps index the condition by absolute position, as the full pass does.
  auto cache = d->make_cache(2, 12);
  d->set_memory(cache, in.memory, in.mask);
  std::vector<torch::Tensor> parts;
  parts.push_back(d->forward(in.codes.narrow(2, 0, 4), {}, {}, &cache, frames));
  for (int64_t t = 4; t < T; ++t) parts.push_back(d->forward(in.codes.narrow(2, t, 1), {}, {}, &cache, frames));
  EXPECT_LT(max_diff(torch::cat(parts, 2), full), 1e-5);
  // A condition shorter than the sequence conditions its positions and leaves the rest bare.
  auto part = d->forward(in.codes, in.memory, in.mask, nullptr, frames.narrow(1, 0, 4));
  EXPECT_LT(max_diff(part.narrow(2, 0, 4), full.narrow(2, 0, 4)), 1e-6);
  EXPECT_THROW(d->forward(in.codes, in.memory, in.mask, nullptr, frames.narrow(2, 0, 8)), v2m::Error);
}

TEST(MusicgenDecoder, MaskedMemoryIsIgnoredAndNullConditionIsFinite) {
  auto c = tiny();
  auto d = make(c);
  auto in = inputs(c, 2, 4, 6);
  torch::NoGradGuard ng;
  auto a = d->forward(in.codes, in.memory, in.mask);
  auto mem2 = in.memory.clone();
  mem2[1].narrow(0, 4, 2).normal_();  // the masked positions of row 1
  EXPECT_LT(max_diff(d->forward(in.codes, mem2, in.mask), a), 1e-6);
  // The CFG null condition: zero states, nothing valid. Cross-attention then yields zeros,
  // the same as attending to zero states.
  auto zeros = torch::zeros_like(in.memory);
  auto null = d->forward(in.codes, zeros, torch::zeros_like(in.mask));
  EXPECT_TRUE(torch::isfinite(null).all().item<bool>());
  EXPECT_LT(max_diff(null, d->forward(in.codes, zeros, torch::ones_like(in.mask))), 1e-5);
}

TEST(MusicgenDecoder, GreedyGenerateEqualsArgmaxOfFullRecompute) {
  auto c = tiny();
  auto d = make(c, 3);
  auto in = inputs(c, 2, 1, 6);
  SamplingParams p;
  p.greedy = true;
  p.cfg_scale = 3.0;
  torch::manual_seed(9);
  auto prompt = torch::randint(0, c.vocab_size, {2, 4, 3}, torch::kLong);
  for (bool with_prompt : {false, true}) {
    const int64_t steps = 14;  // 3 + 14 + 3 positions > max_position_embeddings (16)
    int64_t calls = 0;
    auto codes = musicgen_generate(*d, in.memory, in.mask, steps, p, with_prompt ? prompt : torch::Tensor(),
                                   [&](int64_t, int64_t) { ++calls; });
    const int64_t Tp = with_prompt ? 3 : 0;
    ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{2, 4, Tp + steps}));
    EXPECT_EQ(calls, steps + 3);
    if (with_prompt) EXPECT_TRUE(torch::equal(codes.narrow(2, 0, 3), prompt));
    EXPECT_TRUE((codes >= 0).all().item<bool>() && (codes < c.vocab_size).all().item<bool>());
    // Recompute without cache: the LM input is BOS + pattern[:-1]; guided argmax must
    // reproduce every generated pattern entry.
    torch::NoGradGuard ng;
    auto seq = delay_pattern_for_training(codes, c.bos_token_id, c.pad_token_id);
    auto mem2 = torch::cat({in.memory, torch::zeros_like(in.memory)});
    auto mask2 = torch::cat({in.mask, torch::zeros_like(in.mask)});
    auto logits = apply_cfg(d->forward(seq.input.repeat({2, 1, 1}), mem2, mask2), 3.0);
    auto pred = logits.argmax(-1);  // [B, K, T + 3]
    auto free = seq.mask.clone();
    for (int64_t k = 0; k < 4; ++k) free[k].narrow(0, k, Tp).fill_(false);  // prompt entries are given
    auto sel = free.unsqueeze(0).expand_as(pred);
    EXPECT_TRUE(torch::equal(pred.masked_select(sel), seq.target.masked_select(sel)));
  }
}

TEST(MusicgenDecoder, SamplingGenerateIsSeedDeterministic) {
  auto c = tiny();
  auto d = make(c, 4);
  auto in = inputs(c, 1, 1, 5);
  SamplingParams p;
  p.top_k = 8;
  p.seed = 11;
  auto a = musicgen_generate(*d, in.memory, in.mask, 12, p);
  auto b = musicgen_generate(*d, in.memory, in.mask, 12, p);
  p.seed = 12;
  auto e = musicgen_generate(*d, in.memory, in.mask, 12, p);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, e));
  auto u = musicgen_generate(*d, {}, {}, 5, p);  // unconditional: no memory, no CFG
  EXPECT_EQ(u.sizes(), (std::vector<int64_t>{1, 4, 5}));
}

TEST(MusicgenDecoder, GuidedGenerateWithFrameConditionEqualsFullRecompute) {
  auto c = tiny();
  auto d = make(c, 5);
  auto in = inputs(c, 1, 1, 6);
  SamplingParams p;
  p.greedy = true;
  p.cfg_scale = 2.0;
  const int64_t steps = 8, positions = steps + 4;  // BOS + pattern
  torch::manual_seed(3);
  auto frames = torch::randn({1, positions, c.hidden_size}) * 3;
  auto codes = musicgen_generate(*d, in.memory, in.mask, steps, p, {}, {}, nullptr, frames);
  EXPECT_FALSE(torch::equal(codes, musicgen_generate(*d, in.memory, in.mask, steps, p)));
  torch::NoGradGuard ng;
  auto seq = delay_pattern_for_training(codes, c.bos_token_id, c.pad_token_id);
  // The null condition of CFG has no frame condition either.
  auto f2 = torch::cat({frames.narrow(1, 0, seq.input.size(2)), torch::zeros({1, seq.input.size(2), c.hidden_size})});
  auto logits = apply_cfg(d->forward(seq.input.repeat({2, 1, 1}), torch::cat({in.memory, torch::zeros_like(in.memory)}),
                                     torch::cat({in.mask, torch::zeros_like(in.mask)}), nullptr, f2),
                          2.0);
  auto sel = seq.mask.unsqueeze(0).expand_as(seq.target);
  EXPECT_TRUE(torch::equal(logits.argmax(-1).masked_select(sel), seq.target.masked_select(sel)));
}

TEST(MusicgenDecoder, LoadsCompositeLayoutAndNamesBadTensors) {
  auto c = tiny();
  c.encoder_hidden_size = 12;
  auto src = make(c, 5);
  auto proj_src = make_enc_to_dec_proj(c);
  TensorMap m;
  collect_state(*src, "decoder.", &m);
  collect_state(*proj_src, "enc_to_dec_proj.", &m);
  m["decoder.model.decoder.embed_positions.weights"] = musicgen_sinusoids(16, 16);
  m["audio_encoder.other"] = torch::zeros({1});

  auto dst = make(c, 6);
  auto proj = make_enc_to_dec_proj(c);
  auto used = load_musicgen_decoder(*dst, m, "decoder.", "model.safetensors", &proj);
  EXPECT_EQ(used.size(), m.size() - 1);
  auto in = inputs(c, 2, 4, 6);
  auto text = torch::randn({2, 6, 12});
  torch::NoGradGuard ng;
  auto ref = src->forward(in.codes, project_memory(&proj_src, text, in.mask), in.mask);
  EXPECT_LT(max_diff(dst->forward(in.codes, project_memory(&proj, text, in.mask), in.mask), ref), 1e-6);

  auto bad = m;
  bad["decoder.model.decoder.layers.1.fc1.weight"] = torch::zeros({33, 16});
  try {
    load_musicgen_decoder(*dst, bad, "decoder.", "model.safetensors");
    FAIL();
  } catch (const v2m::Error& e) {
    const std::string s = e.what();
    EXPECT_NE(s.find("decoder.model.decoder.layers.1.fc1.weight"), std::string::npos) << s;
    EXPECT_NE(s.find("[33, 16]"), std::string::npos) << s;
    EXPECT_NE(s.find("[32, 16]"), std::string::npos) << s;
    EXPECT_NE(s.find("model.safetensors"), std::string::npos) << s;
  }
  bad = m;
  bad.erase("decoder.lm_heads.2.weight");
  try {
    load_musicgen_decoder(*dst, bad, "decoder.", "model.safetensors");
    FAIL();
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("decoder.lm_heads.2.weight"), std::string::npos) << e.what();
  }
}

// Parity with transformers: fixtures written by scripts/hf_fixtures/musicgen.py.
TEST(MusicgenDecoder, MatchesTransformersFixtures) {
  const std::string dir = std::string(V2M_FIXTURES_DIR) + "/hf/musicgen";
  if (!std::ifstream(dir + "/causal_lm_io.safetensors")) GTEST_SKIP() << "parity fixtures not generated: needs transformers (scripts/hf_fixtures/musicgen.py -> " << dir << ")";
  torch::NoGradGuard ng;
  {  // MusicgenForCausalLM: logits, greedy codes without and with CFG
    auto c = musicgen_decoder_config_from_hf_file(dir + "/causal_lm/config.json");
    MusicgenDecoder d(c);
    d->eval();
    load_musicgen_decoder(*d, load_safetensors(dir + "/causal_lm/model.safetensors"), "", "causal_lm");
    auto io = load_safetensors(dir + "/causal_lm_io.safetensors");
    auto mem = io.at("encoder_hidden_states"), mask = io.at("encoder_attention_mask");
    EXPECT_LT(max_diff(d->forward(io.at("codes"), mem, mask), io.at("logits")), 1e-4);
    SamplingParams p;
    p.greedy = true;
    p.cfg_scale = 1.0;
    const auto& g = io.at("greedy_codes");
    EXPECT_TRUE(torch::equal(musicgen_generate(*d, mem, mask, g.size(2), p), g));
    p.cfg_scale = io.at("guidance_scale").item<double>();
    const auto& gc = io.at("greedy_cfg_codes");
    EXPECT_TRUE(torch::equal(musicgen_generate(*d, mem, mask, gc.size(2), p), gc));
  }
  {  // MusicgenForConditionalGeneration: decoder.* + enc_to_dec_proj, text mask applied
    auto c = musicgen_decoder_config_from_hf_file(dir + "/composite/config.json");
    ASSERT_GT(c.encoder_hidden_size, 0);
    MusicgenDecoder d(c);
    d->eval();
    auto proj = make_enc_to_dec_proj(c);
    load_musicgen_decoder(*d, load_safetensors(dir + "/composite/model.safetensors"), "decoder.", "composite", &proj);
    auto io = load_safetensors(dir + "/composite_io.safetensors");
    auto mask = io.at("attention_mask");
    auto mem = project_memory(&proj, io.at("text_hidden_states"), mask);
    EXPECT_LT(max_diff(d->forward(io.at("decoder_codes"), mem, mask), io.at("logits")), 1e-4);
    SamplingParams p;
    p.greedy = true;
    p.cfg_scale = io.at("guidance_scale").item<double>();
    const auto& gc = io.at("greedy_cfg_codes");
    EXPECT_TRUE(torch::equal(musicgen_generate(*d, mem, mask, gc.size(2), p), gc));
  }
}
