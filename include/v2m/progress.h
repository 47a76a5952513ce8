// Progress for long work: a bar with rate and ETA on a TTY (stderr), plain log lines
// (at most one every few seconds) otherwise; silent when logging is quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace v2m {

class Progress {
 public:
  // total <= 0: unknown total (no ETA). unit names what is counted ("frames", "audio-s").
  Progress(std::string label, double total, std::string unit);
  ~Progress();
  void advance(double n = 1.0);
  void set(double done);
  void finish();
  double rate() const;  // units per second so far

 private:
  void draw(bool final);
  std::string label_, unit_;
  double total_, done_ = 0;
  bool tty_, enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace v2m
