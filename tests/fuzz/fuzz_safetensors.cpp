// Fuzzes the safetensors header parser: any buffer either parses into views that lie inside
// it, or throws v2m::Error. Nothing else (crash, other exception, out-of-bounds view) is OK.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "v2m/error.h"
#include "v2m/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = v2m::SafeTensorsFile::from_buffer(data, size, "<fuzz>");
    // Views must lie inside the (copied) buffer; read their first and last bytes so ASan
    // checks them, and recompute the element count the way consumers do.
    unsigned sum = 0;
    for (const auto& t : f->tensors()) {
      if (t.numel() < 0) std::abort();
      if (static_cast<uint64_t>(t.numel()) * v2m::dtype_size(t.dtype) != t.nbytes) std::abort();
      if (t.nbytes) {
        const auto* p = static_cast<const uint8_t*>(t.data);
        sum += p[0] + p[t.nbytes - 1];
      }
      if (f->get(t.name).data != t.data) std::abort();
    }
    if (sum == 0xFFFFFFFFu) std::abort();  // keeps the reads alive
  } catch (const v2m::Error&) {
  }
  return 0;
}
