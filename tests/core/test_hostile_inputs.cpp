// Hostile weights, configs and manifests: each gives one v2m::Error line naming the input,
// never a crash, a foreign exception or a huge allocation. Several cases are regressions
// found by the libFuzzer targets in tests/fuzz (scripts/fuzz.sh).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/manifest.h"
#include "data/run_config.h"
#include "test_util.h"
#include "v2m/config.h"
#include "v2m/error.h"
#include "v2m/safetensors.h"

using namespace v2m;

namespace {

// hlen 0: the header's real length.
std::vector<uint8_t> st_file(const std::string& header, size_t data_bytes, uint64_t hlen = 0) {
  std::vector<uint8_t> out(8);
  const uint64_t hl = hlen == 0 ? header.size() : hlen;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(hl >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data_bytes, 0x5a);
  return out;
}

// The message of the v2m::Error parsing `buf` throws; fails the test on success or on any
// other exception type.
std::string st_error(const std::vector<uint8_t>& buf) {
  try {
    SafeTensorsFile::from_buffer(buf.data(), buf.size(), "w.safetensors");
    ADD_FAILURE() << "parsed without error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("w.safetensors"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a v2m::Error: " << e.what();
  }
  return "";
}

std::string tensor(const std::string& name, const std::string& shape, uint64_t b, uint64_t e,
                   const std::string& dtype = "F32") {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

}  // namespace

TEST(HostileSafetensors, HeaderLengthsNearTwoToThe64AreRejectedBeforeAnyAllocation) {
  for (uint64_t hlen : std::vector<uint64_t>{1ull << 63, ~0ull, (1ull << 63) + 7, kMaxSafetensorsHeader + 1}) {
    const std::string msg = st_error(st_file("{}", 0, hlen));
    EXPECT_NE(msg.find("header length " + std::to_string(hlen)), std::string::npos) << msg;
  }
  // One byte short of the real header: the JSON is cut.
  const std::string h = "{" + tensor("w", "[1]", 0, 4) + "}";
  EXPECT_NE(st_error(st_file(h, 4, h.size() - 1)).find("not valid JSON"), std::string::npos);
  EXPECT_NE(st_error(st_file("{}", 0, 1)).find("too small"), std::string::npos);
}

TEST(HostileSafetensors, RangesOutsideTheDataBlockOrOverlappingAreRejected) {
  // End past the data block, begin past the end, offsets near 2^64 (no wrap-around).
  EXPECT_NE(st_error(st_file("{" + tensor("w", "[2]", 0, 8) + "}", 4)).find("outside the data block"),
            std::string::npos);
  EXPECT_NE(st_error(st_file("{" + tensor("w", "[0]", 64, 64) + "}", 4)).find("outside the data block"),
            std::string::npos);
  EXPECT_NE(st_error(st_file("{" + tensor("w", "[1]", ~0ull - 3, ~0ull) + "}", 8)).find("outside"), std::string::npos);
  EXPECT_NE(st_error(st_file("{" + tensor("w", "[1]", 8, 4) + "}", 8)).find("end before they begin"),
            std::string::npos);
  // A tensor inside another, and two identical ranges.
  EXPECT_NE(st_error(st_file("{" + tensor("a", "[4]", 0, 16) + "," + tensor("b", "[1]", 4, 8) + "}", 16))
                .find("overlapping"),
            std::string::npos);
  EXPECT_NE(st_error(st_file("{" + tensor("a", "[1]", 0, 4) + "," + tensor("b", "[1]", 0, 4) + "}", 4))
                .find("overlapping"),
            std::string::npos);
  // Offsets that are not non-negative integers.
  EXPECT_NE(st_error(st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}})", 4)).find("data_offsets"),
            std::string::npos);
  EXPECT_NE(st_error(st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4)).find("data_offsets"),
            std::string::npos);
  EXPECT_NE(st_error(st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4)).find("data_offsets"),
            std::string::npos);
}

TEST(HostileSafetensors, ShapesWhoseInt64ProductOverflowsAreRejectedEvenWithAZeroDim) {
  // [2^62, 2, 0] has 0 elements, but numel() and LibTorch multiply left to right in int64.
  EXPECT_NE(st_error(st_file("{" + tensor("w", "[4611686018427387904,2,0]", 0, 0) + "}", 0)).find("overflows"),
            std::string::npos);
  EXPECT_NE(st_error(st_file("{" + tensor("w", "[9223372036854775808]", 0, 4) + "}", 4)).find("too large"),
            std::string::npos);
  // A legitimate empty tensor with a large (but int64-safe) other dimension still loads.
  const auto ok = st_file("{" + tensor("w", "[4611686018427387904,0]", 0, 0) + "}", 0);
  auto f = SafeTensorsFile::from_buffer(ok.data(), ok.size());
  EXPECT_EQ(f->get("w").numel(), 0);
}

TEST(HostileSafetensors, NonObjectEntriesAndWrongTypesAreRejected) {
  EXPECT_NE(st_error(st_file(R"({"w":[1,2]})", 0)).find("not an object"), std::string::npos);
  EXPECT_NE(st_error(st_file(R"({"w":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", 4)).find("dtype"),
            std::string::npos);
  EXPECT_NE(st_error(st_file(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", 4)).find("shape"),
            std::string::npos);
  EXPECT_NE(st_error(st_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4)).find("shape"),
            std::string::npos);
  EXPECT_NE(st_error(st_file("\"just a string\"", 0)).find("not a JSON object"), std::string::npos);
  // Deep nesting must not blow the stack (nlohmann parses iteratively; metadata must be strings).
  const std::string deep = "{\"__metadata__\":{\"a\":" + std::string(5000, '[') + std::string(5000, ']') + "}}";
  EXPECT_NE(st_error(st_file(deep, 0)).find("__metadata__"), std::string::npos);
}

TEST(HostileConfig, OverrideOnANonMappingDocumentIsAConfigError) {
  // Regression (fuzz_config): yaml-cpp threw BadSubscript out of ConfigDoc::set.
  for (const std::string text : {std::string("\x87"), std::string("- a\n- b\n"), std::string("42")}) {
    ConfigDoc d = ConfigDoc::parse(text, "run.yaml");
    try {
      d.set("data.root=/x");
      ADD_FAILURE() << "no error for document '" << text << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("run.yaml"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("must be a mapping"), std::string::npos) << e.what();
    }
  }
}

TEST(HostileConfig, MalformedAndOutOfRangeValuesNameTheFileAndLine) {
  auto bind_error = [](const std::string& text) -> std::string {
    try {
      data::RunConfig cfg;
      ConfigDoc::parse(text, "run.yaml").bind(cfg);
    } catch (const Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not a v2m::Error: " << e.what();
    }
    return "";
  };
  EXPECT_NE(bind_error("train:\n  steps: 99999999999999999999999\n").find("run.yaml:2"), std::string::npos);
  EXPECT_NE(bind_error("train:\n  lr: .nan\n").find("finite"), std::string::npos);
  EXPECT_NE(bind_error("train:\n  lr: 1e999\n").find("finite"), std::string::npos);
  EXPECT_NE(bind_error("train: [1, 2]\n").find("mapping"), std::string::npos);
  EXPECT_NE(bind_error("{[1, 2]: x}\n").find("unknown key"), std::string::npos);
  EXPECT_NE(bind_error("a: &x [*x]\n").find("run.yaml"), std::string::npos);
  EXPECT_NE(bind_error(std::string(3000, '[')).find("run.yaml"), std::string::npos);
}

TEST(HostileManifest, EscapesFromTheRootAreRejectedInEveryForm) {
  data::ManifestOptions o;
  o.root = "/data";
  o.check_files = false;
  for (const std::string p : {"..", "../x.mp4", "a/../../x.mp4", "a//../../x.mp4", "./../x.mp4", "a/b/../../../x",
                              "/etc/passwd", "//etc/passwd"}) {
    const std::string line = "{\"id\":\"a\",\"video\":\"" + p + "\",\"split\":\"train\"}\n";
    try {
      data::parse_manifest(line, "m.jsonl", o);
      ADD_FAILURE() << "accepted " << p;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(msg.find("leaves the dataset root") != std::string::npos ||
                  msg.find("absolute path") != std::string::npos)
          << msg;
      EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;
    }
    // The same path as the audio of an otherwise fine clip.
    const std::string audio = "{\"id\":\"a\",\"video\":\"ok.mp4\",\"audio\":\"" + p + "\",\"split\":\"val\"}\n";
    EXPECT_THROW(data::parse_manifest(audio, "m.jsonl", o), Error) << p;
  }
  // ".." inside a name is not a parent reference.
  auto m = data::parse_manifest("{\"id\":\"a\",\"video\":\"a..b/..c.mp4\",\"split\":\"test\"}\n", "m.jsonl", o);
  EXPECT_EQ(m.clips[0].video_path, "/data/a..b/..c.mp4");
}

TEST(HostileManifest, BinaryGarbageAndHugeNumbersAreLineNumberedProblems) {
  data::ManifestOptions o;
  o.root = "/data";
  o.check_files = false;
  const std::string text = std::string("\xff\xfe\x00garbage\n", 11) +
                           "{\"id\":\"a\",\"video\":\"a.mp4\",\"split\":\"train\",\"duration\":1e400}\n"
                           "{\"id\":\"b\",\"video\":\"b.mp4\",\"split\":\"train\",\"start\":-1}\n";
  try {
    data::parse_manifest(text, "m.jsonl", o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("m.jsonl"), std::string::npos) << msg;
    EXPECT_NE(msg.find("3 problems"), std::string::npos) << msg;
    EXPECT_NE(msg.find("line 1"), std::string::npos) << msg;
  }
}
