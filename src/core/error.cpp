#include "v2m/error.h"

namespace v2m {

std::string describe(const std::string& what, const std::string& path, const std::string& why) {
  std::string s = what;
  if (!path.empty()) s += ": " + path;
  if (!why.empty()) s += ": " + why;
  return s;
}

}  // namespace v2m
