#include "synth/dataset.h"

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "data/manifest.h"
#include "synth/render.h"
#include "synth/scene.h"
#include "synth/score.h"
#include "v2m/error.h"
#include "v2m/media.h"
#include "v2m/video_encode.h"

namespace v2m::synth {

namespace {

// Creates d and any missing parents (`v2m synth -o data/synth` in a fresh clone).
void make_dir(const std::string& d) {
  struct stat st {};
  if (::stat(d.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw Error(describe("cannot create output directory", d, "exists and is not a directory"));
    return;
  }
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec) throw Error(describe("cannot create output directory", d, ec.message()));
}

}  // namespace

std::string clip_id(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "synth_%05d", index);
  return buf;
}

std::string generate_dataset(const SynthOptions& o, const SynthProgress& progress) {
  if (o.out_dir.empty()) throw Error("synth: no output directory");
  auto bad = [&](const std::string& why) { throw Error(describe("synth: bad options", o.out_dir, why)); };
  if (o.clips < 1) bad("--clips must be at least 1");
  if (!(o.seconds >= 0.5 && o.seconds <= 600)) bad("--seconds must be in [0.5, 600]");
  if (o.size < 16 || o.size > 4096 || o.size % 2) bad("--size must be even and in [16, 4096]");
  if (!(o.fps >= 1 && o.fps <= 120)) bad("--fps must be in [1, 120]");
  if (o.tonic < -1 || o.tonic > 11) bad("--tonic must be a pitch class 0..11 (or -1: one per clip)");
  const std::string sf = find_soundfont(o.soundfont);
  make_dir(o.out_dir);
  make_dir(o.out_dir + "/clips");

  const auto splits = data::assign_splits(static_cast<size_t>(o.clips), {0.7, 0.2, 0.1}, o.seed);
  std::vector<data::ClipEntry> entries(static_cast<size_t>(o.clips));
  const int workers = std::max(1, std::min(o.clips, o.threads > 0 ? o.threads
                                                                   : static_cast<int>(std::thread::hardware_concurrency())));
  std::atomic<int> next{0}, done{0};
  std::mutex mu;
  std::exception_ptr failure;
  auto work = [&] {
    try {
      Renderer renderer(sf, o.sample_rate);
      for (;;) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (failure) return;
        }
        const int i = next++;
        if (i >= o.clips) return;
        const Score score = compose(sample_clip_params(o.seed, static_cast<uint64_t>(i), o.seconds, o.tonic));
        const media::Audio audio = renderer.render(score);
        const std::string id = clip_id(i);
        const std::string video_rel = "clips/" + id + ".mp4", audio_rel = "clips/" + id + ".wav";
        media::write_wav(o.out_dir + "/" + audio_rel, audio, media::WavFormat::PCM16);
        media::VideoEncodeOptions vo;
        vo.width = vo.height = o.size;
        vo.fps = o.fps;
        vo.frames = std::max(1, static_cast<int>(std::lround(o.seconds * o.fps)));
        vo.codec = o.video_codec;
        media::encode_video(
            o.out_dir + "/" + video_rel, vo,
            [&](int k, cv::Mat& rgb) { paint_scene(score, static_cast<double>(k) / o.fps, rgb); }, &audio);
        data::ClipEntry& e = entries[static_cast<size_t>(i)];
        e.id = id;
        e.video = video_rel;
        e.audio = audio_rel;
        e.start = 0.0;
        e.duration = o.seconds;
        e.split = splits[static_cast<size_t>(i)];
        e.labels = score_labels(score);
        const int d = ++done;
        if (progress) {
          std::lock_guard<std::mutex> lock(mu);
          progress(d, o.clips);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!failure) failure = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  const std::string manifest = o.out_dir + "/manifest.jsonl";
  data::write_manifest(manifest, entries);
  return manifest;
}

}  // namespace v2m::synth
