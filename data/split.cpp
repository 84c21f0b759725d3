#include "data/split.hpp"

#include <numeric>

#include "common/errors.hpp"
#include "pretext/image.hpp"

namespace pretext::data {

Split split_indices(std::size_t total, std::int64_t labelled, std::int64_t validation, std::int64_t unlabelled,
                    std::uint64_t seed, const std::string& origin) {
  const auto fixed = static_cast<std::size_t>(labelled + validation);
  if (labelled <= 0 || validation <= 0 || fixed > total)
    throw InputError("data.labelled (" + std::to_string(labelled) + ") + data.validation (" +
                     std::to_string(validation) + ") must be positive and fit in the " + std::to_string(total) +
                     " images of " + origin);
  const std::size_t rest = total - fixed;
  if (unlabelled < 0 || static_cast<std::size_t>(unlabelled) > rest)
    throw InputError("data.unlabelled (" + std::to_string(unlabelled) + ") exceeds the " + std::to_string(rest) +
                     " images left in " + origin + " after the labelled and validation images");

  std::vector<std::uint32_t> order(total);
  std::iota(order.begin(), order.end(), 0U);
  SampleRng rng(seed, 0, 0, 0, /*purpose=*/0x5EED5B17);
  for (std::size_t i = total; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);

  Split split;
  const auto begin = order.begin();
  split.labelled.assign(begin, begin + labelled);
  split.validation.assign(begin + labelled, begin + static_cast<std::ptrdiff_t>(fixed));
  const std::size_t take = unlabelled > 0 ? static_cast<std::size_t>(unlabelled) : rest;
  split.unlabelled.assign(begin + static_cast<std::ptrdiff_t>(fixed),
                          begin + static_cast<std::ptrdiff_t>(fixed + take));
  return split;
}

}  // namespace pretext::data
