// v2m::Error — the one exception type of the library. Messages name the file /
// tensor / key and the problem; the CLI prints what() on one line.
#pragma once

#include <stdexcept>
#include <string>

namespace v2m {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Usage errors (bad flags, bad --set overrides): the CLI exits with code 2.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& msg) : Error(msg) {}
};

// Formats "<what>: <path>: <why>" the way every error message in v2m reads.
std::string describe(const std::string& what, const std::string& path, const std::string& why);

}  // namespace v2m
