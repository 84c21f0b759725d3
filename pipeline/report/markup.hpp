// Text helpers shared by the SVG charts and the HTML reports: escaping and the
// way numbers are shown to people.
#pragma once

#include <string>
#include <string_view>

#include "common/format.hpp"  // format_fixed, format_percent, format_duration

namespace pretext::report {

/// Escapes &, <, >, " and ' so that `text` is safe in XML text and in quoted attributes.
std::string xml_escape(std::string_view text);

/// Percent-encodes a relative path for an href; '/' separates segments and is kept.
std::string href_escape(std::string_view relative_path);

/// A summary key for a column or legend: "linear_probe" -> "linear probe".
std::string humanize(std::string_view key);

}  // namespace pretext::report
