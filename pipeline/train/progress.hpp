// Progress on the terminal: phase, epoch, step, loss, images/s, ETA.
// On a terminal one line is redrawn in place; otherwise plain lines, at most
// one every few seconds, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "common/format.hpp"  // format_fixed and format_percent, for the lines callers print

namespace pretext {

class Progress {
 public:
  explicit Progress(std::ostream& out, bool interactive);
  /// Progress to stderr, interactive when stderr is a terminal.
  static Progress to_stderr();

  void begin_phase(const std::string& phase, std::int64_t epochs, std::int64_t steps_per_epoch);
  void step(std::int64_t epoch, std::int64_t step, double loss, double images_per_second);
  /// A line that stays: epoch results, phase ends.
  void line(const std::string& text);
  /// Prints nothing from now on: the ranks of a data-parallel run other than
  /// rank 0 train in step with it, and their errors go to stderr regardless.
  void mute() { muted_ = true; }

 private:
  using Clock = std::chrono::steady_clock;
  std::ostream* out_;
  bool interactive_;
  std::string phase_;
  std::int64_t epochs_ = 0;
  std::int64_t steps_per_epoch_ = 0;
  Clock::time_point phase_start_;
  Clock::time_point last_print_;
  bool line_open_ = false;
  bool muted_ = false;
};

}  // namespace pretext
