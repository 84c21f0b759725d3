// A request to stop a run early, checked by the pretext loop after each step.
// The CLI's SIGINT/SIGTERM handlers call request(); tests call it, or
// request_at_step(), directly, so library code never installs handlers.
#pragma once

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/errors.hpp"  // RunInterrupted

namespace pretext {

class StopToken {
 public:
  /// Async-signal-safe (a lock-free atomic store): callable from a handler.
  void request(int signal) noexcept { signal_.store(signal); }
  /// Behaves as if `signal` arrived during global pretext step `step` (1-based).
  void request_at_step(std::int64_t step, int signal) noexcept {
    at_step_signal_.store(signal);
    at_step_.store(step);
  }
  /// The signal that asked to stop after global step `step`, or 0.
  [[nodiscard]] int requested(std::int64_t step) const noexcept {
    if (const int s = signal_.load(); s != 0) return s;
    return at_step_.load() >= 0 && step >= at_step_.load() ? at_step_signal_.load() : 0;
  }
  [[nodiscard]] int signal() const noexcept { return signal_.load(); }

 private:
  std::atomic<int> signal_{0};
  std::atomic<std::int64_t> at_step_{-1};
  std::atomic<int> at_step_signal_{0};
  static_assert(std::atomic<int>::is_always_lock_free, "signal handlers need a lock-free flag");
};


}  // namespace pretext
