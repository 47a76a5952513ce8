// Small filesystem helpers shared by every writer: atomic output files.
#pragma once

#include <functional>
#include <string>

namespace v2m {

// Calls write(tmp_path) with a temporary path next to `path`, fsyncs it and renames it
// onto `path`. If write throws, the temp file is removed and `path` is left as it was.
void atomic_write(const std::string& path, const std::function<void(const std::string& tmp)>& write);

// Writes bytes to `path` atomically (temp + fsync + rename).
void atomic_write_bytes(const std::string& path, const void* data, size_t size);

// Throws v2m::Error "<what>: <path>: no such file" / "is a directory" / "is empty".
void require_regular_file(const std::string& path, const std::string& what);

}  // namespace v2m
