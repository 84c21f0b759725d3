#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pretext::config {

/// Levenshtein edit distance.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word`, or "" when none is close enough to be a
/// plausible typo (distance > max(2, word.size() / 3)).
std::string nearest(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace pretext::config
