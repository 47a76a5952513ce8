// Subcommand registry of the v2m CLI. Each cmd_*.cpp adds itself with a static
// Command object; main.cpp builds the CLI11 app from the registry.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace v2m::cli {

struct GlobalOptions {
  int threads = 0;  // 0 = all cores
  bool verbose = false;
  bool quiet = false;
};

// `setup` adds options to `sub` and sets its callback; callbacks throw v2m::Error on failure.
using SetupFn = std::function<void(CLI::App& sub, const GlobalOptions& global)>;

struct Command {
  Command(std::string name, std::string description, SetupFn setup);
};

struct CommandEntry {
  std::string name;
  std::string description;
  SetupFn setup;
};
std::vector<CommandEntry>& registry();

}  // namespace v2m::cli
