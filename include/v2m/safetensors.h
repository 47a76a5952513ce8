// Safetensors reader (mmap, zero-copy, strict validation) and atomic writer.
// Format: 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, "__metadata__": {..}},
// then the data block; offsets are relative to the data block.
// LibTorch-free: tensors are handed out as views; nn/state_dict.h turns them into at::Tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace v2m {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType d);
const char* dtype_name(DType d);           // "F32", ...
bool dtype_from_name(const std::string& s, DType* out);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // points into the mapping (or into the owner's buffer)
  size_t nbytes = 0;
  int64_t numel() const;
};

// Largest header accepted (the HF reference implementation uses 100 MB too).
constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

class SafeTensorsFile {
 public:
  // Maps `path` read-only and validates the whole header; throws v2m::Error naming the
  // file and the problem (bad header length, malformed JSON, unknown dtype, shape/byte
  // mismatch, range outside the file, overlapping or unsorted ranges, duplicate names).
  static std::shared_ptr<SafeTensorsFile> open(const std::string& path);
  // Same validation over an in-memory buffer (copied); used by the fuzzer and tests.
  static std::shared_ptr<SafeTensorsFile> from_buffer(const void* data, size_t size,
                                                      const std::string& label = "<buffer>");
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool mapped() const { return mapped_; }  // false: from_buffer (an owned copy)
  const std::vector<TensorView>& tensors() const { return tensors_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  // Throws v2m::Error "<file>: no tensor named <name>" when absent.
  const TensorView& get(const std::string& name) const;

 private:
  SafeTensorsFile() = default;
  void parse(const std::string& label);
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  std::vector<uint8_t> owned_;
  std::vector<TensorView> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (in the given order) + metadata to `path` atomically: a temp file in the
// same directory, fsync, rename. A failure leaves any previous file at `path` untouched.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace v2m
