#include "synth/scene.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "synth/rng.h"

namespace v2m::synth {

namespace {

// h in degrees, s and v in [0, 1] -> RGB 0..255.
cv::Scalar hsv_rgb(double h, double s, double v) {
  h = std::fmod(std::fmod(h, 360.0) + 360.0, 360.0) / 60.0;
  const int i = static_cast<int>(h) % 6;
  const double f = h - std::floor(h), p = v * (1 - s), q = v * (1 - s * f), u = v * (1 - s * (1 - f));
  double r = 0, g = 0, b = 0;
  switch (i) {
    case 0: r = v, g = u, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = u; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = u, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
  return cv::Scalar(255 * r, 255 * g, 255 * b);
}

struct Object {
  double x, y;     // start position, fraction of the frame
  double dx, dy;   // unit direction
  double size;     // radius, fraction of the short side
  double hue, rot0, spin;
};

struct Layout {
  double bg_hue, bg_sat;
  std::vector<Object> objects;
};

Layout make_layout(const Score& s, int scene) {
  Rng r(mix_seed(s.params.seed, 0xC0FFEE00ull + static_cast<uint64_t>(scene)));
  const bool minor = s.params.minor;
  const double lo = minor ? kCoolHueLo : kWarmHueLo, hi = minor ? kCoolHueHi : kWarmHueHi;
  Layout L;
  L.bg_hue = r.uniform(lo, hi);
  L.bg_sat = r.uniform(0.45, 0.8);
  const int n = 3 + r.below(4);
  for (int i = 0; i < n; ++i) {
    Object o;
    o.x = r.uniform(0.15, 0.85);
    o.y = r.uniform(0.15, 0.85);
    const double a = r.uniform(0, 2 * M_PI);
    o.dx = std::cos(a);
    o.dy = std::sin(a);
    o.size = r.uniform(0.06, 0.12);
    o.hue = r.uniform(lo, hi);
    o.rot0 = r.uniform(0, 2 * M_PI);
    o.spin = r.chance(0.5) ? 1 : -1;
    L.objects.push_back(o);
  }
  return L;
}

// Reflects a coordinate into [lo, hi] (objects bounce off the borders).
double bounce(double v, double lo, double hi) {
  const double w = hi - lo;
  double m = std::fmod(v - lo, 2 * w);
  if (m < 0) m += 2 * w;
  return lo + (m <= w ? m : 2 * w - m);
}

std::vector<cv::Point> polygon(const std::string& shape, double cx, double cy, double r, double rot) {
  std::vector<cv::Point> pts;
  auto add = [&](double rad, double a) {
    pts.emplace_back(static_cast<int>(std::lround((cx + rad * std::cos(a)) * 16)),
                     static_cast<int>(std::lround((cy + rad * std::sin(a)) * 16)));
  };
  if (shape == "square") {
    for (int k = 0; k < 4; ++k) add(r, rot + M_PI / 4 + k * M_PI / 2);
  } else if (shape == "triangle") {
    for (int k = 0; k < 3; ++k) add(r, rot - M_PI / 2 + k * 2 * M_PI / 3);
  } else if (shape == "star") {
    for (int k = 0; k < 10; ++k) add(k % 2 ? r * 0.45 : r, rot - M_PI / 2 + k * M_PI / 5);
  } else if (shape == "diamond") {
    for (int k = 0; k < 4; ++k) add(k % 2 ? r * 0.6 : r, rot + k * M_PI / 2);
  } else {  // hexagon
    for (int k = 0; k < 6; ++k) add(r, rot + k * M_PI / 3);
  }
  return pts;
}

}  // namespace

int scene_index(const Score& s, double t) {
  return static_cast<int>(std::upper_bound(s.cuts.begin(), s.cuts.end(), t + 1e-9) - s.cuts.begin());
}

void paint_scene(const Score& s, double t, cv::Mat& rgb) {
  const int scene = scene_index(s, t);
  const Layout L = make_layout(s, scene);
  const double scene_start = scene == 0 ? 0.0 : s.cuts[scene - 1];
  const double beat = s.beat_seconds();
  const double beat_phase = std::fmod(t, beat) / beat;  // 0 on each beat
  const double pulse = std::exp(-6.0 * beat_phase);      // 1 on the beat, decays within it
  const double loud = std::clamp(s.params.loudness, 0.0, 1.0);
  // Brightness follows loudness: quiet clips are dim, loud ones bright.
  const double bg_v = 0.15 + 0.35 * loud, obj_v = 0.45 + 0.5 * loud;
  rgb.setTo(hsv_rgb(L.bg_hue, L.bg_sat, bg_v));
  const double W = rgb.cols, H = rgb.rows, side = std::min(W, H);
  // Speed: each object travels 0.12 of the frame per beat, so speed is proportional to tempo.
  const double travel = 0.12 * (t - scene_start) / beat;
  const std::string& shape = instrument_families()[s.params.family].shape;
  for (const auto& o : L.objects) {
    const double rad = o.size * side * (1.0 + 0.35 * pulse);
    const double mx = o.size * side / W, my = o.size * side / H;
    const double x = bounce(o.x + o.dx * travel, mx, 1 - mx) * W, y = bounce(o.y + o.dy * travel, my, 1 - my) * H;
    const cv::Scalar col = hsv_rgb(o.hue, 0.85, std::min(1.0, obj_v * (0.85 + 0.15 * pulse)));
    if (shape == "circle") {
      cv::circle(rgb, cv::Point(static_cast<int>(std::lround(x * 16)), static_cast<int>(std::lround(y * 16))),
                 static_cast<int>(std::lround(rad * 16)), col, cv::FILLED, cv::LINE_AA, 4);
    } else {
      const double rot = o.rot0 + o.spin * 2 * M_PI * 0.125 * (t - scene_start) / beat;  // an eighth turn per beat
      const auto pts = polygon(shape, x, y, rad, rot);
      cv::fillPoly(rgb, std::vector<std::vector<cv::Point>>{pts}, col, cv::LINE_AA, 4);
    }
  }
}

}  // namespace v2m::synth
