#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>

int main(int argc, char** argv) {
  // Same as the CLI: passive OpenMP workers so they do not spin against OpenBLAS's threads.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    ::setenv("GOMP_SPINCOUNT", "30000", 0);  // as the CLI (tools/v2m/main.cpp)
    ::execv("/proc/self/exe", argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  spdlog::set_level(spdlog::level::warn);
  return RUN_ALL_TESTS();
}
