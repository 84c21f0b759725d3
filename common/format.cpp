#include "common/format.hpp"

#include <cmath>
#include <cstdio>

namespace pretext {

std::string format_fixed(double value, int decimals) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "∞" : "−∞";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  std::string text = buffer;
  if (text.find_first_not_of("-0.") == std::string::npos && text.front() == '-') text.erase(0, 1);
  return text;
}

std::string format_percent(double fraction) { return format_fixed(100.0 * fraction, 2); }

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "—";
  if (seconds < 60) return format_fixed(seconds, 1) + " s";
  const auto whole = static_cast<long long>(std::llround(seconds));
  char buffer[64];
  if (whole < 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld min %lld s", whole / 60, whole % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld h %02lld min", whole / 3600, (whole % 3600) / 60);
  }
  return buffer;
}

}  // namespace pretext
