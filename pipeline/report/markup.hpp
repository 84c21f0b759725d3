// Text helpers shared by the SVG charts and the HTML reports: escaping and the
// way numbers are shown to people.
#pragma once

#include <string>
#include <string_view>

namespace pretext::report {

/// Escapes &, <, >, " and ' so that `text` is safe in XML text and in quoted attributes.
std::string xml_escape(std::string_view text);

/// Percent-encodes a relative path for an href; '/' separates segments and is kept.
std::string href_escape(std::string_view relative_path);

/// `value` with `decimals` digits after the point; never "-0".
std::string format_fixed(double value, int decimals);

/// A fraction in [0, 1] as a percentage with two decimals, without the sign: 0.8397 -> "83.97".
std::string format_percent(double fraction);

/// Seconds the way a person reads them: "42.0 s", "5 min 9 s", "2 h 03 min".
std::string format_duration(double seconds);

/// A summary key for a column or legend: "linear_probe" -> "linear probe".
std::string humanize(std::string_view key);

}  // namespace pretext::report
