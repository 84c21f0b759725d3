#include "pipeline/train/progress.hpp"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace pretext {
namespace {

constexpr std::chrono::milliseconds kInteractiveInterval{200};
constexpr std::chrono::seconds kPlainInterval{10};

/// Compact, for the ETA on a progress line: "42s", "5m09s", "2h03m07s".
std::string format_eta(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << 'h';
  if (s >= 60) out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s / 60) % 60 << 'm';
  out << std::setw(s >= 60 ? 2 : 1) << std::setfill('0') << s % 60 << 's';
  return out.str();
}

}  // namespace

Progress::Progress(std::ostream& out, bool interactive) : out_(&out), interactive_(interactive) {}

Progress Progress::to_stderr() { return Progress(std::cerr, ::isatty(STDERR_FILENO) != 0); }

void Progress::begin_phase(const std::string& phase, std::int64_t epochs, std::int64_t steps_per_epoch) {
  phase_ = phase;
  epochs_ = epochs;
  steps_per_epoch_ = steps_per_epoch;
  phase_start_ = Clock::now();
  last_print_ = phase_start_;
}

void Progress::step(std::int64_t epoch, std::int64_t step, double loss, double images_per_second) {
  if (muted_) return;
  const auto now = Clock::now();
  if (now - last_print_ < (interactive_ ? std::chrono::duration_cast<Clock::duration>(kInteractiveInterval)
                                        : std::chrono::duration_cast<Clock::duration>(kPlainInterval)))
    return;
  last_print_ = now;
  const double done = static_cast<double>(epoch * steps_per_epoch_ + step);
  const double total = static_cast<double>(epochs_ * steps_per_epoch_);
  const double elapsed = std::chrono::duration<double>(now - phase_start_).count();
  const double eta = done > 0 ? elapsed * (total - done) / done : 0.0;
  std::ostringstream text;
  text << std::fixed << phase_ << "  epoch " << epoch + 1 << '/' << epochs_ << "  step " << step << '/'
       << steps_per_epoch_ << "  loss " << std::setprecision(4) << loss << "  " << std::setprecision(0)
       << images_per_second << " img/s  ETA " << format_eta(eta);
  if (interactive_) {
    *out_ << '\r' << text.str() << "\033[K" << std::flush;
    line_open_ = true;
  } else {
    *out_ << text.str() << '\n' << std::flush;
  }
}

void Progress::line(const std::string& text) {
  if (muted_) return;
  if (line_open_) *out_ << "\r\033[K";
  line_open_ = false;
  *out_ << text << '\n' << std::flush;
}

}  // namespace pretext
