// v2m probe FILE [--json]: container and streams of a media file (no decoding).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "v2m/media.h"

namespace {

const v2m::cli::Command reg("probe", "Show the streams of a media file", [](CLI::App& sub, const v2m::cli::GlobalOptions&) {
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  sub.add_option("file", *file, "Video or audio file")->required();
  sub.add_flag("--json", *json, "Print JSON");
  sub.callback([=] {
    const v2m::media::ProbeInfo info = v2m::media::probe(*file);
    if (*json) {
      std::printf("%s\n", v2m::media::to_json(info).c_str());
    } else {
      std::fputs(v2m::media::to_text(info).c_str(), stdout);
    }
  });
});

}  // namespace
