#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "nn/encodec.h"
#include "nn/state_dict.h"
#include "test_util.h"
#include "v2m/error.h"

using namespace v2m::nn;

namespace {

// The 32 kHz family (ratios 8,5,4,4 -> hop 640, non-causal, reflect, no conv shortcut) at
// a tiny width.
EncodecConfig tiny() {
  EncodecConfig c;
  c.num_filters = 2;
  c.hidden_size = 16;
  c.codebook_dim = 16;
  c.codebook_size = 32;
  c.num_codebooks = 4;
  return c;
}

// transformers' EncodecConfig JSON for `c`.
nlohmann::json hf_config(const EncodecConfig& c) { return encodec_config_to_hf(c); }

enum class Spelling { Plain, WeightGV, Parametrizations };

// Writes an EncodecModel-like directory for module `m`: conv weights re-parametrised as
// weight norm in the requested spelling (g random in [0.5, 1.5]), plus HF's codebook buffers.
void write_encodec_dir(const std::string& dir, Encodec& m, Spelling sp, TensorMap* edit = nullptr) {
  TensorMap state, t;
  collect_state(*m, "", &state);
  torch::manual_seed(7);
  for (const auto& [k, v] : state) {
    const bool conv_w = k.size() > 12 && k.compare(k.size() - 12, 12, ".conv.weight") == 0;
    if (!conv_w || sp == Spelling::Plain) {
      t[k] = v;
      continue;
    }
    const std::string base = k.substr(0, k.size() - 7);  // drop ".weight"
    auto g = torch::rand({v.size(0), 1, 1}) + 0.5;
    const std::string gk = sp == Spelling::WeightGV ? ".weight_g" : ".parametrizations.weight.original0";
    const std::string vk = sp == Spelling::WeightGV ? ".weight_v" : ".parametrizations.weight.original1";
    t[base + gk] = g;
    t[base + vk] = v * 3.0;  // folding divides the scale out again
  }
  for (int64_t k = 0; k < m->cfg.num_codebooks; ++k) {
    const std::string p = "quantizer.layers." + std::to_string(k) + ".codebook.";
    t[p + "inited"] = torch::ones({1});
    t[p + "cluster_size"] = torch::zeros({m->cfg.codebook_size});
    t[p + "embed_avg"] = torch::zeros({m->cfg.codebook_size, m->cfg.codebook_dim});
  }
  if (edit)
    for (auto& [k, v] : *edit) {
      if (v.defined()) t[k] = v;
      else t.erase(k);
    }
  write_text(dir + "/config.json", hf_config(m->cfg).dump(2));
  save_safetensors(dir + "/model.safetensors", t);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const v2m::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Encodec, EncodeDecodeShapesAndHop) {
  torch::manual_seed(0);
  Encodec m(tiny());
  m->eval();
  torch::NoGradGuard ng;
  const int64_t hop = m->cfg.hop_length(), T = 10;
  EXPECT_EQ(hop, 640);
  EXPECT_EQ(m->cfg.frame_rate(), 50);
  auto audio = torch::randn({2, 1, T * hop}) * 0.1;
  auto codes = m->encode(audio);
  EXPECT_EQ(codes.scalar_type(), torch::kLong);
  EXPECT_EQ(codes.sizes(), (std::vector<int64_t>{2, 4, T}));
  EXPECT_GE(codes.min().item<int64_t>(), 0);
  EXPECT_LT(codes.max().item<int64_t>(), 32);
  EXPECT_EQ(m->decode(codes).sizes(), (std::vector<int64_t>{2, 1, T * hop}));
  // A length that is not a multiple of the hop gets ceil(N / hop) frames (extra padding).
  EXPECT_EQ(m->encode(torch::randn({1, 1, 3 * hop + 5})).size(2), 4);
  // Inputs shorter than the reflect padding (transformers' _pad1d small-input rule).
  EXPECT_EQ(m->encode(torch::randn({1, 1, 2})).size(2), 1);
  // Fewer codebooks for a lower bandwidth: floor(bw * 1000 / (log2(32) * 50)).
  EXPECT_EQ(m->encode(audio, 0.5).size(1), 2);
  EXPECT_THROW(m->decode(torch::full({1, 4, 3}, 32, torch::kLong)), v2m::Error);
  EXPECT_THROW(m->encode(torch::randn({1, 2, 640})), v2m::Error);
}

TEST(Encodec, ParameterCountOf32kHzConfig) {
  // facebook/encodec_32khz with weight norm folded. Independent count from the architecture:
  // convs (out*in*k + out), LSTMs (2 layers x 4 gates), residual blocks; transformers counts
  // weight_g too (one per output row of every conv, per input row of transposed convs).
  EncodecConfig c;
  auto conv = [](int64_t i, int64_t o, int64_t k) { return o * i * k + o; };
  auto res = [&](int64_t d) { return conv(d, d / 2, 3) + conv(d / 2, d, 1); };
  auto lstm = [](int64_t d) { return 2 * (4 * d * d * 2 + 8 * d); };
  int64_t enc = conv(1, 64, 7), dec = conv(128, 1024, 7) + lstm(1024) + conv(64, 1, 7), g = 64 + 1024 + 1;
  int64_t ch = 64;
  for (int64_t r : {4, 4, 5, 8}) {
    enc += res(ch) + conv(ch, 2 * ch, 2 * r);
    g += ch / 2 + ch + 2 * ch;
    ch *= 2;
  }
  enc += lstm(1024) + conv(1024, 128, 7);
  g += 128;
  ch = 1024;
  for (int64_t r : {8, 5, 4, 4}) {
    dec += (ch * (ch / 2) * 2 * r + ch / 2) + res(ch / 2);
    g += ch + ch / 4 + ch / 2;  // transposed conv: g over input rows
    ch /= 2;
  }
  Encodec m(c);
  const int64_t n = count_parameters(*m);
  EXPECT_EQ(n, enc + dec);
  EXPECT_EQ(n, 56876737);
  // transformers' EncodecModel.num_parameters() counts weight_g and weight_v: 56,884,674.
  EXPECT_EQ(n + g, 56884674);
  // The hub's "59M" for facebook/encodec_32khz counts every tensor in model.safetensors,
  // i.e. also the codebook buffers (embed, embed_avg, cluster_size, inited per codebook).
  int64_t buffers = 0;
  for (const auto& b : m->buffers()) buffers += b.numel();
  EXPECT_EQ(buffers, 4 * 2048 * 128);
  EXPECT_EQ(n + g + 4 * (2 * 2048 * 128 + 2048 + 1), 58990022);
}

TEST(Encodec, ConfigFromHfDerivesCodebooksFromBandwidth) {
  EncodecConfig c = encodec_config_from_hf(hf_config(EncodecConfig{}));
  EXPECT_EQ(c.num_codebooks, 4);  // int(1000 * 2.2 // (50 * 10))
  EXPECT_EQ(c.hop_length(), 640);
  EXPECT_FALSE(c.use_conv_shortcut);
  // Absent keys take transformers' defaults: the 24 kHz model, 32 codebooks at 24 kbps.
  EncodecConfig d = encodec_config_from_hf(nlohmann::json::object());
  EXPECT_EQ(d.sampling_rate, 24000);
  EXPECT_EQ(d.num_codebooks, 32);
  EXPECT_EQ(d.frame_rate(), 75);
  EXPECT_TRUE(d.use_causal_conv);
  EXPECT_EQ(d.codebooks_for_bandwidth(1.5), 2);
  EXPECT_THROW(encodec_config_from_hf(nlohmann::json{{"norm_type", "batch_norm"}}), v2m::Error);
  EXPECT_THROW(encodec_config_from_hf(nlohmann::json{{"upsampling_ratios", "8,5"}}), v2m::Error);
}

TEST(Encodec, WeightNormBothSpellingsLoadIdentically) {
  TempDir a, b;
  torch::manual_seed(2);
  Encodec m(tiny());
  write_encodec_dir(a.path(), m, Spelling::WeightGV);
  write_encodec_dir(b.path(), m, Spelling::Parametrizations);
  Encodec ma = load_encodec(a.path()), mb = load_encodec(b.path());
  // Folding: weight = g * v / ||v|| (norm over all dims but 0).
  auto raw = load_safetensors(a.path() + "/model.safetensors");
  const auto& g = raw.at("decoder.layers.3.conv.weight_g");
  const auto& v = raw.at("decoder.layers.3.conv.weight_v");
  auto want = g * v / v.norm(2, {1, 2}, true);
  EXPECT_TRUE(torch::allclose(ma->decoder->layers[3]->as<EncodecConvTranspose1d>()->conv->weight, want, 1e-6, 1e-6));
  torch::NoGradGuard ng;
  auto codes = torch::randint(0, 32, {1, 4, 6}, torch::kLong);
  EXPECT_TRUE(torch::equal(ma->decode(codes), mb->decode(codes)));
  auto audio = torch::randn({1, 1, 1280}) * 0.1;
  EXPECT_TRUE(torch::equal(ma->encode(audio), mb->encode(audio)));
}

TEST(Encodec, SaveLoadRoundTripByName) {
  TempDir d;
  torch::manual_seed(3);
  Encodec m(tiny());
  m->eval();
  write_encodec_dir(d.path(), m, Spelling::Plain);
  Encodec l = load_encodec(d.path());
  torch::NoGradGuard ng;
  auto codes = torch::randint(0, 32, {2, 4, 5}, torch::kLong);
  EXPECT_TRUE(torch::equal(m->decode(codes), l->decode(codes)));
}

TEST(Encodec, MissingOrMisshapenTensorNamesTensorAndShapes) {
  TempDir d;
  Encodec m(tiny());
  {
    TensorMap edit{{"encoder.layers.13.lstm.weight_hh_l1", at::Tensor()}};
    write_encodec_dir(d.path(), m, Spelling::WeightGV, &edit);
    const std::string s = error_of([&] { load_encodec(d.path()); });
    EXPECT_NE(s.find("encoder.layers.13.lstm.weight_hh_l1"), std::string::npos) << s;
  }
  {
    TensorMap edit{{"quantizer.layers.2.codebook.embed", torch::zeros({32, 8})}};
    write_encodec_dir(d.path(), m, Spelling::WeightGV, &edit);
    const std::string s = error_of([&] { load_encodec(d.path()); });
    EXPECT_NE(s.find("quantizer.layers.2.codebook.embed"), std::string::npos) << s;
    EXPECT_NE(s.find("[32, 8]"), std::string::npos) << s;
    EXPECT_NE(s.find("[32, 16]"), std::string::npos) << s;
  }
  {
    // A g without its v.
    TensorMap edit{{"decoder.layers.0.conv.weight_v", at::Tensor()}};
    write_encodec_dir(d.path(), m, Spelling::WeightGV, &edit);
    const std::string s = error_of([&] { load_encodec(d.path()); });
    EXPECT_NE(s.find("decoder.layers.0.conv.weight_g"), std::string::npos) << s;
  }
  {
    // A fifth codebook the config does not have.
    TensorMap edit{{"quantizer.layers.4.codebook.embed", torch::zeros({32, 16})}};
    write_encodec_dir(d.path(), m, Spelling::WeightGV, &edit);
    const std::string s = error_of([&] { load_encodec(d.path()); });
    EXPECT_NE(s.find("quantizer.layers.4.codebook.embed"), std::string::npos) << s;
  }
}

TEST(Encodec, QuantizerDecodeOfEncodeReturnsCodebookVectors) {
  torch::manual_seed(4);
  EncodecConfig c = tiny();
  EncodecResidualVectorQuantizer q(c);
  // Codebooks 1..3 hold the zero vector at id 0, so a codeword of codebook 0 has residual 0
  // after the first stage and the later stages pick id 0.
  for (int64_t k = 1; k < 4; ++k) q->layers[k]->as<EncodecVectorQuantization>()->codebook->embed[0].zero_();
  const auto& e0 = q->layers[0]->as<EncodecVectorQuantization>()->codebook->embed;
  auto ids = torch::randint(0, 32, {2, 7}, torch::kLong);
  auto x = at::embedding(e0, ids).permute({0, 2, 1});  // [B, D, T]
  auto codes = q->encode(x, 4);
  ASSERT_EQ(codes.sizes(), (std::vector<int64_t>{2, 4, 7}));
  EXPECT_TRUE(torch::equal(codes.select(1, 0), ids));
  EXPECT_EQ(codes.slice(1, 1).abs().sum().item<int64_t>(), 0);
  EXPECT_TRUE(torch::allclose(q->decode(codes), x, 1e-6, 1e-6));
  // Fewer codebooks than layers: ids + the zero codeword of codebook 1 decode to x as well.
  auto two = torch::stack({ids, torch::zeros_like(ids)}, 1);
  EXPECT_TRUE(torch::allclose(q->decode(two), x, 1e-6, 1e-6));
}

TEST(Encodec, ChunkedDecodeMatchesFullDecode) {
  torch::manual_seed(5);
  Encodec m(tiny());
  m->eval();
  torch::NoGradGuard ng;
  auto codes = torch::randint(0, 32, {1, 4, 64}, torch::kLong);
  auto full = m->decode(codes);
  auto chunked = m->decode_chunked(codes, /*chunk_frames=*/20, /*overlap_frames=*/8);
  ASSERT_EQ(chunked.sizes(), full.sizes());
  const double err = (chunked - full).abs().max().item<double>(), scale = full.abs().max().item<double>();
  EXPECT_LT(err, 1e-3 * scale) << "max |chunked - full| = " << err << " of peak " << scale;
  // Short inputs take the one-pass path exactly.
  EXPECT_TRUE(torch::equal(m->decode_chunked(codes.slice(2, 0, 28), 20, 8), m->decode(codes.slice(2, 0, 28))));
  EXPECT_THROW(m->decode_chunked(codes, 4, 8), v2m::Error);
}

TEST(Encodec, MatchesTransformersFixtures) {
  const std::string dir = std::string(V2M_FIXTURES_DIR) + "/hf/encodec";
  if (!file_exists(dir + "/io.safetensors"))
    GTEST_SKIP() << "no transformers fixtures in " << dir << " (run scripts/make_hf_fixtures.py --only encodec)";
  auto io = load_safetensors(dir + "/io.safetensors");
  Encodec m = load_encodec(dir + "/model");
  torch::NoGradGuard ng;
  auto codes = m->encode(io.at("input_values"));
  EXPECT_TRUE(torch::equal(codes, io.at("audio_codes"))) << codes << io.at("audio_codes");
  EXPECT_TRUE(torch::allclose(m->decode(io.at("audio_codes")), io.at("audio_values"), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(m->encoder->forward(io.at("input_values")), io.at("embeddings"), 1e-4, 1e-4));
}

TEST(Encodec, GemmTransposedConvMatchesTorchValuesAndGradients) {
  // Kernel a multiple of the stride (EnCodec's 2 x ratio), not a multiple, equal to it, and
  // shorter than it; batch 1 and 3; with and without a bias.
  struct Case { int64_t B, Cin, Cout, K, s, T; bool bias; };
  for (const Case& c : {Case{1, 6, 5, 8, 4, 13, true}, Case{3, 4, 7, 7, 3, 9, true}, Case{2, 5, 3, 4, 4, 6, false},
                        Case{1, 3, 2, 3, 5, 1, true}, Case{2, 8, 4, 16, 8, 20, true}}) {
    SCOPED_TRACE(::testing::Message() << "B " << c.B << " K " << c.K << " stride " << c.s << " T " << c.T);
    torch::manual_seed(c.K * 100 + c.s);
    auto x = torch::randn({c.B, c.Cin, c.T}, torch::requires_grad());
    auto w = torch::randn({c.Cin, c.Cout, c.K}, torch::requires_grad());
    auto b = c.bias ? torch::randn({c.Cout}, torch::requires_grad()) : at::Tensor();
    auto want = at::conv_transpose1d(x, w, b, c.s);
    auto got = conv_transpose1d_gemm(x, w, b, c.s);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max();
    auto up = torch::randn_like(want);
    auto gw = torch::autograd::grad({want}, {x, w}, {up});
    auto gg = torch::autograd::grad({got}, {x, w}, {up});
    EXPECT_TRUE(torch::allclose(gg[0], gw[0], 1e-4, 1e-4));
    EXPECT_TRUE(torch::allclose(gg[1], gw[1], 1e-4, 1e-4));
  }
  EXPECT_THROW(conv_transpose1d_gemm(torch::randn({1, 3, 4}), torch::randn({4, 2, 4}), {}, 2), v2m::Error);
}

TEST(Encodec, InferenceLstmMatchesTorchLstm) {
  // The decode path's LSTM (input projections batched, per-step matvec) against LibTorch's,
  // for the matvec kernel's batch sizes and a larger one (at::linear).
  auto c = tiny();
  c.num_lstm_layers = 2;
  torch::manual_seed(7);
  EncodecLSTM m(c, 40);
  for (int64_t B : {1, 2, 5}) {
    auto x = torch::randn({B, 40, 37});
    torch::NoGradGuard ng;
    auto t = x.permute({2, 0, 1});
    auto ref = (std::get<0>(m->lstm->forward(t)) + t).permute({1, 2, 0});
    auto y = m->forward(x);
    ASSERT_EQ(y.sizes(), ref.sizes());
    EXPECT_LT((y - ref).abs().max().item<float>(), 1e-5) << "batch " << B;
  }
  // With autograd on (codec training) it is LibTorch's LSTM, gradients included.
  auto x = torch::randn({1, 40, 9}, torch::requires_grad());
  m->forward(x).sum().backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(m->lstm->parameters()[0].grad().defined());
}
