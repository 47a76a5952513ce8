// v2m command-line entry: global options, subcommands, one-line errors, exit codes
// (0 ok, 1 runtime error, 2 usage error).
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "v2m/error.h"
#include "v2m/runtime.h"

namespace v2m::cli {

std::vector<CommandEntry>& registry() {
  static std::vector<CommandEntry> r;
  return r;
}

Command::Command(std::string name, std::string description, SetupFn setup) {
  registry().push_back({std::move(name), std::move(description), std::move(setup)});
}

}  // namespace v2m::cli

int main(int argc, char** argv) {
  using namespace v2m::cli;
  // LibTorch's OpenMP workers spin after every parallel region while OpenBLAS's own
  // threads do the matmuls; on few cores they fight and a decoder step runs ~5x slower
  // (bench_decoder: 653 ms -> 126 ms per musicgen-small step on 2 cores). A short spin
  // (GOMP_SPINCOUNT 30000, tens of microseconds) before sleeping still pays: a decode step
  // runs ~220 parallel regions back to back, and waking sleeping workers for each cost a
  // third of the step (bench_decoder bf16: 113 -> 76 ms per step on 2 cores). OpenBLAS's idle
  // threads yield-spin ~0.1 s unless OPENBLAS_THREAD_TIMEOUT is short (CLIP batch 1.4 -> 0.8 s).
  v2m::reexec_with_thread_env(argv);
  CLI::App app{"v2m: generate background music that follows a video"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("v2m ") + V2M_VERSION);
  GlobalOptions g;
  app.add_option("--threads", g.threads, "Compute threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("-v,--verbose", g.verbose, "Debug logging");
  app.add_flag("-q,--quiet", g.quiet, "Only warnings and errors");
  app.parse_complete_callback([&] {
    v2m::init_logging(g.verbose ? 2 : (g.quiet ? 0 : 1));
    v2m::use_caching_cpu_allocator();  // before any tensor: see runtime.h
    v2m::set_threads(g.threads);
  });

  auto& cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    c.setup(*sub, g);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "v2m: %s\n", e.what());
    return 2;
  } catch (const v2m::UsageError& e) {
    std::fprintf(stderr, "v2m: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // LibTorch errors carry a C++ backtrace after the first line; keep the message to one line.
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    std::fprintf(stderr, "v2m: error: %s\n", msg.c_str());
    return 1;
  }
  return 0;
}
