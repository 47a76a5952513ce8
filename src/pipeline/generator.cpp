// Generator: video -> features -> per-window fusion condition -> codes -> audio.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "model/v2m_model.h"
#include "model/windows.h"
#include "nn/musicgen_decoder.h"
#include "nn/sampling.h"
#include "nn/state_dict.h"
#include "pipeline/features.h"
#include "v2m/error.h"
#include "v2m/media.h"
#include "v2m/runtime.h"
#include "v2m/v2m.h"

namespace v2m {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Tokens of one stream whose time falls in [t0, t1), re-timed to the window start, as a
// batch of `batch` identical rows. An empty selection yields one masked zero token so the
// condition stays well-formed (the decoder then sees no condition for that stream).
struct Selected {
  at::Tensor x, t, mask;
};
Selected select_window(const at::Tensor& x, const at::Tensor& t, double t0, double t1, int64_t batch) {
  at::Tensor keep = (t >= t0).logical_and(t < t1);
  at::Tensor idx = keep.nonzero().view({-1});
  Selected s;
  if (idx.numel() == 0) {
    s.x = at::zeros({batch, 1, x.size(1)}, x.options());
    s.t = at::zeros({batch, 1});
    s.mask = at::zeros({batch, 1}, at::kLong);
    return s;
  }
  s.x = x.index_select(0, idx).unsqueeze(0).expand({batch, -1, -1}).contiguous();
  s.t = (t.index_select(0, idx) - t0).unsqueeze(0).expand({batch, -1}).contiguous();
  s.mask = at::ones({batch, idx.numel()}, at::kLong);
  return s;
}

class GeneratorImpl : public Generator {
 public:
  GeneratorImpl(model::V2MModel m, at::Device dev, nn::WeightsDtype weights) : model_(std::move(m)), device_(dev) {
    model_->to(device_);
    model_->eval();
    model_->decoder->set_weights_dtype(weights);
  }

  int sample_rate() const override { return model_->sample_rate(); }
  const StageTimes& last_times() const override { return times_; }

  std::vector<AudioBuffer> generate(const std::string& video, const GenerateParams& p) override {
    at::InferenceMode guard;
    times_ = {};
    if (p.variations < 1) throw UsageError("--variations must be at least 1");
    if (p.start < 0) throw UsageError("--start must be >= 0");
    const auto& cfg = model_->cfg;
    media::ProbeInfo info = media::probe(video);
    if (!info.video()) throw Error(describe("cannot generate", video, "no video stream"));
    double total_s = p.duration > 0 ? p.duration : info.duration - p.start;
    if (p.duration <= 0 && !(total_s > 0))
      throw Error(describe("cannot generate", video, "start " + std::to_string(p.start) + " s is past the end of the video"));
    if (p.max_duration > 0 && total_s > p.max_duration)
      throw Error(describe("cannot generate", video, std::to_string(static_cast<int64_t>(total_s)) + " s of music is over the " + std::to_string(static_cast<int64_t>(p.max_duration)) + " s limit (--duration for less, --max-duration to raise it)"));

    pipeline::VideoFeatures f = pipeline::extract_features(model_, video, p.start, p.duration, device_);
    times_.decode = f.decode_s;
    times_.clip = f.clip_s;
    times_.flow = f.flow_s;
    if (p.duration <= 0 && info.duration <= 0) total_s = f.duration;
    // Each stage's mapped weights leave the resident set when the stage is done (they stay in
    // the page cache for the next call), and so do the cached blocks of its activations: the
    // peak is the largest stage, not the sum of them.
    nn::drop_resident_weights(*model_->clip);
    release_cached_cpu_memory();

    const double fr = model_->frame_rate();
    const int64_t total = std::max<int64_t>(1, static_cast<int64_t>(std::llround(total_s * fr)));
    const int64_t win = static_cast<int64_t>(std::floor(cfg.window_s * fr));
    const int64_t stride = std::max<int64_t>(1, static_cast<int64_t>(std::floor(cfg.stride_s * fr)));
    const int64_t B = p.variations;
    const int64_t K = cfg.decoder.num_codebooks;

    nn::SamplingParams sp;
    sp.temperature = p.temperature;
    sp.top_k = p.top_k;
    sp.top_p = p.top_p;
    sp.cfg_scale = p.cfg_scale;
    at::Tensor codes = at::zeros({B, K, total}, at::TensorOptions().dtype(at::kLong).device(device_));
    const auto windows = model::plan_windows(total, win, stride);
    for (size_t wi = 0; wi < windows.size(); ++wi) {
      const auto& w = windows[wi];
      const double t0 = w.cond_begin / fr, t1 = w.cond_end / fr;
      auto tf = std::chrono::steady_clock::now();
      Selected c = select_window(f.clip, f.clip_t, t0, t1, B);
      Selected m = f.motion.defined() ? select_window(f.motion, f.motion_t, t0, t1, B) : Selected{};
      if (!f.motion.defined()) {  // no-motion model: placeholders the fusion ignores
        m.x = at::zeros({B, 1, cfg.motion.in_dim});
        m.t = at::zeros({B, 1});
        m.mask = at::zeros({B, 1}, at::kLong);
      }
      auto cond = model_->fusion->forward(c.x.to(device_), c.t.to(device_), c.mask.to(device_), m.x.to(device_),
                                          m.t.to(device_), m.mask.to(device_));
      times_.fusion += seconds_since(tf);

      auto td = std::chrono::steady_clock::now();
      // Each window gets its own seed so windows differ but the whole run is reproducible.
      sp.seed = static_cast<int64_t>((p.seed * 1000003ull + wi) & 0x7fffffffffffffffull);
      at::Tensor prompt;
      if (w.gen_begin > w.prompt_begin) prompt = codes.slice(2, w.prompt_begin, w.gen_begin);
      const int64_t n = w.gen_end - w.gen_begin;
      auto progress = [&](int64_t step, int64_t steps) {
        if (p.on_progress) p.on_progress((w.gen_begin + std::min(step, n)) / fr, total / fr);
      };
      at::Tensor frame_cond;
      if (cond.frame.defined()) {  // positions: BOS column, prompt, new frames, delay tail
        const int64_t positions = 1 + (w.gen_end - w.prompt_begin) + cfg.decoder.num_codebooks;
        frame_cond = nn::resample_to_frames(cond.frame, cond.times, cond.mask, positions, fr);
      }
      at::Tensor out = nn::musicgen_generate(*model_->decoder, cond.memory, cond.mask, n, sp, prompt, progress,
                                             &cache_, frame_cond);
      codes.slice(2, w.gen_begin, w.gen_end).copy_(out.slice(2, out.size(2) - n, out.size(2)));
      times_.decoder += seconds_since(td);
    }

    // The decoder is done: its KV buffers (0.3 GB for 30 s of Model-S) go before the codec's
    // activations arrive, so the two never add up in the peak resident set.
    cache_ = nn::KVCache{};
    nn::drop_resident_weights(*model_->fusion);
    model_->decoder->drop_resident_weights();
    // One decode of the whole code sequence (chunked inside the codec): no seams between windows.
    auto tc = std::chrono::steady_clock::now();
    at::Tensor audio = model_->codec->decode_chunked(codes).to(at::kCPU).to(at::kFloat);  // [B, C, N]
    times_.codec = seconds_since(tc);
    nn::drop_resident_weights(*model_->codec);
    const int64_t want = static_cast<int64_t>(std::llround(total_s * sample_rate()));
    if (audio.size(2) > want) audio = audio.slice(2, 0, want);
    if (!at::isfinite(audio).all().item<bool>())
      throw Error(describe("generation failed", video, "the model produced NaN/Inf audio (check the weights with --check-weights)"));
    audio = audio.clamp(-1.0, 1.0).contiguous();

    std::vector<AudioBuffer> result;
    for (int64_t b = 0; b < B; ++b) {
      AudioBuffer a;
      a.sample_rate = sample_rate();
      a.channels = static_cast<int>(audio.size(1));
      at::Tensor row = audio[b].contiguous();
      a.samples.assign(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
      result.push_back(std::move(a));
    }
    // The codec's freed activations would otherwise sit in the allocator's cache through the
    // next video's decoder stage.
    release_cached_cpu_memory();
    return result;
  }

 private:
  model::V2MModel model_;
  at::Device device_;
  StageTimes times_;
  nn::KVCache cache_;  // the decoder's KV buffers, reused across the windows of one call
};

bool is_file(const std::string& p) { return ::access(p.c_str(), R_OK) == 0; }

}  // namespace

GenerateParams default_generate_params() { return GenerateParams{}; }

std::unique_ptr<Generator> Generator::load(const std::string& model, const std::string& device, bool check_weights,
                                           const std::string& weights_dtype) {
  at::Device dev(at::kCPU);
  try {
    dev = at::Device(device);
  } catch (const std::exception&) {
    throw UsageError("unknown device '" + device + "' (use cpu or cuda[:N])");
  }
  if (dev.is_cuda() && !torch::cuda::is_available())
    throw Error(describe("cannot use device", device, "this LibTorch build has no CUDA or no GPU is visible"));
  const bool automatic = weights_dtype == "auto";
  // "auto": see v2m.h; additionally fp32 for small decoders, below.
  nn::WeightsDtype wd = automatic ? nn::WeightsDtype::FP32 : nn::parse_weights_dtype(weights_dtype);
  if (wd == nn::WeightsDtype::INT8 && !dev.is_cpu()) throw UsageError("int8 weights run on the CPU only");
  if (!nn::weights_dtype_supported(wd))
    throw Error(describe("cannot use weights dtype", weights_dtype, "this LibTorch build has no quantized CPU engine"));
  // bf16 pays where a step is memory-bound (weights far beyond the caches); for small
  // decoders (v2m-tiny) the casts cost more than the bytes saved (bench_generate).
  // (The config is read first so the weights dtype is known while loading; a bad path is
  // left to load_model, which names it.)
  if (automatic && dev.is_cpu()) {
    const bool yaml = model.size() > 5 && (model.rfind(".yaml") == model.size() - 5 || model.rfind(".yml") == model.size() - 4);
    const std::string cfg_path = is_file(model + "/config.yaml") ? model + "/config.yaml" : yaml && is_file(model) ? model : "";
    if (!cfg_path.empty() && model::load_model_config(cfg_path).decoder.hidden_size >= 512) wd = nn::default_weights_dtype();
  }
  // With bf16 weights on the CPU, a bf16 file's decoder linears go to the kernels as mapped.
  model::V2MModel m = model::load_model(model, check_weights, {}, wd == nn::WeightsDtype::BF16 && dev.is_cpu());
  return std::make_unique<GeneratorImpl>(std::move(m), dev, wd);
}

std::string default_model_path(const std::string& argv0) {
  if (const char* env = std::getenv("V2M_MODEL"); env && *env) return env;
  std::string exe;
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  exe = n > 0 ? std::string(buf, n) : argv0;
  std::string dir = exe.substr(0, exe.find_last_of('/') + 1);
  // <prefix>/bin/v2m -> <prefix>/share/v2m/models/v2m-tiny; <src>/build/tools/v2m/v2m -> <src>/models/v2m-tiny
  std::vector<std::string> cands;
  for (const std::string rel : {"../share/v2m/models/v2m-tiny", "../../../models/v2m-tiny", "../../models/v2m-tiny"})
    cands.push_back(dir + rel);
#ifdef V2M_SOURCE_MODELS_DIR
  cands.push_back(std::string(V2M_SOURCE_MODELS_DIR) + "/v2m-tiny");  // a build directory outside the tree
#endif
  for (const auto& cand : cands)
    if (is_file(cand + "/model.safetensors") && is_file(cand + "/config.yaml")) return cand;
  return "";
}

}  // namespace v2m
