// Bad inputs: every entry point throws one v2m::Error line "what: path: why", never crashes.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <functional>

#include "media/media_testutil.h"
#include "test_util.h"
#include "v2m/error.h"
#include "v2m/media.h"

using namespace v2m;
using namespace v2m::testutil;

namespace {

struct Op {
  std::string what;
  std::function<void(const std::string&)> run;
};

std::vector<Op> ops() {
  return {
      {"cannot probe", [](const std::string& p) { media::probe(p); }},
      {"cannot decode video", [](const std::string& p) { media::decode_video(p, every_frame()); }},
      {"cannot decode audio", [](const std::string& p) { media::decode_audio(p, 32000, 1); }},
      {"cannot decode video", [](const std::string& p) { media::extract_motion(p, 8); }},
      {"cannot mux", [](const std::string& p) { media::mux(p, sine(32000, 1, 0.1, 440, 0.5), p + ".out.mp4"); }},
  };
}

// Runs op on path; expects a v2m::Error reading "<what>: <path>: <why>" with `why` containing `reason`.
void expect_error(const Op& op, const std::string& path, const std::string& reason) {
  try {
    op.run(path);
    ADD_FAILURE() << op.what << " on " << path << ": no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    const std::string head = op.what + ": " + path + ": ";
    EXPECT_EQ(msg.rfind(head, 0), 0u) << msg;
    EXPECT_NE(msg.find(reason, head.size()), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << op.what << " on " << path << ": not a v2m::Error: " << e.what();
  }
}

}  // namespace

TEST(MediaErrors, MissingDirectoryEmptyAndNonMediaFiles) {
  TempDir dir;
  const std::string empty = dir.path() + "/empty.mp4";
  write_text(empty, "");
  const std::string text = dir.path() + "/notes.mp4";
  write_text(text, std::string(2000, 'x') + "\nthis is not a video\n");
  const std::string txt = dir.path() + "/readme.txt";  // the tty demuxer would claim this one
  write_text(txt, "hello\nworld\n");
  for (const Op& op : ops()) {
    expect_error(op, dir.path() + "/missing.mp4", "no such file");
    expect_error(op, dir.path(), "is a directory");
    expect_error(op, empty, "file is empty");
    expect_error(op, text, "not a media file");
    expect_error(op, txt, "not a media file");
  }
  EXPECT_EQ(count_files(dir.path()), 3);  // no mux output appeared
}

TEST(MediaErrors, TruncatedFiles) {
  TempDir dir;
  const std::string clip = dir.path() + "/full.mp4";
  ClipSpec spec;
  spec.audio_rate = 32000;
  make_clip(clip, spec);
  const std::string bytes = read_text(clip);
  // mp4 as written keeps its index (moov) at the end: half a file has no index at all.
  const std::string half = dir.path() + "/half.mp4";
  write_text(half, bytes.substr(0, bytes.size() / 2));
  const std::string head = dir.path() + "/head.mp4";
  write_text(head, bytes.substr(0, 100));
  for (const Op& op : ops()) {
    expect_error(op, half, "");
    expect_error(op, head, "");
  }

  // Matroska cut in half still opens: decoding gives the frames that are there.
  const std::string mkv = dir.path() + "/full.mkv";
  ClipSpec big;
  big.frames = 50;
  make_clip(mkv, big);
  const std::string mkv_bytes = read_text(mkv);
  const std::string mkv_half = dir.path() + "/half.mkv";
  write_text(mkv_half, mkv_bytes.substr(0, mkv_bytes.size() / 2));
  media::Frames f = media::decode_video(mkv_half, every_frame());
  EXPECT_GT(f.count, 0);
  EXPECT_LT(f.count, 50);
}

TEST(MediaErrors, MissingStreamsAndUndecodableFrames) {
  TempDir dir;
  const std::string audio_only = dir.path() + "/a.mkv";
  ClipSpec a;
  a.frames = 0;
  a.audio_rate = 32000;
  make_clip(audio_only, a);
  expect_error(ops()[1], audio_only, "no video stream");
  expect_error(ops()[3], audio_only, "no video stream");
  expect_error(ops()[4], audio_only, "no video stream");

  const std::string video_only = dir.path() + "/v.mp4";
  make_clip(video_only, ClipSpec{});
  expect_error(ops()[2], video_only, "no audio stream");

  const std::string garbage = dir.path() + "/g.mkv";
  ClipSpec g;
  g.garbage_packets = true;
  make_clip(garbage, g);
  EXPECT_NE(media::probe(garbage).video(), nullptr);  // the stream is there...
  expect_error(ops()[1], garbage, "no decodable video frames");  // ...its frames are not
  expect_error(ops()[3], garbage, "no decodable video frames");
}
