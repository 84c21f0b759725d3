#include "pipeline/config/suggest.hpp"

#include <algorithm>
#include <numeric>

namespace pretext::config {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Two rolling rows of the classic dynamic programme: keys are short, so
  // O(|a|·|b|) time with O(|b|) memory is plenty.
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  std::iota(previous.begin(), previous.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  const std::size_t tolerance = std::max<std::size_t>(2, word.size() / 3);
  const std::string* best = nullptr;
  std::size_t best_distance = tolerance + 1;
  // Strict '<' keeps the first of equally close candidates, so the answer
  // depends only on the candidates' order, never on anything incidental.
  for (const std::string& candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best != nullptr ? *best : std::string{};
}

}  // namespace pretext::config
