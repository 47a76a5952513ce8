// Private audio helpers shared by the writers (WAV, FLAC, mux).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "v2m/media.h"

namespace v2m::media::detail {

// Symmetric scale by 32768 (not 32767) so s / 32768 maps back onto the same grid: PCM16
// WAV and FLAC round-trip every value k / 32768 exactly.
inline int16_t to_pcm16(float x) {
  const float v = std::nearbyint(x * 32768.0f);
  return static_cast<int16_t>(std::clamp(v, -32768.0f, 32767.0f));
}

// Throws "<what>: <path>: invalid audio: ..." for a buffer a writer cannot take.
void check_audio_buffer(const Audio& a, const std::string& what, const std::string& path);

}  // namespace v2m::media::detail
