#include "nn/state_dict.h"

#include <c10/util/Half.h>
#include <sys/mman.h>
#include <torch/nn/module.h>
#include <unistd.h>

#include <mutex>
#include <sstream>
#include <unordered_map>

#include "v2m/error.h"

namespace v2m::nn {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

}  // namespace

at::ScalarType to_scalar_type(DType d) {
  switch (d) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
  }
  throw Error("unknown dtype");
}

DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
    default: throw Error(std::string("dtype not storable in safetensors: ") + c10::toString(t));
  }
}

namespace {

// Tensors that alias a weight file's mapping, by data pointer -> byte size: the ones whose
// resident pages can be given back (drop_resident_weights) without losing their values.
std::mutex g_mapped_mu;
std::unordered_map<const void*, size_t> g_mapped;

// Gives back the pages wholly inside [data, data + nbytes) of a private file mapping; partial
// pages at either end may hold a neighbour and stay. Returns the bytes advised.
size_t drop_mapped_pages(const void* data, size_t nbytes) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t b = reinterpret_cast<uintptr_t>(data);
  const uintptr_t lo = (b + page - 1) / page * page, hi = (b + nbytes) / page * page;
  if (hi <= lo) return 0;
  ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  return hi - lo;
}

}  // namespace

at::Tensor to_tensor(const TensorView& v, const std::shared_ptr<SafeTensorsFile>& owner) {
  auto opts = at::TensorOptions().dtype(to_scalar_type(v.dtype)).device(at::kCPU);
  if (v.numel() == 0) return at::empty(v.shape, opts);
  const size_t esize = dtype_size(v.dtype);
  const bool aligned = reinterpret_cast<uintptr_t>(v.data) % esize == 0;
  // Unaligned element data (legal in the format) gets one aligned copy.
  if (!aligned) return at::from_blob(const_cast<void*>(v.data), v.shape, opts).clone();
  // The deleter holds the file (and its mapping) alive for as long as the tensor lives.
  auto keep = new std::shared_ptr<SafeTensorsFile>(owner);
  const bool mapped = owner->mapped();
  const size_t nbytes = v.nbytes;
  if (mapped) {
    std::lock_guard<std::mutex> lock(g_mapped_mu);
    g_mapped[v.data] = nbytes;
  }
  return at::from_blob(const_cast<void*>(v.data), v.shape,
                       [keep, mapped, nbytes](void* data) {
                         // This tensor's own pages go back, so weights converted at load (or
                         // dropped) stop counting in the resident set even though the rest of
                         // the mapping lives on.
                         if (mapped) {
                           {
                             std::lock_guard<std::mutex> lock(g_mapped_mu);
                             g_mapped.erase(data);
                           }
                           drop_mapped_pages(data, nbytes);
                         }
                         delete keep;
                       },
                       opts);
}

size_t drop_resident_data(const void* data) {
  size_t nbytes = 0;
  {
    std::lock_guard<std::mutex> lock(g_mapped_mu);
    const auto it = g_mapped.find(data);
    if (it == g_mapped.end()) return 0;  // a copy (converted, or made at load): not a mapping
    nbytes = it->second;
  }
  return drop_mapped_pages(data, nbytes);
}

size_t drop_resident_weights(const torch::nn::Module& module) {
  size_t dropped = 0;
  const auto drop = [&](const at::Tensor& t) {
    if (t.defined() && t.device().is_cpu() && t.numel() > 0) dropped += drop_resident_data(t.data_ptr());
  };
  for (const auto& p : module.parameters(/*recurse=*/true)) drop(p);
  for (const auto& b : module.buffers(/*recurse=*/true)) drop(b);
  return dropped;
}

TensorMap load_safetensors(const std::string& path) {
  auto f = SafeTensorsFile::open(path);
  TensorMap m;
  for (const auto& v : f->tensors()) m.emplace(v.name, to_tensor(v, f));
  return m;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;
  std::vector<TensorView> views;
  keep.reserve(tensors.size());
  for (const auto& [name, t0] : tensors) {
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    keep.push_back(t);
    TensorView v;
    v.name = name;
    v.dtype = from_scalar_type(t.scalar_type());
    v.shape.assign(t.sizes().begin(), t.sizes().end());
    v.data = t.data_ptr();
    v.nbytes = t.numel() * t.element_size();
    views.push_back(std::move(v));
  }
  write_safetensors(path, views, metadata);
}

std::vector<std::string> load_into(torch::nn::Module& module, const TensorMap& tensors,
                                   const std::string& prefix, const std::string& source, bool alias,
                                   const std::function<bool(const std::string&)>& keep_dtype) {
  std::vector<std::string> used;
  at::NoGradGuard no_grad;
  auto assign = [&](const std::string& name, at::Tensor& dst) {
    const std::string key = prefix + name;
    auto it = tensors.find(key);
    if (it == tensors.end()) throw Error(describe("missing tensor", source, "no tensor named '" + key + "'"));
    const at::Tensor& src = it->second;
    if (src.sizes() != dst.sizes())
      throw Error(describe("shape mismatch", source,
                           "tensor '" + key + "' has shape " + shape_str(src.sizes()) + ", the model expects " +
                               shape_str(dst.sizes())));
    if (dst.is_floating_point() != src.is_floating_point())
      throw Error(describe("dtype mismatch", source,
                           "tensor '" + key + "' has dtype " + c10::toString(src.scalar_type()) + ", the model expects " +
                               c10::toString(dst.scalar_type())));
    const bool same_dtype = src.scalar_type() == dst.scalar_type() || (keep_dtype && keep_dtype(key));
    if (alias && same_dtype && src.device() == dst.device() && src.is_contiguous() && dst.is_contiguous())
      dst.set_data(src);  // the parameter now lives in the source's storage (e.g. the file mapping)
    else
      dst.copy_(src);
    used.push_back(key);
  };
  for (auto& p : module.named_parameters(/*recurse=*/true)) assign(p.key(), p.value());
  for (auto& b : module.named_buffers(/*recurse=*/true)) assign(b.key(), b.value());
  return used;
}

void collect_state(const torch::nn::Module& module, const std::string& prefix, TensorMap* out) {
  for (const auto& p : module.named_parameters(true)) (*out)[prefix + p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers(true)) (*out)[prefix + b.key()] = b.value().detach();
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters(true)) n += p.numel();
  return n;
}

void check_finite(const TensorMap& tensors, const std::string& source) {
  for (const auto& [name, t] : tensors) {
    if (!t.is_floating_point()) continue;
    if (!at::isfinite(t).all().item<bool>())
      throw Error(describe("bad weights", source, "tensor '" + name + "' contains NaN or Inf values"));
  }
}

}  // namespace v2m::nn
