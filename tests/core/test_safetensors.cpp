#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "v2m/error.h"
#include "v2m/safetensors.h"
#include "test_util.h"

using namespace v2m;

namespace {

// Builds a raw safetensors file from a header string and a data block.
std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data, uint64_t hlen_override = 0) {
  std::vector<uint8_t> out(8);
  uint64_t hl = hlen_override ? hlen_override : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(hl >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string expect_error(const std::string& header, const std::vector<uint8_t>& data, uint64_t hlen = 0) {
  auto buf = raw_file(header, data, hlen);
  try {
    SafeTensorsFile::from_buffer(buf.data(), buf.size(), "t.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for header " << header;
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  TempDir dir;
  std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  std::vector<int64_t> i64 = {-1, 1LL << 40};
  std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff};  // 1, -2, 65504
  std::vector<uint8_t> u8 = {0, 255, 7};
  std::vector<int8_t> i8 = {-128, 127};
  std::vector<int32_t> i32 = {123456};
  std::vector<int16_t> i16 = {-5, 5};
  std::vector<uint16_t> bf16 = {0x3f80};
  std::vector<uint8_t> b = {1, 0, 1, 1};
  std::vector<TensorView> ts = {
      {"a.weight", DType::F32, {2, 3}, f32.data(), f32.size() * 4},
      {"b", DType::I64, {2}, i64.data(), 16},
      {"c", DType::F16, {3}, f16.data(), 6},
      {"d", DType::U8, {3}, u8.data(), 3},
      {"e", DType::I8, {2}, i8.data(), 2},
      {"f", DType::I32, {1}, i32.data(), 4},
      {"g", DType::I16, {2}, i16.data(), 4},
      {"h", DType::BF16, {1}, bf16.data(), 2},
      {"i", DType::BOOL, {2, 2}, b.data(), 4},
      {"scalar", DType::F32, {}, f32.data(), 4},
  };
  const std::string path = dir.path() + "/m.safetensors";
  write_safetensors(path, ts, {{"format", "pt"}});
  auto f = SafeTensorsFile::open(path);
  ASSERT_EQ(f->tensors().size(), ts.size());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  for (const auto& t : ts) {
    const auto& r = f->get(t.name);
    EXPECT_EQ(r.dtype, t.dtype) << t.name;
    EXPECT_EQ(r.shape, t.shape) << t.name;
    ASSERT_EQ(r.nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(r.data, t.data, t.nbytes), 0) << t.name;
  }
  // Every tensor starts aligned to its element size (views are used in place), whatever the
  // sizes before it in the caller's order.
  for (const auto& t : ts) {
    const auto& r = f->get(t.name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data) % dtype_size(r.dtype), 0u) << t.name;
  }
  EXPECT_THROW(f->get("nope"), Error);
}

// Weight matrices (sizes a multiple of 64 bytes) start on a cache line in the mapping even
// when odd-sized tensors come first in the caller's order.
TEST(Safetensors, WriterPlacesCacheLineSizedTensorsOnCacheLines) {
  TempDir dir;
  std::vector<uint8_t> odd(3, 1), small(10, 2);
  std::vector<uint16_t> w(32 * 48, 3);
  std::vector<float> v(24, 4.0f);
  std::vector<TensorView> ts = {
      {"a_odd", DType::U8, {3}, odd.data(), 3},
      {"b_w", DType::BF16, {32, 48}, w.data(), w.size() * 2},
      {"c_small", DType::I16, {5}, small.data(), 10},
      {"d_v", DType::F32, {24}, v.data(), 96},
  };
  const std::string path = dir.path() + "/w.safetensors";
  write_safetensors(path, ts);
  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->get("b_w").data) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->get("d_v").data) % 32, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->get("c_small").data) % 2, 0u);
  for (const auto& t : ts) EXPECT_EQ(std::memcmp(f->get(t.name).data, t.data, t.nbytes), 0) << t.name;
}

TEST(Safetensors, RejectsHugeHeaderLength) {
  const std::string msg = expect_error("{}", {}, 1ull << 63);
  EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t.safetensors"), std::string::npos) << msg;
}

TEST(Safetensors, RejectsHeaderPastEndOfFile) {
  EXPECT_NE(expect_error("{}", {}, 4096).find("past the end"), std::string::npos);
}

TEST(Safetensors, RejectsShortFile) {
  std::vector<uint8_t> buf = {1, 2, 3};
  EXPECT_THROW(SafeTensorsFile::from_buffer(buf.data(), buf.size()), Error);
}

TEST(Safetensors, RejectsMalformedJson) {
  EXPECT_NE(expect_error("{\"a\": [", {}).find("not valid JSON"), std::string::npos);
  EXPECT_NE(expect_error("[1,2]", {}).find("not a JSON object"), std::string::npos);
}

TEST(Safetensors, RejectsUnknownDtype) {
  std::vector<uint8_t> d(4);
  EXPECT_NE(expect_error(R"({"x":{"dtype":"F128","shape":[1],"data_offsets":[0,4]}})", d).find("unknown dtype"),
            std::string::npos);
}

TEST(Safetensors, RejectsShapeByteMismatch) {
  std::vector<uint8_t> d(8);
  EXPECT_NE(expect_error(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d).find("does not match"),
            std::string::npos);
}

TEST(Safetensors, RejectsOutOfFileRange) {
  std::vector<uint8_t> d(8);
  EXPECT_NE(expect_error(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", d).find("outside"),
            std::string::npos);
}

TEST(Safetensors, RejectsOverlappingRanges) {
  std::vector<uint8_t> d(12);
  const std::string h =
      R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  EXPECT_NE(expect_error(h, d).find("overlapping"), std::string::npos);
}

TEST(Safetensors, RejectsDuplicateNames) {
  std::vector<uint8_t> d(8);
  const std::string h =
      R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  EXPECT_NE(expect_error(h, d).find("duplicate"), std::string::npos);
}

TEST(Safetensors, RejectsNegativeAndOverflowingShapes) {
  std::vector<uint8_t> d(8);
  EXPECT_NE(expect_error(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", d).find("negative"),
            std::string::npos);
  const std::string msg =
      expect_error(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", d);
  EXPECT_NE(msg.find("overflow"), std::string::npos) << msg;
}

TEST(Safetensors, RejectsBadMetadata) {
  EXPECT_NE(expect_error(R"({"__metadata__":{"a":1}})", {}).find("__metadata__"), std::string::npos);
}

TEST(Safetensors, OpenMissingFileNamesIt) {
  try {
    SafeTensorsFile::open("/nonexistent/w.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/w.safetensors"), std::string::npos);
  }
}

TEST(Safetensors, FailedWriteLeavesPreviousFile) {
  TempDir dir;
  const std::string path = dir.path() + "/m.safetensors";
  float x = 1.0f;
  write_safetensors(path, {{"x", DType::F32, {1}, &x, 4}});
  // Byte count disagreeing with the shape is refused before anything is written.
  EXPECT_THROW(write_safetensors(path, {{"x", DType::F32, {2}, &x, 4}}), Error);
  auto f = SafeTensorsFile::open(path);
  EXPECT_EQ(f->get("x").shape, std::vector<int64_t>{1});
  EXPECT_EQ(count_files(dir.path()), 1);  // no temp files left behind
}
