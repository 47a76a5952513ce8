// Name -> tensor maps and strict module loading. Modules register their parameters
// under the Hugging Face names, so loading is a name lookup plus a shape/dtype check.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "v2m/safetensors.h"

namespace v2m::nn {

using TensorMap = std::map<std::string, at::Tensor>;

at::ScalarType to_scalar_type(DType d);
DType from_scalar_type(at::ScalarType t);

// Zero-copy CPU tensor over a view; the returned tensor keeps `owner` alive.
at::Tensor to_tensor(const TensorView& v, const std::shared_ptr<SafeTensorsFile>& owner);

// Every tensor of a file, zero-copy (names as in the file).
TensorMap load_safetensors(const std::string& path);

// Saves tensors atomically (contiguous CPU copies are made where needed).
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Copies `tensors[prefix + name]` into every parameter and buffer of `module`.
// Strict: a missing tensor, a shape mismatch (message names the tensor and both shapes)
// or a non-floating dtype for a floating parameter throws v2m::Error; `source` names the
// file in messages. Values are converted to the parameter's dtype/device.
// Returns the set of keys consumed (so callers can report unused tensors).
// alias: where dtype, device and contiguity match, the parameter takes the source tensor's
// storage instead of a copy (with load_safetensors: zero-copy over the file mapping, which
// stays alive as long as any parameter uses it; writes go to private copy-on-write pages).
// keep_dtype(key): for these keys a floating source of another dtype is aliased as it is too
// (the parameter takes the source's dtype and storage): weights that are converted to that
// dtype right after loading, so widening them first would only cost a copy.
std::vector<std::string> load_into(torch::nn::Module& module, const TensorMap& tensors,
                                   const std::string& prefix, const std::string& source, bool alias = false,
                                   const std::function<bool(const std::string&)>& keep_dtype = {});

// Flattens parameters and buffers of `module` into a map under `prefix`.
void collect_state(const torch::nn::Module& module, const std::string& prefix, TensorMap* out);

// Gives back the resident pages of the module's parameters and buffers that alias a weight
// file's mapping (madvise MADV_DONTNEED; other tensors are left alone): a stage that is done
// (CLIP after the frames are embedded) stops counting in the resident set. The pages stay in
// the page cache, so the next use faults them back in without I/O. Only for weights nothing
// wrote since the load: the mapping is private, a written page would read the file again.
// Returns the bytes given back.
size_t drop_resident_weights(const torch::nn::Module& module);
// The same for one tensor's storage, given by its data pointer (0 where it is not a mapping).
size_t drop_resident_data(const void* data);

// Number of parameter elements.
int64_t count_parameters(const torch::nn::Module& module);

// Throws v2m::Error naming the tensor if any value is NaN/Inf.
void check_finite(const TensorMap& tensors, const std::string& source);

}  // namespace v2m::nn
