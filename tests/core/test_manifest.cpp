#include <gtest/gtest.h>
#include <unistd.h>

#include "data/manifest.h"
#include "data/run_config.h"
#include "test_util.h"
#include "v2m/error.h"

using namespace v2m::data;

namespace {
ManifestOptions no_files() {
  ManifestOptions o;
  o.root = "/data";
  o.check_files = false;
  return o;
}
std::string error_of(const std::string& text, ManifestOptions o = no_files()) {
  try {
    parse_manifest(text, "m.jsonl", o);
  } catch (const v2m::Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Manifest, ParsesEntriesAndResolvesPaths) {
  auto m = parse_manifest(
      "{\"id\":\"a\",\"video\":\"v/a.mp4\",\"split\":\"train\"}\n\n"
      "{\"id\":\"b\",\"video\":\"v/b.mp4\",\"audio\":\"a/b.wav\",\"start\":2.5,\"duration\":10,"
      "\"split\":\"test\",\"labels\":{\"bpm\":120}}\n",
      "m.jsonl", no_files());
  ASSERT_EQ(m.clips.size(), 2u);
  EXPECT_EQ(m.clips[0].video_path, "/data/v/a.mp4");
  EXPECT_EQ(m.clips[0].audio_path, "/data/v/a.mp4");  // own audio track
  EXPECT_DOUBLE_EQ(m.clips[0].duration, 30.0);
  EXPECT_EQ(m.clips[1].audio_path, "/data/a/b.wav");
  EXPECT_DOUBLE_EQ(m.clips[1].start, 2.5);
  EXPECT_EQ(m.clips[1].line, 3);
  EXPECT_EQ(m.clips[1].labels["bpm"].get<int>(), 120);
  EXPECT_EQ(m.split("test").size(), 1u);
  EXPECT_THROW(m.split("dev"), v2m::Error);
}

TEST(Manifest, ReportsProblemsWithLineNumbers) {
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"train\"}\nnot json\n").find("line 2: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\":\"a\",\"split\":\"train\"}").find("line 1: missing \"video\""), std::string::npos);
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"dev\"}").find("unknown split"), std::string::npos);
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"val\",\"duration\":-1}").find("duration"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"val\"}\n"
                     "{\"id\":\"a\",\"video\":\"b.mp4\",\"split\":\"val\"}")
                .find("line 2: duplicate id"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"val\",\"extra\":1}").find("unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("").find("no clips"), std::string::npos);
}

TEST(Manifest, ConfinesPathsToTheRoot) {
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"/etc/passwd\",\"split\":\"val\"}").find("absolute path"),
            std::string::npos);
  EXPECT_NE(error_of("{\"id\":\"a\",\"video\":\"x/../../etc/passwd\",\"split\":\"val\"}").find("leaves the dataset root"),
            std::string::npos);
  auto o = no_files();
  o.allow_absolute_paths = true;
  auto m = parse_manifest("{\"id\":\"a\",\"video\":\"/abs/a.mp4\",\"split\":\"val\"}", "m.jsonl", o);
  EXPECT_EQ(m.clips[0].video_path, "/abs/a.mp4");
}

TEST(Manifest, SymlinksMayNotLeaveTheRoot) {
  TempDir d;
  TempDir outside;
  write_text(outside.path() + "/secret.mp4", "x");
  write_text(d.path() + "/inside.mp4", "x");
  ASSERT_EQ(::symlink((outside.path() + "/secret.mp4").c_str(), (d.path() + "/link.mp4").c_str()), 0);
  ASSERT_EQ(::symlink(outside.path().c_str(), (d.path() + "/dir").c_str()), 0);
  ASSERT_EQ(::symlink((d.path() + "/inside.mp4").c_str(), (d.path() + "/ok.mp4").c_str()), 0);
  auto o = no_files();
  o.root = d.path();
  for (const char* bad : {"link.mp4", "dir/secret.mp4", "dir/not_there_yet.mp4"})
    EXPECT_NE(error_of(std::string("{\"id\":\"a\",\"video\":\"") + bad + "\",\"split\":\"val\"}", o)
                  .find("leaves the dataset root through a symlink"),
              std::string::npos)
        << bad;
  // A link that stays inside the root is fine, and so is any link when absolute paths are allowed.
  EXPECT_EQ(parse_manifest("{\"id\":\"a\",\"video\":\"ok.mp4\",\"split\":\"val\"}", "m.jsonl", o).clips.size(), 1u);
  o.allow_absolute_paths = true;
  EXPECT_EQ(parse_manifest("{\"id\":\"a\",\"video\":\"link.mp4\",\"split\":\"val\"}", "m.jsonl", o).clips.size(), 1u);
}

TEST(Manifest, ChecksReferencedFilesExist) {
  TempDir d;
  write_text(d.path() + "/a.mp4", "x");
  write_text(d.path() + "/m.jsonl",
             "{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"train\"}\n"
             "{\"id\":\"b\",\"video\":\"b.mp4\",\"split\":\"train\"}\n");
  try {
    read_manifest(d.path() + "/m.jsonl");
    FAIL() << "expected an error";
  } catch (const v2m::Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2: no such file"), std::string::npos) << e.what();
  }
}

TEST(Manifest, WriteThenReadRoundTrips) {
  TempDir d;
  write_text(d.path() + "/a.mp4", "x");
  ClipEntry c;
  c.id = "a";
  c.video = "a.mp4";
  c.split = "val";
  c.duration = 12.5;
  c.labels = {{"mode", "minor"}};
  write_manifest(d.path() + "/m.jsonl", {c});
  auto m = read_manifest(d.path() + "/m.jsonl");
  ASSERT_EQ(m.clips.size(), 1u);
  EXPECT_EQ(m.clips[0].labels["mode"], "minor");
  EXPECT_DOUBLE_EQ(m.clips[0].duration, 12.5);
}

TEST(Manifest, SplitsAreSeededAndFollowRatios) {
  auto a = assign_splits(1000, {0.7, 0.2, 0.1}, 7);
  auto b = assign_splits(1000, {0.7, 0.2, 0.1}, 7);
  auto c = assign_splits(1000, {0.7, 0.2, 0.1}, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::count(a.begin(), a.end(), "train"), 700);
  EXPECT_EQ(std::count(a.begin(), a.end(), "val"), 200);
  EXPECT_EQ(std::count(a.begin(), a.end(), "test"), 100);
}

TEST(RunConfig, ResolvesModelAgainstConfigDir) {
  TempDir d;
  write_text(d.path() + "/run.yaml", "model: model/tiny.yaml\ndata:\n  manifest: m.jsonl\ntrain:\n  steps: 5\n");
  auto cfg = load_run_config(d.path() + "/run.yaml", {"train.lr=0.5"});
  EXPECT_EQ(cfg.model, d.path() + "/model/tiny.yaml");
  EXPECT_EQ(cfg.train.steps, 5);
  EXPECT_DOUBLE_EQ(cfg.train.lr, 0.5);
  write_text(d.path() + "/bad.yaml", "model: m.yaml\ndata:\n  manifest: m.jsonl\ntrain:\n  stepz: 5\n");
  EXPECT_THROW(load_run_config(d.path() + "/bad.yaml"), v2m::Error);
}
