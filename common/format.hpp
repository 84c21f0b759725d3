// Numbers the way pretext shows them to people: progress lines, reports,
// tables. One definition of each, so a figure reads the same everywhere.
#pragma once

#include <string>

namespace pretext {

/// `value` with `decimals` digits after the point; never "-0"; NaN and
/// infinities as "NaN", "∞" and "−∞".
std::string format_fixed(double value, int decimals);

/// A fraction as percentage points with two decimals, without the sign:
/// 0.8397 -> "83.97". Callers add " %" or "%" as their context wants.
std::string format_percent(double fraction);

/// Seconds the way a person reads them: "42.0 s", "5 min 9 s", "2 h 03 min".
std::string format_duration(double seconds);

}  // namespace pretext
