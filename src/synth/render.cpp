#include "synth/render.h"

#include <fluidsynth.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>

#include "v2m/error.h"

namespace v2m::synth {

namespace {

bool is_file(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

void log_to_spdlog(int level, const char* message, void*) {
  if (level <= FLUID_ERR)
    spdlog::warn("fluidsynth: {}", message);
  else
    spdlog::debug("fluidsynth: {}", message);
}

// FluidSynth prints to stderr by default; the CLI keeps stderr for progress and errors.
void init_fluid_logging() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int l : {FLUID_PANIC, FLUID_ERR, FLUID_WARN, FLUID_INFO, FLUID_DBG})
      fluid_set_log_function(l, log_to_spdlog, nullptr);
  });
}

struct Event {
  int64_t sample;
  bool on;
  int channel, key, velocity;
};

}  // namespace

std::string find_soundfont(const std::string& requested) {
  if (!requested.empty()) {
    if (!is_file(requested)) throw Error(describe("soundfont not found", requested, "no such file (or empty)"));
    return requested;
  }
  if (const char* env = std::getenv("V2M_SOUNDFONT"); env && *env) {
    if (!is_file(env)) throw Error(describe("soundfont not found", env, "$V2M_SOUNDFONT names no readable file"));
    return env;
  }
  static const char* candidates[] = {"/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2",
                                     "/usr/share/soundfonts/FluidR3_GM.sf2"};
  for (const char* c : candidates)
    if (is_file(c)) return c;
  throw Error(
      "soundfont not found: /usr/share/sounds/sf2/TimGM6mb.sf2: no General MIDI soundfont; install one with "
      "`apt-get install timgm6mb-soundfont` (or fluid-soundfont-gm), or pass --soundfont FILE.sf2");
}

double target_rms_db(double loudness) { return -30.0 + 14.0 * std::clamp(loudness, 0.0, 1.0); }

struct Renderer::Impl {
  fluid_settings_t* settings = nullptr;
  fluid_synth_t* synth = nullptr;
  int sfont = -1;
  std::string soundfont;
  void drop_synth() {
    if (synth) delete_fluid_synth(synth);
    synth = nullptr;
  }
  // A new synthesizer per clip: reverb and voice state would otherwise carry over from the
  // previous clip (fluid_synth_system_reset does not clear the reverb's delay lines), and a
  // dataset rendered by several workers would depend on which worker got which clip.
  void fresh_synth() {
    drop_synth();
    synth = new_fluid_synth(settings);
    if (!synth) throw Error("fluidsynth: cannot create a synthesizer");
    sfont = fluid_synth_sfload(synth, soundfont.c_str(), 1);
    if (sfont == FLUID_FAILED) throw Error(describe("cannot load soundfont", soundfont, "not a valid SoundFont 2 file"));
  }
  ~Impl() {
    drop_synth();
    if (settings) delete_fluid_settings(settings);
  }
};

Renderer::Renderer(const std::string& soundfont, int sample_rate) : impl_(std::make_unique<Impl>()), rate_(sample_rate) {
  init_fluid_logging();
  if (sample_rate < 8000 || sample_rate > 96000)
    throw Error(describe("cannot render", soundfont, "sample rate must be in [8000, 96000], got " + std::to_string(sample_rate)));
  impl_->settings = new_fluid_settings();
  if (!impl_->settings) throw Error("fluidsynth: cannot create settings");
  fluid_settings_setnum(impl_->settings, "synth.sample-rate", sample_rate);
  fluid_settings_setint(impl_->settings, "synth.threadsafe-api", 0);
  fluid_settings_setint(impl_->settings, "synth.cpu-cores", 1);
  fluid_settings_setint(impl_->settings, "synth.chorus.active", 0);
  fluid_settings_setint(impl_->settings, "synth.reverb.active", 1);
  fluid_settings_setnum(impl_->settings, "synth.gain", 0.5);
  fluid_settings_setint(impl_->settings, "synth.polyphony", 128);
  impl_->soundfont = soundfont;
  // Load once here so a bad file fails before any clip is rendered.
  impl_->fresh_synth();
}

Renderer::~Renderer() = default;

media::Audio Renderer::render(const Score& score) {
  impl_->fresh_synth();
  fluid_synth_t* s = impl_->synth;
  fluid_synth_program_select(s, kChordChannel, impl_->sfont, 0, score.params.program);
  fluid_synth_program_select(s, kMelodyChannel, impl_->sfont, 0, score.params.program);
  fluid_synth_program_select(s, kBassChannel, impl_->sfont, 0, kBassProgram);
  fluid_synth_program_select(s, kDrumChannel, impl_->sfont, 128, 0);  // GM percussion bank
  // The melody sits a little above the chords in the mix.
  fluid_synth_cc(s, kChordChannel, 7, 90);
  fluid_synth_cc(s, kMelodyChannel, 7, 115);
  fluid_synth_cc(s, kBassChannel, 7, 105);
  fluid_synth_cc(s, kDrumChannel, 7, 110);

  const int64_t n = std::llround(score.params.seconds * rate_);
  std::vector<Event> ev;
  ev.reserve(score.notes.size() * 2);
  for (const auto& nt : score.notes) {
    const int64_t on = std::llround(nt.time * rate_);
    const int64_t off = std::max<int64_t>(on + 1, std::llround((nt.time + nt.duration) * rate_));
    ev.push_back({on, true, nt.channel, nt.key, nt.velocity});
    ev.push_back({off, false, nt.channel, nt.key, 0});
  }
  // Offs before ons at the same sample, so a repeated key restarts cleanly.
  std::stable_sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) {
    return a.sample != b.sample ? a.sample < b.sample : (!a.on && b.on);
  });

  media::Audio out;
  out.sample_rate = rate_;
  out.channels = 1;
  out.samples.assign(static_cast<size_t>(n), 0.0f);
  std::vector<float> left, right;
  int64_t pos = 0;
  size_t e = 0;
  auto render_to = [&](int64_t until) {
    while (pos < until) {
      const int len = static_cast<int>(std::min<int64_t>(until - pos, 4096));
      left.assign(len, 0.0f);
      right.assign(len, 0.0f);
      fluid_synth_write_float(s, len, left.data(), 0, 1, right.data(), 0, 1);
      for (int i = 0; i < len; ++i) out.samples[pos + i] = 0.5f * (left[i] + right[i]);
      pos += len;
    }
  };
  for (; e < ev.size() && ev[e].sample < n; ++e) {
    render_to(ev[e].sample);
    if (ev[e].on)
      fluid_synth_noteon(s, ev[e].channel, ev[e].key, ev[e].velocity);
    else
      fluid_synth_noteoff(s, ev[e].channel, ev[e].key);
  }
  render_to(n);
  impl_->drop_synth();

  // Loudness: RMS to the clip's target level, peaks kept below full scale.
  double ss = 0, peak = 0;
  for (float v : out.samples) ss += static_cast<double>(v) * v, peak = std::max(peak, static_cast<double>(std::fabs(v)));
  const double rms = n > 0 ? std::sqrt(ss / static_cast<double>(n)) : 0.0;
  if (rms > 1e-9) {
    double g = std::pow(10.0, target_rms_db(score.params.loudness) / 20.0) / rms;
    if (peak * g > 0.97) g = 0.97 / peak;
    for (float& v : out.samples) v = static_cast<float>(v * g);
  }
  return out;
}

}  // namespace v2m::synth
