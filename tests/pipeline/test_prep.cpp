// `v2m prep`: manifests from a folder of videos, and the feature cache (shards, resume,
// failed clips listed, readable by the trainer).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "data/manifest.h"
#include "data/run_config.h"
#include "media/media_testutil.h"
#include "model/v2m_model.h"
#include "pipeline/prep.h"
#include "test_util.h"
#include "train/feature_cache.h"
#include "v2m/error.h"

using namespace v2m;

namespace {

void make_video(const std::string& path, int audio_rate, double tone = 440) {
  testutil::ClipSpec spec;
  spec.width = 96;
  spec.height = 64;
  spec.frames = 24;
  spec.fps = 12;
  spec.audio_rate = audio_rate;
  spec.tone_hz = tone;
  testutil::make_clip(path, spec);
}

}  // namespace

TEST(Prep, ManifestFromVideosUsesOwnTrackOrSameNamedAudioAndSkipsTheRest) {
  TempDir d;
  ::mkdir((d.path() + "/sub").c_str(), 0755);
  make_video(d.path() + "/a.mp4", 16000);           // own audio track
  make_video(d.path() + "/sub/b.mp4", 0);           // audio from sub/b.wav
  testutil::make_audio_file(d.path() + "/sub/b.wav", testutil::sine(16000, 1, 2.0, 330, 0.5));
  make_video(d.path() + "/c.mp4", 0);               // no audio at all -> skipped
  write_text(d.path() + "/notes.txt", "not a video");
  pipeline::ManifestFromVideos o;
  o.clip_seconds = 1.5;
  auto rep = pipeline::build_manifest_from_videos(d.path(), d.path() + "/m.jsonl", o);
  EXPECT_EQ(rep.clips, 2);
  ASSERT_EQ(rep.skipped.size(), 1u);
  EXPECT_NE(rep.skipped[0].find("c.mp4"), std::string::npos);
  auto m = data::read_manifest(d.path() + "/m.jsonl");
  ASSERT_EQ(m.clips.size(), 2u);
  EXPECT_EQ(m.clips[0].video, "a.mp4");
  EXPECT_TRUE(m.clips[0].audio.empty());
  EXPECT_EQ(m.clips[1].video, "sub/b.mp4");
  EXPECT_EQ(m.clips[1].audio, "sub/b.wav");
  EXPECT_EQ(m.clips[1].id, "sub_b");
  EXPECT_DOUBLE_EQ(m.clips[0].duration, 1.5);
  EXPECT_THROW(pipeline::build_manifest_from_videos(d.path() + "/nope", d.path() + "/x.jsonl", o), Error);
}

TEST(Prep, CacheShardsResumeAndListFailedClips) {
  TempDir d;
  std::vector<data::ClipEntry> clips;
  for (int i = 0; i < 5; ++i) {
    data::ClipEntry c;
    c.id = "v" + std::to_string(i);
    c.video = c.id + ".mp4";
    c.split = i < 4 ? "train" : "val";
    c.duration = 2.0;
    if (i == 3) {
      write_text(d.path() + "/" + c.video, "this is not an mp4 file at all");  // corrupt
    } else {
      make_video(d.path() + "/" + c.video, 16000, 220.0 * (i + 1));
    }
    clips.push_back(c);
  }
  data::write_manifest(d.path() + "/m.jsonl", clips);
  write_text(d.path() + "/run.yaml", "model: " + std::string(V2M_SOURCE_DIR) +
                                         "/configs/model/tiny.yaml\ndata:\n  manifest: " + d.path() +
                                         "/m.jsonl\n  cache_dir: " + d.path() + "/cache\n  shard_size: 2\n");
  auto cfg = data::load_run_config(d.path() + "/run.yaml");
  clips = data::read_manifest(d.path() + "/m.jsonl").clips;  // with resolved paths, as the trainer reads it
  auto rep = pipeline::prep_cache(cfg, "cpu");
  EXPECT_EQ(rep.clips, 5);
  EXPECT_EQ(rep.shards, 3);
  EXPECT_EQ(rep.shards_reused, 0);
  ASSERT_EQ(rep.failed.size(), 1u);
  EXPECT_EQ(rep.failed.begin()->first, "v3");

  // The trainer's reader: train split without the failed clip, shapes from the model config.
  auto m = model::load_model(cfg.model);
  auto fc = train::FeatureCache::open(rep.cache_dir, clips, 2, true, "train");
  ASSERT_EQ(fc.size(), 3u);
  EXPECT_EQ(fc.failed().count("v3"), 1u);
  const auto& c0 = fc[0];
  EXPECT_EQ(c0.clip.size(1), m->cfg.clip_dim());
  EXPECT_EQ(c0.clip.size(0), 4);  // 2 s at clip_fps 2
  EXPECT_EQ(c0.motion.size(1), m->cfg.motion.in_dim);
  EXPECT_EQ(c0.codes.size(0), m->cfg.decoder.num_codebooks);
  EXPECT_EQ(c0.codes.size(1), 100);  // 2 s at 50 Hz
  EXPECT_LT(c0.codes.max().item<int64_t>(), m->cfg.codec.codebook_size);

  // Resume: drop one shard, run again, only that one is recomputed.
  auto plan = train::plan_shards(clips, 2);
  ASSERT_EQ(::unlink((rep.cache_dir + "/" + plan[1].file).c_str()), 0);
  auto rep2 = pipeline::prep_cache(cfg, "cpu");
  EXPECT_EQ(rep2.shards_reused, 2);
  EXPECT_EQ(rep2.failed.size(), 1u);
  EXPECT_EQ(rep2.cache_dir, rep.cache_dir);

  // A different feature setup gets its own cache directory.
  auto other = data::load_run_config(d.path() + "/run.yaml");
  std::string tiny = read_text(std::string(V2M_SOURCE_DIR) + "/configs/model/tiny.yaml");
  tiny.replace(tiny.find("clip_fps: 2.0"), 13, "clip_fps: 4.0");
  write_text(d.path() + "/tiny4.yaml", tiny);
  auto m4 = model::load_model(d.path() + "/tiny4.yaml");
  EXPECT_NE(train::cache_dir(other, m4->cfg), rep.cache_dir);
  // A missing cache is a clear error telling what to run.
  try {
    train::FeatureCache::open(train::cache_dir(other, m4->cfg), clips, 2, true, "train");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("v2m prep"), std::string::npos) << e.what();
  }
  // A clip rewritten in place (same name, new file) is not served from its old shard.
  const std::string before = train::plan_shards(clips, 2)[0].file;
  const struct timespec times[2] = {{0, UTIME_OMIT}, {1234567, 0}};  // keep atime, set mtime
  ASSERT_EQ(::utimensat(AT_FDCWD, clips[0].video_path.c_str(), times, 0), 0);
  EXPECT_NE(train::plan_shards(clips, 2)[0].file, before);
  EXPECT_EQ(train::plan_shards(clips, 2)[1].file, plan[1].file);
}
