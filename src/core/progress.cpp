#include "v2m/progress.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace v2m {

namespace {

std::string fmt_eta(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

}  // namespace

Progress::Progress(std::string label, double total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  tty_ = ::isatty(STDERR_FILENO) != 0;
  enabled_ = spdlog::get_level() <= spdlog::level::info;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(double n) { set(done_ + n); }

void Progress::set(double done) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  // Redraw a TTY bar ~10x/s; plain logs every 5 s so CI logs stay short.
  if (since >= (tty_ ? 0.1 : 5.0)) {
    last_draw_ = now;
    draw(false);
  }
}

double Progress::rate() const {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return el > 0 ? done_ / el : 0.0;
}

void Progress::draw(bool final) {
  const double r = rate();
  const double eta = (total_ > 0 && r > 0) ? (total_ - done_) / r : NAN;
  if (tty_) {
    char line[256];
    if (total_ > 0) {
      const double frac = std::min(1.0, done_ / total_);
      const int width = 30, fill = static_cast<int>(frac * width);
      std::string bar(fill, '#');
      bar.resize(width, '.');
      std::snprintf(line, sizeof line, "\r%s [%s] %5.1f%% %.1f/%.1f %s  %.2f %s/s  ETA %s ", label_.c_str(), bar.c_str(),
                    100 * frac, done_, total_, unit_.c_str(), r, unit_.c_str(), fmt_eta(eta).c_str());
    } else {
      std::snprintf(line, sizeof line, "\r%s %.1f %s  %.2f %s/s ", label_.c_str(), done_, unit_.c_str(), r, unit_.c_str());
    }
    std::fputs(line, stderr);
    if (final) std::fputs("\n", stderr);
    std::fflush(stderr);
  } else if (total_ > 0) {
    spdlog::info("{}: {:.1f}/{:.1f} {} ({:.2f} {}/s, ETA {})", label_, done_, total_, unit_, r, unit_, fmt_eta(eta));
  } else {
    spdlog::info("{}: {:.1f} {} ({:.2f} {}/s)", label_, done_, unit_, r, unit_);
  }
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  if (enabled_ && done_ > 0) draw(true);
}

}  // namespace v2m
