#include "v2m/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <nlohmann/json.hpp>

#include "v2m/error.h"
#include "v2m/fs.h"

namespace v2m {

namespace {

struct DTypeInfo {
  DType d;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

[[noreturn]] void fail(const std::string& file, const std::string& why) {
  throw Error(describe("invalid safetensors file", file, why));
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

size_t dtype_size(DType d) {
  for (auto& i : kDTypes)
    if (i.d == d) return i.size;
  return 0;
}

const char* dtype_name(DType d) {
  for (auto& i : kDTypes)
    if (i.d == d) return i.name;
  return "?";
}

bool dtype_from_name(const std::string& s, DType* out) {
  for (auto& i : kDTypes) {
    if (s == i.name) {
      *out = i.d;
      return true;
    }
  }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

std::shared_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
  require_regular_file(path, "cannot read weights");
  std::shared_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(describe("cannot read weights", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw Error(describe("cannot read weights", path, std::strerror(errno)));
  }
  f->size_ = static_cast<size_t>(st.st_size);
  // Private and writable: tensors alias the mapping (zero-copy model load), and a model whose
  // parameters are later updated in place (training) gets copy-on-write pages instead of a
  // fault; the file itself is never written.
  void* p = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw Error(describe("cannot map weights", path, std::strerror(errno)));
  f->base_ = static_cast<const uint8_t*>(p);
  f->mapped_ = true;
  f->parse(path);
  return f;
}

std::shared_ptr<SafeTensorsFile> SafeTensorsFile::from_buffer(const void* data, size_t size,
                                                              const std::string& label) {
  std::shared_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = label;
  f->owned_.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
  f->base_ = f->owned_.data();
  f->size_ = size;
  f->parse(label);
  return f;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (mapped_ && base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

void SafeTensorsFile::parse(const std::string& label) {
  if (size_ < 8) fail(label, "file is " + std::to_string(size_) + " bytes, shorter than the 8-byte header length");
  const uint64_t hlen = read_le64(base_);
  if (hlen > kMaxSafetensorsHeader) fail(label, "header length " + std::to_string(hlen) + " exceeds the 100 MB limit");
  if (hlen > size_ - 8) fail(label, "header length " + std::to_string(hlen) + " runs past the end of the file (" + std::to_string(size_) + " bytes)");
  if (hlen < 2) fail(label, "header length " + std::to_string(hlen) + " is too small for a JSON object");
  const char* hbegin = reinterpret_cast<const char*>(base_ + 8);
  nlohmann::json header;
  // nlohmann keeps the last of duplicate keys silently; a parse callback sees every
  // top-level key so a duplicated tensor name is reported instead.
  std::set<std::string> seen;
  std::string duplicate;
  auto cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    if (depth == 1 && ev == nlohmann::json::parse_event_t::key && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty()) duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = nlohmann::json::parse(hbegin, hbegin + hlen, cb);
  } catch (const nlohmann::json::exception& e) {
    fail(label, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail(label, "header is not a JSON object");
  if (!duplicate.empty()) fail(label, "duplicate tensor name '" + duplicate + "'");

  const uint8_t* data = base_ + 8 + hlen;
  const uint64_t data_size = size_ - 8 - hlen;
  struct Range {
    uint64_t b, e;
    size_t idx;
  };
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(label, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail(label, "__metadata__." + m.key() + " is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) fail(label, where + " entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(label, where + " has no dtype string");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(label, where + " has no shape array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail(label, where + " data_offsets is not [begin, end]");
    TensorView t;
    t.name = name;
    const std::string dt = v["dtype"].get<std::string>();
    if (!dtype_from_name(dt, &t.dtype)) fail(label, where + " has unknown dtype " + dt);
    // Element count with overflow checks: a hostile shape must not wrap around.
    // The product of the non-zero dimensions must fit int64 too: TensorView::numel() and
    // at::Tensor multiply in int64 left to right, before a later zero would cancel it.
    uint64_t numel = 1, nonzero = 1;
    constexpr uint64_t kMaxNumel = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(label, where + " shape has a non-integer or negative dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > kMaxNumel) fail(label, where + " shape dimension too large");
      if (dim != 0 && nonzero > kMaxNumel / dim) fail(label, where + " shape overflows");
      if (dim != 0) nonzero *= dim;
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(label, where + " data_offsets are not non-negative integers");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (e < b) fail(label, where + " data_offsets end before they begin");
    if (e > data_size)
      fail(label, where + " byte range [" + std::to_string(b) + ", " + std::to_string(e) +
                      ") lies outside the data block of " + std::to_string(data_size) + " bytes");
    const uint64_t esize = dtype_size(t.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize || numel * esize != e - b)
      fail(label, where + " shape x dtype size (" + std::to_string(numel) + " x " + std::to_string(esize) +
                      ") does not match its byte range of " + std::to_string(e - b) + " bytes");
    t.data = data + b;
    t.nbytes = static_cast<size_t>(e - b);
    if (index_.count(name)) fail(label, "duplicate tensor name '" + name + "'");
    index_[name] = tensors_.size();
    ranges.push_back({b, e, tensors_.size()});
    tensors_.push_back(std::move(t));
  }
  // Ranges must tile without overlap (the reference writer packs them in order).
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.b < b.b || (a.b == b.b && a.e < b.e); });
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].b < ranges[i - 1].e)
      fail(label, "tensors '" + tensors_[ranges[i - 1].idx].name + "' and '" + tensors_[ranges[i].idx].name +
                      "' have overlapping byte ranges");
  }
  // Keep file order (by offset) for iteration.
  std::vector<TensorView> ordered;
  ordered.reserve(tensors_.size());
  for (auto& r : ranges) ordered.push_back(tensors_[r.idx]);
  tensors_ = std::move(ordered);
  index_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

bool SafeTensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorView& SafeTensorsFile::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(describe("missing tensor", path_, "no tensor named '" + name + "'"));
  return tensors_[it->second];
}

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  // Tensors in order of the alignment their size allows (the largest power of two dividing it,
  // up to 64), stable within one: every offset is then a multiple of the alignment of the
  // tensor placed there, since all sizes before it are. With the data block 64-byte aligned
  // below, each tensor starts element-aligned, and on a cache line where its size allows
  // (every weight matrix), so the kernels read the weights they use as mapped ("mixed" files'
  // bf16 linears) with aligned loads. The format allows any order (no holes).
  const auto alignment = [](uint64_t nbytes) {
    uint64_t a = 64;
    while (a > 1 && nbytes % a != 0) a /= 2;
    return a;
  };
  std::vector<const TensorView*> order;
  order.reserve(tensors.size());
  for (const auto& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(),
                   [&](const TensorView* a, const TensorView* b) { return alignment(a->nbytes) > alignment(b->nbytes); });
  uint64_t offset = 0;
  for (const TensorView* tp : order) {
    const TensorView& t = *tp;
    if (t.name == "__metadata__" || header.contains(t.name))
      throw Error(describe("cannot write", path, "duplicate or reserved tensor name '" + t.name + "'"));
    const uint64_t expect = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype);
    if (expect != t.nbytes)
      throw Error(describe("cannot write", path, "tensor '" + t.name + "' has " + std::to_string(t.nbytes) +
                                                      " bytes, shape needs " + std::to_string(expect)));
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string h = header.dump();
  // Pad the header with spaces so the data block starts 64-byte aligned (the reference writer
  // pads to 8; readers take any header length).
  while ((8 + h.size()) % 64 != 0) h.push_back(' ');
  atomic_write(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(describe("cannot write", path, std::strerror(errno)));
    bool ok = true;
    uint8_t len[8];
    uint64_t hl = h.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(hl >> (8 * i));
    ok = ok && std::fwrite(len, 1, 8, f) == 8;
    ok = ok && std::fwrite(h.data(), 1, h.size(), f) == h.size();
    for (const TensorView* t : order) {
      if (!ok) break;
      if (t->nbytes) ok = std::fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    }
    int err = ok ? 0 : errno;
    if (std::fflush(f) != 0 && ok) ok = false, err = errno;
    if (std::fclose(f) != 0 && ok) ok = false, err = errno;
    if (!ok) throw Error(describe("cannot write", path, std::strerror(err ? err : EIO)));
  });
}

}  // namespace v2m
