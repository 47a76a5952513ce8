#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "v2m/runtime.h"

namespace v2m {

void init_logging(int level) {
  // Everything goes to stderr: stdout carries results only.
  auto logger = spdlog::stderr_color_mt("v2m");
  logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level >= 2 ? spdlog::level::debug : level == 1 ? spdlog::level::info : spdlog::level::warn);
}

}  // namespace v2m
