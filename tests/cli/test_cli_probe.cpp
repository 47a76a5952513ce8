// `v2m probe`: runs the built CLI; results on stdout, one-line errors on stderr, exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>

#include "media/media_testutil.h"
#include "test_util.h"

using namespace v2m::testutil;

namespace {

struct CliResult {
  int code = -1;
  std::string out, err;
};

// Runs the CLI with stdout and stderr captured separately.
CliResult run_cli(const std::string& args, const std::string& tmp_dir) {
  CliResult r;
  const std::string out_path = tmp_dir + "/stdout.txt", err_path = tmp_dir + "/stderr.txt";
  const std::string cmd = std::string("'") + V2M_CLI_PATH + "' " + args + " >'" + out_path + "' 2>'" + err_path + "'";
  const int st = std::system(cmd.c_str());
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return r;
}

bool have_cli() { return std::string(V2M_CLI_PATH).size() > 0 && file_exists(V2M_CLI_PATH); }

}  // namespace

TEST(CliProbe, PrintsTextAndJson) {
  if (!have_cli()) GTEST_SKIP() << "v2m CLI not built";
  TempDir dir;
  const std::string clip = dir.path() + "/clip.mp4";
  ClipSpec spec;
  spec.audio_rate = 32000;
  make_clip(clip, spec);

  CliResult text = run_cli("probe '" + clip + "'", dir.path());
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("stream 0: video"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("64x48"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("32000 Hz, 1 ch"), std::string::npos) << text.out;

  CliResult js = run_cli("probe --json '" + clip + "'", dir.path());
  ASSERT_EQ(js.code, 0) << js.err;
  nlohmann::json j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["path"], clip);
  ASSERT_EQ(j["streams"].size(), 2u);
  EXPECT_EQ(j["streams"][0]["type"], "video");
  EXPECT_EQ(j["streams"][1]["type"], "audio");
  EXPECT_NEAR(j["duration"].get<double>(), 1.0, 0.1);
}

TEST(CliProbe, BadFilesExitOneWithOneErrorLine) {
  if (!have_cli()) GTEST_SKIP() << "v2m CLI not built";
  TempDir dir;
  const std::string empty = dir.path() + "/empty.mp4";
  write_text(empty, "");
  const std::string text = dir.path() + "/text.mp4";
  write_text(text, std::string(3000, 'z'));
  const std::string clip = dir.path() + "/clip.mp4";
  make_clip(clip, ClipSpec{});
  const std::string bytes = read_text(clip);
  const std::string cut = dir.path() + "/cut.mp4";
  write_text(cut, bytes.substr(0, bytes.size() / 2));
  const std::string missing = dir.path() + "/missing.mp4";

  struct Case {
    std::string path, why;
  };
  for (const Case& c : {Case{missing, "no such file"}, Case{dir.path(), "is a directory"}, Case{empty, "file is empty"},
                        Case{text, "not a media file"}, Case{cut, ""}}) {
    CliResult r = run_cli("probe '" + c.path + "'", dir.path());
    EXPECT_EQ(r.code, 1) << c.path;
    EXPECT_TRUE(r.out.empty()) << r.out;
    const std::string head = "v2m: error: cannot probe: " + c.path + ": ";
    EXPECT_EQ(r.err.rfind(head, 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.why), std::string::npos) << r.err;
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  }
}

TEST(CliProbe, MissingArgumentIsAUsageError) {
  if (!have_cli()) GTEST_SKIP() << "v2m CLI not built";
  TempDir dir;
  CliResult r = run_cli("probe", dir.path());  // each run loads LibTorch (~2 s): keep them few
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty());
  EXPECT_NE(r.err.find("file"), std::string::npos) << r.err;
}
